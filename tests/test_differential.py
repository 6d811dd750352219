"""
The differential harness (:mod:`support.differential`): fixed seeds on tmpfs and ext4, and the harness's own checks.

Each seed builds a random source tree and makes a few backups with random
changes in between; after every backup, ``latest`` must equal what plain
rsync in place leaves, the new snapshot must equal ``latest`` and every older
snapshot must be as it was (see the harness's docstring for the details and
its long mode, which runs random seeds). A seed that a random run found
failing joins :data:`SEEDS`.

The harness's own tests check that its comparison finds every kind of
difference, that a seed always makes the same trees, and that a run reports
a changed ``latest``, a changed older snapshot and a manifest that differs
from a walk of its snapshot: a harness that can't fail would prove nothing.
Every seed also checks that each new snapshot's manifest, built from the
previous one and the plan after the first round, equals a walk of the
snapshot (and one test that it was built that way).
"""

import gzip
import os
import pathlib
import random
import re
import stat
import subprocess

import pytest

from support.differential import (
    ACL_ATTRIBUTES,
    ORACLE_OPTIONS,
    Mutator,
    TreeBuilder,
    compare_trees,
    describe_tree,
    encode_acl,
    main,
    render_difference,
    run_seed,
)
from support.loop_filesystems import MountedFilesystem
from support.trees import SNAPSHOT_NAME, flip_byte, manifest_path

SEEDS = {
    'tmpfs': {
        2: "etc (root's) got the owner 65534: a planted link s -> x/./etc/shadow",
        8: "d41, a directory that became a file, stayed a directory; later: an owner change split a hard-linked"
           " pair of symbolic links",
        14: "d36 stayed in latest after -x d36/ (an excluded tree goes one level per run)",
        46: "d1/f4.txt lost its new hard link 'd15/d41/x46 -> y' (a name with an arrow)",
        54: "the new mode of ';semicolon-12/..dots16' wasn't applied (a name that starts with ';')",
        62: "the top directory of latest got mode 0777: a planted link t -> d/./.",
        87: "a RecursionError in the plan (a name that starts with ' => ')",
        102: "rsync in place kept stale content of a file whose attributes changed (quick-check blind spot)",
        112: "an owner change split a hard-linked pair of symbolic links ('hL name -> target' lines)",
        1002: "a device joined a group below a file that became a directory: the dry run's blind spot (exit 2)",
        1043: "a directory became a new hard link: not made (a directory in the way), then relisted as a parent",
        2024: "rsync in place failed (exit code 23) where a directory became a hard-linked file: its second run"
              " is the oracle",
        2249: "rsync in place lost a long xattr of a rewritten file ('Missing abbreviated xattr value', exit code 0):"
              " its second run is the oracle",
        2372: "a file became a directory where latest had a link that leads to itself: the dry run's blind spot"
              " said 'Too many levels of symbolic links' (exit 2)",
        3468: "an unchanged file named 'x -> y => x -> y' was also read as 'x -> y' linked to itself: rewritten,"
              " it left its group",
    },
    'ext4': {
        4: "etc (root's) lost its setgid bit: a planted link s -> x/./etc/shadow",
        22: "d23.tmp stayed in latest after -x '*.tmp' (an excluded tree goes one level per run)",
        31: "'d5/x13 -> y', a directory that became a file, stayed a directory",
        59: "the new owner of ';semicolon-97' wasn't applied (a name that starts with ';')",
        70: "f1.txt lost its new hard link 'with space 2 => with space 2/--delete-4/5..' (a name with an arrow)",
        80: "a RecursionError in the plan (a name that starts with ' => ')",
        86: "latest's etc/secret became a hard link of the user's planted file; later: a new time split three"
            " hard-linked symbolic links",
        97: "-leading-dash-11 lost its new hard link ';/d47.txt/f48' (a name that starts with ';')",
    },
}
"""
The seeds that the test suite runs on each filesystem, with the first
difference each found in the first version of the default method (6429c5d,
issue 20), and later in the rewrite that followed; every seed makes 3 to 5
backups.
"""


