"""End-to-end tests of backups to a local directory: real rsync, real cp, real rotation."""

import os
import re
import subprocess

import pytest

from support.trees import describe_tree, list_names

SNAPSHOT_NAME = re.compile(r'^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$')

ODD_NAMES = [
    b'with space',
    b'with\nnewline',
    b"single'quote",
    b'double"quote',
    b'dollar$HOME;semicolon',
    b'latin1-\xe9t\xe9',
    b'-starts-with-dash',
]


def build_source_tree(root):
    """Create a source tree with every kind of file a system backup must preserve."""
    root = str(root)
    os.makedirs(os.path.join(root, 'etc'))
    os.makedirs(os.path.join(root, 'home', 'alice', '.cache'))
    os.makedirs(os.path.join(root, 'var', 'tmp'))
    write(os.path.join(root, 'etc', 'hostname'), b'backup-test\n')
    write(os.path.join(root, 'home', 'alice', '.cache', 'cached'), b'cache')
    write(os.path.join(root, 'var', 'tmp', 'kept'), b'a nested var/tmp is not the system /var/tmp')
    secret = os.path.join(root, 'etc', 'shadow')
    write(secret, b'root:*:1:0:99999:7:::\n')
    os.chmod(secret, 0o640)
    os.chown(secret, 0, 42)
    owned = os.path.join(root, 'home', 'alice', 'owned')
    write(owned, b'numeric owner')
    os.chown(owned, 12345, 23456)
    setuid = os.path.join(root, 'etc', 'setuid-program')
    write(setuid, b'#!/bin/sh\n')
    os.chmod(setuid, 0o4755)
    os.symlink('hostname', os.path.join(root, 'etc', 'relative-link'))
    os.symlink('/nonexistent/target', os.path.join(root, 'etc', 'dangling-link'))
    os.link(os.path.join(root, 'etc', 'hostname'), os.path.join(root, 'etc', 'hard-link'))
    with open(os.path.join(root, 'sparse'), 'wb') as handle:
        handle.seek(64 * 1024 * 1024)
        handle.write(b'end')
    xattr_file = os.path.join(root, 'xattr-file')
    write(xattr_file, b'x')
    os.setxattr(xattr_file, 'user.backup-test', b'value')
    subprocess.check_call(['setfacl', '-m', 'u:12345:r', xattr_file])
    odd = os.path.join(os.fsencode(root), b'odd')
    os.makedirs(odd)
    for name in ODD_NAMES:
        write(os.path.join(odd, name), name)
    os.utime(os.path.join(root, 'etc', 'hostname'), (1000000000, 1000000000))


def write(pathname, content):
    """Write bytes to a file."""
    with open(pathname, 'wb') as handle:
        handle.write(content)


def snapshots_in(directory):
    """The names of the snapshots in a directory."""
    return [name for name in list_names(directory) if SNAPSHOT_NAME.match(name)]


@pytest.fixture
def source(tmp_path):
    """A source tree with odd names, links, owners, xattrs, ACLs and a sparse file."""
    root = tmp_path / 'source'
    build_source_tree(root)
    return root


@pytest.fixture
def backups(tmp_path):
    """The directory that holds ``latest`` and the snapshots."""
    return tmp_path / 'backups'


def test_full_backup(run_cli, source, backups):
    """A default run transfers everything, snapshots it and keeps every attribute."""
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    expected = describe_tree(source)
    assert describe_tree(backups / 'latest') == expected
    snapshots = snapshots_in(backups)
    assert len(snapshots) == 1
    assert describe_tree(backups / snapshots[0]) == expected
    latest_file = backups / 'latest' / 'etc' / 'hostname'
    snapshot_file = backups / snapshots[0] / 'etc' / 'hostname'
    assert os.stat(latest_file).st_ino == os.stat(snapshot_file).st_ino, "the snapshot must hard-link"
    assert os.getxattr(str(backups / 'latest' / 'xattr-file'), 'user.backup-test') == b'value'
    acl = subprocess.check_output(['getfacl', '--numeric', '--omit-header', str(backups / snapshots[0] / 'xattr-file')])
    assert b'user:12345:r--' in acl
    sparse = os.stat(backups / 'latest' / 'sparse')
    assert sparse.st_size > 64 * 1024 * 1024
    assert sparse.st_blocks * 512 < 1024 * 1024, "the sparse file must stay sparse"
    assert sorted(os.listdir(os.path.join(os.fsencode(str(backups)), b'latest', b'odd'))) == sorted(ODD_NAMES)


