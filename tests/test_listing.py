"""
Tests of ``--list``: the snapshots with their age, state, exclusive size and method, as text and JSON.

The sizes are checked against the real thing: on a small ext4 filesystem in
a private mount namespace, removing each snapshot (with its manifest) must
free exactly the space that ``--list`` said.
"""

import json
import os
import shutil

import pytest

from support.cli import assert_failed
from support.loop_filesystems import MountedFilesystem
from support.remote import SERVER_ALIAS
from support.trees import make_snapshots, manifest_path, snapshot_names, write_file


@pytest.fixture
def source(tmp_path):
    """A source tree with files of several sizes and a hard link inside it."""
    root = tmp_path / 'source'
    write_file(root / 'etc' / 'hostname', b'listing-test\n')
    write_file(root / 'var' / 'big', os.urandom(200 * 1024))
    write_file(root / 'var' / 'medium', os.urandom(30 * 1024))
    os.link(str(root / 'var' / 'medium'), str(root / 'var' / 'medium-link'))
    return root


def test_text_and_json(run_cli, source, backups):
    """The listing names each snapshot with its state and method, then latest, free space and the newest age."""
    backup = run_cli('-v', '--disable-notifications', '--manifest', source, backups / 'latest')
    assert backup.returncode == 0, backup
    (name,) = snapshot_names(backups)
    (backups / ('2020-01-01_00-00-00.incomplete')).mkdir()
    result = run_cli('--list', backups / 'latest')
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].split() == ['SNAPSHOT', 'AGE', 'STATE', 'EXCLUSIVE', 'SIZE', 'METHOD', 'KEPT', 'AS']
    assert lines[1].startswith('2020-01-01_00-00-00.incomplete') and ' incomplete ' in lines[1]
    assert lines[1].endswith(' unknown')
    assert lines[2].startswith(name) and ' complete ' in lines[2]
    assert 'Using the %s snapshot method' % lines[2].split()[-1] in backup.stderr
    assert lines[3].split()[:2] == ['latest', 'latest']
    assert lines[4].startswith('Free space: ')
    assert lines[5].startswith('Newest snapshot: %s, ' % name) and lines[5].endswith(' old.')
    result = run_cli('--list', '--json', backups / 'latest')
    assert result.returncode == 0, result
    listing = json.loads(result.stdout)
    assert [(s['name'], s['state'], s['kept']) for s in listing['snapshots']] == [
        ('2020-01-01_00-00-00.incomplete', 'incomplete', []), (name, 'complete', [])]
    assert listing['snapshots'][1]['method'] == lines[2].split()[-1]
    assert listing['latest']['exists'] and listing['latest']['name'] == 'latest'
    assert listing['newest']['name'] == name and 0 <= listing['newest']['age_seconds'] < 600
    assert listing['free_bytes'] > 0 and listing['total_bytes'] >= listing['free_bytes']


def listed(result):
    """The snapshots, latest and newest of a ``--list --json`` run, without what changes as time passes."""
    assert result.returncode == 0, result
    listing = json.loads(result.stdout)
    for snapshot in listing['snapshots']:
        del snapshot['age_seconds']
    return listing['directory'], listing['snapshots'], listing['latest'], listing['newest']['name']


def test_set_directory_stands_for_its_set(run_cli, source, backups):
    """--list given the set's directory (the one with the marker) lists that set, as its latest does (issue 22)."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    expected = listed(run_cli('--list', '--json', backups / 'latest'))
    assert expected[1] and expected[2]['exists']
    assert listed(run_cli('--list', '--json', backups)) == expected
    assert listed(run_cli('--list', '--json', str(backups) + '/')) == expected
    result = run_cli('--list', backups)
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[-1].startswith('Newest snapshot: %s, ' % expected[3]), result


def test_names_of_version_1_1_sort_by_their_times(run_cli, source, backups):
    """A set with 1.1's names and new ones of the same day lists them by time, and the newest is the newest."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    (made,) = snapshot_names(backups)
    make_snapshots(backups, ['2024-05-01_09-00-00', '2024-05-01 13:45:00', '2024-05-01_18-30-00'])
    directory, snapshots, latest, newest = listed(run_cli('--list', '--json', backups / 'latest'))
    expected = ['2024-05-01_09-00-00', '2024-05-01 13:45:00', '2024-05-01_18-30-00', made]
    assert [s['name'] for s in snapshots] == expected
    os.rename(str(backups / made), str(backups / ('removed-' + made)))
    assert listed(run_cli('--list', '--json', backups / 'latest'))[3] == '2024-05-01_18-30-00'
    shutil.rmtree(str(backups / '2024-05-01_18-30-00'))
    assert listed(run_cli('--list', '--json', backups / 'latest'))[3] == '2024-05-01 13:45:00'


def test_nested_sets(run_cli, tmp_path, source):
    """
    A set in another set's directory is listed as itself; the latest of a set is never taken for a set (issue 22).

    /x holds a set (its latest is a backup of a set's directory, so it holds a marker and snapshots), and so
    does /x/laptop: --list /x/laptop lists laptop's snapshots, --list /x/latest lists /x's.
    """
    outer, inner = tmp_path / 'x', tmp_path / 'x' / 'laptop'
    assert run_cli('--disable-notifications', source, inner / 'latest').returncode == 0
    assert run_cli('--disable-notifications', inner, outer / 'latest').returncode == 0
    (inner_snapshot,), (outer_snapshot,) = snapshot_names(inner), snapshot_names(outer)
    assert (outer / 'latest' / '.rsync-system-backup').is_file() and (outer / 'latest' / inner_snapshot).is_dir()
    directory, snapshots, latest, _ = listed(run_cli('--list', '--json', inner))
    assert (directory, [s['name'] for s in snapshots], latest['name']) == (str(inner), [inner_snapshot], 'latest')
    directory, snapshots, latest, _ = listed(run_cli('--list', '--json', outer / 'latest'))
    assert (directory, [s['name'] for s in snapshots], latest['name']) == (str(outer), [outer_snapshot], 'latest')