@pytest.mark.parametrize('kind, seed', [(kind, seed) for kind in sorted(SEEDS) for seed in sorted(SEEDS[kind])])
def test_latest_equals_rsync_in_place(tmp_path, kind, seed):
    """Every backup of a seed leaves latest as rsync in place would, and no snapshot changes."""
    with MountedFilesystem(kind, tmp_path / kind) as filesystem:
        result = run_seed(seed, filesystem, tmp_path / 'scratch')
    assert result.passed, result.failure.report(limit=20)


def build_scene(root):
    """
    Make a small tree with one entry of each kind that :func:`test_comparison_finds_every_difference()` changes.

    :param root: The top directory (a path; it doesn't exist yet).
    """
    root.mkdir()
    for name in ('mode', 'owner', 'content', 'xattr', 'acl', 'mtime', 'removed', 'kind', 'linked'):
        (root / name).write_bytes(b'%s\n' % name.encode())
    os.link(str(root / 'linked'), str(root / 'also linked'))
    os.symlink('content', str(root / 'symlink'))
    os.mknod(str(root / 'device'), stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (root / 'directory').mkdir()
    for path in list(root.iterdir()) + [root]:
        os.utime(str(path), (1500000000, 1500000000), follow_symlinks=False)


def test_comparison_finds_every_difference(tmp_path):
    """Each kind of change to a copy of a tree is reported, under the path and field that changed."""
    build_scene(tmp_path / 'source')
    copy = tmp_path / 'copy'
    subprocess.run(['rsync'] + list(ORACLE_OPTIONS) + ['%s/' % (tmp_path / 'source'), '%s/' % copy], check=True)
    before = describe_tree(copy)
    assert compare_trees(describe_tree(tmp_path / 'source'), before) == ([], [])
    (copy / 'mode').chmod(0o600)
    os.chown(str(copy / 'owner'), 1000, 0)
    flip_byte(str(copy / 'content'))
    os.setxattr(str(copy / 'xattr'), 'user.note', b'new')
    os.setxattr(str(copy / 'acl'), ACL_ATTRIBUTES[0], encode_acl(0o644, {1234: 4}))
    os.utime(str(copy / 'mtime'), (1500000001, 1500000001))
    (copy / 'removed').unlink()
    (copy / 'added').write_bytes(b'added\n')
    (copy / 'kind').unlink()
    (copy / 'kind').mkdir()
    (copy / 'also linked').unlink()
    (copy / 'also linked').write_bytes(b'linked\n')
    os.utime(str(copy / 'also linked'), (1500000000, 1500000000))
    (copy / 'symlink').unlink()
    os.symlink('mode', str(copy / 'symlink'))
    os.utime(str(copy / 'symlink'), (1500000000, 1500000000), follow_symlinks=False)
    (copy / 'device').unlink()
    os.mknod(str(copy / 'device'), stat.S_IFCHR | 0o600, os.makedev(1, 5))
    os.utime(str(copy / 'device'), (1500000000, 1500000000))
    os.utime(str(copy / 'directory'), (1500000002, 1500000002))
    differences, directory_times = compare_trees(before, describe_tree(copy))
    assert sorted((difference.path, difference.field) for difference in differences) == [
        (b'acl', 'xattrs'),
        (b'added', 'extra'),
        (b'also linked', 'links'),
        (b'content', 'content'),
        (b'device', 'content'),
        (b'kind', 'kind'),
        (b'linked', 'links'),
        (b'mode', 'mode'),
        (b'mtime', 'mtime'),
        (b'owner', 'uid'),
        (b'removed', 'missing'),
        (b'symlink', 'content'),
        (b'xattr', 'xattrs'),
    ]
    assert [difference.path for difference in directory_times] == [b'.', b'directory']
    assert all(isinstance(render_difference(difference), str) for difference in differences)


@pytest.mark.parametrize('seed', [3, 4])
def test_seed_makes_the_same_trees(tmp_path, seed):
    """A seed builds and changes a tree the same way every time, and rsync's copy of it compares equal."""
    descriptions = []
    for name in ('first', 'second'):
        builder = TreeBuilder(random.Random(seed), tmp_path / name)
        builder.build()
        Mutator(builder).mutate(20)
        descriptions.append(describe_tree(tmp_path / name))
    assert compare_trees(*descriptions)[0] == []
    subprocess.run(['rsync'] + list(ORACLE_OPTIONS) + ['%s/' % (tmp_path / 'first'), '%s/' % (tmp_path / 'copy')],
                   check=True)
    assert compare_trees(descriptions[0], describe_tree(tmp_path / 'copy'))[0] == []


def tamper(round_number, run):
    """
    Change ``latest`` and the first snapshot behind the command's back (in the second round).

    :param round_number: The round.
    :param run: The :class:`support.differential.SeedRun`.
    """
    if round_number == 1:
        backups = run.view(run.latest.parent)
        first = sorted(run.records)[0]
        with open(os.path.join(backups, first, 'planted by the test'), 'wb') as handle:
            handle.write(b'not made by the command\n')
        os.chmod(run.view(run.latest), 0o705)


def test_run_reports_changed_trees(tmp_path):
    """A run finds a latest that differs from rsync in place and an older snapshot that changed."""
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        result = run_seed(4, filesystem, tmp_path / 'scratch', rounds=2, tamper=tamper)
    assert not result.passed
    assert result.failure.round_number == 1
    titles = [title for title, _ in result.failure.findings]
    assert 'latest differs from rsync in place' in titles
    assert any(title.startswith('snapshot ') and title.endswith(' changed') for title in titles)
    report = result.failure.report()
    assert "0705 in latest" in report
    assert "b'planted by the test': file in the snapshot, not in its record" in report


def test_long_mode(tmp_path, capsys):
    """The long mode runs the seeds it is given and prints a line for each."""
    assert main(['--filesystem', 'tmpfs', '--seed', '4', '--runs', '1', '--rounds', '1',
                 '--work-dir', str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert 'seed 4 on tmpfs: ok (1 rounds passed' in output
    assert '1 seeds on tmpfs' in output
    assert os.listdir(str(tmp_path)) == []


def test_manifests_come_from_the_changes(tmp_path):
    """From the second backup on, each manifest is built from the previous one and the plan, and equals a walk."""
    outputs = []
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        result = run_seed(5, filesystem, tmp_path / 'scratch', rounds=4, options=['-vv'],
                          tamper=lambda round_number, run: outputs.append(run.output))
    assert result.passed, result.failure.report(limit=20)
    assert len(outputs) == 4
    assert 'by reading all of' in outputs[0]
    for output in outputs[1:]:
        assert re.search(r'Built the manifest of \S+ from the previous one and [1-9]\d* changed name', output), output


def drop_last_manifest_line(round_number, run):
    """
    Damage the newest manifest (in the second round): its last entry goes.

    :param round_number: The round.
    :param run: The :class:`support.differential.SeedRun`.
    """
    if round_number == 1:
        backups = pathlib.Path(run.view(run.latest.parent))
        newest = max(name for name in os.listdir(str(backups)) if SNAPSHOT_NAME.match(name))
        pathname = str(manifest_path(backups, newest))
        with gzip.open(pathname, 'rt', encoding='utf-8', errors='surrogateescape') as stream:
            lines = stream.readlines()
        with gzip.open(pathname, 'wt', encoding='utf-8', errors='surrogateescape') as stream:
            stream.writelines(lines[:-1])


def test_run_reports_a_wrong_manifest(tmp_path):
    """A manifest that differs from a walk of its snapshot fails the round, naming the line."""
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        result = run_seed(4, filesystem, tmp_path / 'scratch', rounds=2, tamper=drop_last_manifest_line)
    assert not result.passed
    assert result.failure.round_number == 1
    (title,) = [title for title, _ in result.failure.findings]
    assert title.startswith('the manifest of ') and title.endswith(' differs from a walk of the snapshot')
    assert 'only in the walk: ' in result.failure.report()