def test_incremental_backup_mirrors_changes(run_cli, source, backups):
    """A second run adds, changes and deletes what changed, and keeps the first snapshot as it was."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    first_snapshot = snapshots_in(backups)[0]
    first_state = describe_tree(backups / first_snapshot)
    os.remove(source / 'etc' / 'shadow')
    write(str(source / 'etc' / 'new-file'), b'new')
    write(str(source / 'etc' / 'hostname'), b'changed content\n')
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert describe_tree(backups / 'latest') == describe_tree(source)
    assert not (backups / 'latest' / 'etc' / 'shadow').exists()
    assert describe_tree(backups / first_snapshot) == first_state
    assert len(snapshots_in(backups)) == 2


def test_nested_system_directory_names_are_not_excluded(run_cli, source, backups):
    """The default excludes are rooted at the system's root: a source's own var/tmp and .cache stay."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    assert (backups / 'latest' / 'var' / 'tmp' / 'kept').exists()
    assert (backups / 'latest' / 'home' / 'alice' / '.cache' / 'cached').exists()


def test_exclude_option(run_cli, source, backups):
    """-x leaves matching files out, and files excluded later are deleted from the backup."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    result = run_cli('--disable-notifications', '-x', '/etc/shadow', '--exclude=*.cache', '-x', 'odd/',
                     source, backups / 'latest')
    assert result.returncode == 0, result
    assert not (backups / 'latest' / 'etc' / 'shadow').exists()
    assert not (backups / 'latest' / 'odd').exists()
    assert (backups / 'latest' / 'etc' / 'hostname').exists()


def test_backup_only(run_cli, source, backups):
    """-b transfers without a snapshot."""
    result = run_cli('--disable-notifications', '-b', source, backups / 'latest')
    assert result.returncode == 0, result
    assert list_names(backups) == ['latest']
    assert describe_tree(backups / 'latest') == describe_tree(source)


def test_snapshot_only(run_cli, source, backups):
    """-s snapshots the destination as it is, without running rsync."""
    os.makedirs(str(backups / 'latest'))
    write(str(backups / 'latest' / 'only-in-latest'), b'x')
    result = run_cli('--disable-notifications', '-s', source, backups / 'latest')
    assert result.returncode == 0, result
    snapshots = snapshots_in(backups)
    assert len(snapshots) == 1
    assert list_names(backups / snapshots[0]) == ['only-in-latest']
    assert list_names(backups / 'latest') == ['only-in-latest']


def test_backup_and_snapshot_without_rotation(run_cli, source, backups):
    """-b -s transfers and snapshots but leaves old snapshots alone."""
    old = backups / '2001-01-01_00-00-00'
    os.makedirs(str(old))
    result = run_cli('--disable-notifications', '-b', '-s', source, backups / 'latest')
    assert result.returncode == 0, result
    assert old.exists()
    assert len(snapshots_in(backups)) == 2


def test_rotate_only(run_cli, backups):
    """-r removes expired snapshots without transferring or snapshotting."""
    os.makedirs(str(backups / 'latest'))
    for name in ('2001-01-01_00-00-00', '2001-01-01_00-30-00', '2001-02-01_00-00-00'):
        os.makedirs(str(backups / name))
    result = run_cli('--disable-notifications', '-r', '/nonexistent-source-is-not-read', backups / 'latest')
    assert result.returncode == 0, result
    # Monthly 'always': each month keeps its oldest snapshot; the newest is kept anyway.
    assert list_names(backups) == ['2001-01-01_00-00-00', '2001-02-01_00-00-00', 'latest']


def test_dry_run_changes_nothing(run_cli, source, backups, notifications_log):
    """-n runs rsync with --dry-run and makes no directory, no snapshot and no notification."""
    result = run_cli('-n', source, backups / 'latest')
    assert result.returncode == 0, result
    assert not backups.exists()
    assert 'etc/hostname' in result.output, "rsync --dry-run --verbose lists the files it would transfer"
    assert not notifications_log.exists()


def test_dry_run_keeps_existing_backup(run_cli, source, backups):
    """-n on an existing backup changes neither latest nor the snapshots, nor rotates."""
    old_twin = backups / '2001-01-01_00-30-00'
    for name in ('2001-01-01_00-00-00', old_twin.name, '2001-02-01_00-00-00'):
        os.makedirs(str(backups / name))
    assert run_cli('--disable-notifications', '-b', source, backups / 'latest').returncode == 0
    write(str(source / 'etc' / 'hostname'), b'changed\n')
    before = describe_tree(backups)
    result = run_cli('--dry-run', source, backups / 'latest')
    assert result.returncode == 0, result
    assert describe_tree(backups) == before
    assert 'Would remove %s' % old_twin in result.output


def test_notifications(run_cli, source, backups, notifications_log):
    """A run announces its start and end on the desktop."""
    assert run_cli(source, backups / 'latest').returncode == 0
    lines = notifications_log.read_text().splitlines()
    assert len(lines) == 2
    assert 'Starting the backup' in lines[0]
    assert 'Finished the backup' in lines[1]


def test_failing_notifications_are_harmless(run_cli, source, backups, fake_bin):
    """A notify-send that fails doesn't fail the backup."""
    script = fake_bin / 'notify-send'
    script.write_text('#!/bin/sh\nexit 1\n')
    script.chmod(0o755)
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 0, result
    assert len(snapshots_in(backups)) == 1