def test_latest_of_another_name_is_never_taken_for_a_set(run_cli, tmp_path, source):
    """
    A set whose latest has another name (``current``) is looked at as given,
    whatever that latest holds: a marker and a snapshot-like directory copied
    from the source don't make it a set of its own, nor fool --max-age.
    """
    backups = tmp_path / 'bk'
    assert run_cli('--disable-notifications', source, backups / 'current').returncode == 0
    (snapshot,) = snapshot_names(backups)
    os.rename(str(backups / snapshot), str(backups / '2020-01-01_00-00-00'))
    write_file(backups / 'current' / '.rsync-system-backup', b'planted by the source\n')
    (backups / 'current' / snapshot).mkdir()
    directory, snapshots, latest, _ = listed(run_cli('--list', '--json', backups / 'current'))
    assert (directory, [s['name'] for s in snapshots], latest['name']) == \
        (str(backups), ['2020-01-01_00-00-00'], 'current')
    result = run_cli('--max-age=1h', backups / 'current')
    assert result.returncode == 2 and result.stdout.startswith('CRITICAL'), result


def test_no_set_is_refused_without_walking(run_cli, tmp_path):
    """A directory that is neither a set's latest nor a set's directory is refused before any walk (issue 22)."""
    tree = tmp_path / 'data' / 'tree'
    write_file(tree / 'file', b'data')
    for destination in (tree, tmp_path / 'data', tmp_path / 'missing' / 'latest'):
        result = run_cli('--list', destination)
        assert_failed(result, "%s is neither the latest of a backup set nor a set's directory (no "
                              ".rsync-system-backup file or snapshot in %s or in it): give the latest directory of "
                              "a backup set, such as /mnt/backups/latest." % (destination, destination.parent))


def test_json_needs_list(run_cli, backups):
    """--json alone is a usage error."""
    result = run_cli('--json', backups / 'latest')
    assert result.returncode == 1 and '--json only goes with --list' in result.stderr, result


def test_list_over_ssh(tmp_path, source, client_home):
    """Over SSH the sizes are measured on the server, in one command."""
    backups = tmp_path / 'remote-backups'
    destination = '%s:%s' % (SERVER_ALIAS, backups / 'latest')
    assert client_home.run(source, destination).returncode == 0
    result = client_home.run('--list', '--json', destination)
    assert result.returncode == 0, result
    assert listed(client_home.run('--list', '--json', '%s:%s' % (SERVER_ALIAS, backups))) == listed(result)
    listing = json.loads(result.stdout)
    assert [s['name'] for s in listing['snapshots']] == snapshot_names(backups)
    # Every file is shared with the snapshot: only latest's directories are its own.
    directories = [root for root, _, _ in os.walk(str(backups / 'latest'))]
    assert listing['latest']['exclusive_bytes'] == sum(os.lstat(d).st_blocks * 512 for d in directories)


def free_bytes(filesystem, pathname):
    """The free space of a filesystem in a namespace, after writing out what is pending (bytes)."""
    filesystem.run('sync')
    info = os.statvfs(filesystem.view(pathname))
    return info.f_bfree * info.f_frsize


def test_sizes_add_up_to_freed_space(tmp_path, source):
    """On ext4, removing each snapshot and its manifest frees exactly the exclusive size that --list gave."""
    with MountedFilesystem('ext4', tmp_path / 'fs') as filesystem:
        backups = filesystem.mount_point / 'backups'
        view = filesystem.view(backups)
        for round_number in range(3):
            write_file(source / 'var' / ('new-%d' % round_number), os.urandom((round_number + 1) * 40 * 1024))
            write_file(source / 'var' / 'medium', os.urandom(30 * 1024 + round_number))
            result = filesystem.run_cli('-b', '-s', '--manifest', '--snapshot-method=link-dest',
                                        source, backups / 'latest')
            assert result.returncode == 0, result.output
        assert len(snapshot_names(view)) == 3
        while snapshot_names(view):
            result = filesystem.run_cli('--list', '--json', backups / 'latest')
            assert result.returncode == 0, result.output
            listing = json.loads(result.stdout)
            # Remove the snapshot that frees the most (each has some space of its own).
            snapshot = max(listing['snapshots'], key=lambda s: s['exclusive_bytes'])
            assert snapshot['exclusive_bytes'] > 0
            before = free_bytes(filesystem, backups)
            filesystem.run('rm', '-rf', '--', backups / snapshot['name'],
                           manifest_path(backups, snapshot['name']))
            assert free_bytes(filesystem, backups) - before == snapshot['exclusive_bytes'], snapshot


@pytest.mark.parametrize('action', ['--list', '--verify', '--max-age=1d'])
def test_actions_explain_a_destination_that_is_no_directory(run_cli, action):
    """A read-only action on an impossible destination ends in one line, like a backup, not a traceback."""
    result = run_cli(action, '/etc/passwd/latest')
    assert_failed(result, "Can't access /etc/passwd: Not a directory")