def test_disabled_notifications(run_cli, source, backups, notifications_log):
    """--disable-notifications calls no notify-send."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    assert not notifications_log.exists()


def test_failed_backup_notifies(run_cli, source, backups, notifications_log, fake_bin):
    """A failing rsync is reported on the desktop and makes no snapshot."""
    script = fake_bin / 'rsync'
    script.write_text('#!/bin/sh\nexit 12\n')
    script.chmod(0o755)
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 1
    assert 'Aborting due to error: rsync failed with exit code 12' in result.output
    assert snapshots_in(backups) == []
    assert 'failed' in notifications_log.read_text().splitlines()[-1]


@pytest.mark.parametrize('code', [23, 24])
def test_partial_transfer_is_a_warning(run_cli, source, backups, fake_bin, code):
    """rsync's exit codes 23 and 24 are logged as warnings and the snapshot is still made."""
    real_rsync = subprocess.check_output(['which', 'rsync']).decode().strip()
    complaint = 'file has vanished: \\"/src/%s\\"' if code == 24 else 'rsync: [sender] open \\"/src/%s\\" failed'
    script = fake_bin / 'rsync'
    script.write_text('#!/bin/sh\n%s "$@"\n' % real_rsync
                      + ''.join('echo "%s" >&2\n' % (complaint % name) for name in ('a', 'b', 'c'))
                      + 'echo "rsync error: some files could not be transferred" >&2\nexit %i\n' % code)
    script.chmod(0o755)
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert 'WARNING' in result.output and 'rsync exited with code %i' % code in result.output
    expected = '3 file(s) vanished' if code == 24 else "3 file(s) couldn't be transferred"
    assert expected in result.output
    assert len(snapshots_in(backups)) == 1


def test_snapshot_failure_leaves_no_snapshot(run_cli, source, backups, fake_bin):
    """When cp fails, nothing with a snapshot name (and no temporary copy) is left."""
    script = fake_bin / 'cp'
    script.write_text('#!/bin/sh\nmkdir -p "$4"; exit 1\n')
    script.chmod(0o755)
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 1
    assert 'Aborting due to error: cp --archive --link failed' in result.output
    assert list_names(backups) == ['latest']


def test_leftover_incomplete_snapshot_is_removed(run_cli, source, backups):
    """A temporary snapshot left by a crash is removed (with a log line) by the next snapshot."""
    leftover = backups / '2001-01-01_00-00-00.incomplete'
    os.makedirs(str(leftover / 'etc'))
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert not leftover.exists()
    assert 'left behind by an interrupted run' in result.output


def test_two_runs_in_one_second_make_two_snapshots(run_cli, source, backups):
    """Back-to-back runs never reuse a snapshot name, and the newest one is kept."""
    for _ in range(3):
        assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    assert len(snapshots_in(backups)) >= 2
    newest = snapshots_in(backups)[-1]
    assert describe_tree(backups / newest) == describe_tree(source)
