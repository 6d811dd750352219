"""End-to-end tests of whole runs to a local directory, as ``backup.py`` drives them: real rsync, cp and rotation."""

import os
import subprocess

import pytest

from support.stand_ins import real_program, write_script
from support.trees import list_names, make_snapshots, make_system_tree, snapshot_names, take_manifest, write_file

ODD_NAMES = [
    b'with space',
    b'with\nnewline',
    b"single'quote",
    b'double"quote',
    b'dollar$HOME;semicolon',
    b'latin1-\xe9t\xe9',
    b'-starts-with-dash',
]


@pytest.fixture
def source(tmp_path):
    """A small system (:func:`support.trees.make_system_tree()`) with odd names, a nested var/tmp and a .cache."""
    root = make_system_tree(tmp_path / 'source')
    write_file(root / 'home' / 'alice' / '.cache' / 'cached', b'cache')
    write_file(root / 'var' / 'tmp' / 'kept', b'a nested var/tmp is not the system /var/tmp')
    for name in ODD_NAMES:
        write_file(root / 'odd' / os.fsdecode(name), name)
    return root


def test_full_backup(run_cli, source, backups):
    """A default run transfers everything, snapshots it and keeps every attribute."""
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    expected = take_manifest(source, times='seconds')
    assert take_manifest(backups / 'latest', times='seconds') == expected
    snapshots = snapshot_names(backups)
    assert len(snapshots) == 1
    assert take_manifest(backups / snapshots[0], times='seconds') == expected
    latest_file = backups / 'latest' / 'etc' / 'hostname'
    snapshot_file = backups / snapshots[0] / 'etc' / 'hostname'
    assert os.stat(latest_file).st_ino == os.stat(snapshot_file).st_ino, "the snapshot must hard-link"
    assert os.getxattr(str(backups / 'latest' / 'home' / 'alice' / 'notes'), 'user.tag') == b'important'
    acl = subprocess.check_output(['getfacl', '--numeric', '--omit-header',
                                   str(backups / snapshots[0] / 'home' / 'alice' / 'docs' / 'report')])
    assert b'user:23456:r--' in acl
    sparse = os.stat(backups / 'latest' / 'var' / 'lib' / 'image')
    assert sparse.st_size > 8 * 1024 * 1024
    assert sparse.st_blocks * 512 < 1024 * 1024, "the sparse file must stay sparse"
    assert sorted(os.listdir(os.path.join(os.fsencode(str(backups)), b'latest', b'odd'))) == sorted(ODD_NAMES)


def test_incremental_backup_mirrors_changes(run_cli, source, backups):
    """A second run adds, changes and deletes what changed, and keeps the first snapshot as it was."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    first_snapshot = snapshot_names(backups)[0]
    first_state = take_manifest(backups / first_snapshot, times='seconds')
    os.remove(source / 'etc' / 'shadow')
    (source / 'etc' / 'new-file').write_bytes(b'new')
    (source / 'etc' / 'hostname').write_bytes(b'changed content\n')
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert take_manifest(backups / 'latest', times='seconds') == take_manifest(source, times='seconds')
    assert not (backups / 'latest' / 'etc' / 'shadow').exists()
    assert take_manifest(backups / first_snapshot, times='seconds') == first_state
    assert len(snapshot_names(backups)) == 2


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
    assert take_manifest(backups / 'latest', times='seconds') == take_manifest(source, times='seconds')


def test_snapshot_only(run_cli, source, backups):
    """-s snapshots the destination as it is, without running rsync."""
    os.makedirs(str(backups / 'latest'))
    (backups / 'latest' / 'only-in-latest').write_bytes(b'x')
    result = run_cli('--disable-notifications', '-s', source, backups / 'latest')
    assert result.returncode == 0, result
    snapshots = snapshot_names(backups)
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
    assert len(snapshot_names(backups)) == 2


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
    assert 'etc/hostname' not in result.output, "only -v lists the files (see test_summary.py)"
    assert not notifications_log.exists()


def test_dry_run_keeps_existing_backup(run_cli, source, backups):
    """-n on an existing backup changes neither latest nor the snapshots, nor rotates."""
    old_twin = backups / '2001-01-01_00-30-00'
    for name in ('2001-01-01_00-00-00', old_twin.name, '2001-02-01_00-00-00'):
        os.makedirs(str(backups / name))
    assert run_cli('--disable-notifications', '-b', source, backups / 'latest').returncode == 0
    (source / 'etc' / 'hostname').write_bytes(b'changed\n')
    before = take_manifest(backups, times='seconds')
    result = run_cli('--dry-run', source, backups / 'latest')
    assert result.returncode == 0, result
    assert take_manifest(backups, times='seconds') == before
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
    write_script(fake_bin / 'notify-send', 'exit 1\n')
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 0, result
    assert len(snapshot_names(backups)) == 1


def test_disabled_notifications(run_cli, source, backups, notifications_log):
    """--disable-notifications calls no notify-send."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    assert not notifications_log.exists()


def test_failed_backup_notifies(run_cli, source, backups, notifications_log, fake_bin):
    """A failing rsync is reported on the desktop and makes no snapshot."""
    write_script(fake_bin / 'rsync', 'exit 12\n')
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 1
    assert 'Aborting due to error: rsync failed with exit code 12' in result.output
    assert snapshot_names(backups) == []
    assert 'failed' in notifications_log.read_text().splitlines()[-1]


@pytest.mark.parametrize('code', [23, 24])
def test_partial_transfer_is_a_warning(run_cli, source, backups, fake_bin, code):
    """
    rsync's exit codes 23 and 24 are logged as warnings and the snapshot is still made.

    After 23 (files missing) the run exits with 2 ("completed with errors") and
    the summary starts with the count of missing files and where to read why;
    after 24 (files vanished, normal on a live system) it exits with 0 and the
    summary notes the vanished files.
    """
    complaint = 'file has vanished: \\"/src/%s\\"' if code == 24 else 'rsync: [sender] open \\"/src/%s\\" failed'
    write_script(fake_bin / 'rsync', '%s "$@"\n' % real_program('rsync')
                 + ''.join('echo "%s" >&2\n' % (complaint % name) for name in ('a', 'b', 'c'))
                 + 'echo "rsync error: some files could not be transferred" >&2\nexit %i\n' % code)
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == (0 if code == 24 else 2), result
    assert 'WARNING' in result.output and 'rsync exited with code %i' % code in result.output
    expected = '3 file(s) vanished' if code == 24 else "3 file(s) couldn't be transferred"
    assert expected in result.output
    assert len(snapshot_names(backups)) == 1
    summary = [line for line in result.stderr.splitlines() if 'Backup to %s ' % (backups / 'latest') in line]
    assert len(summary) == 1, result
    if code == 23:
        assert ' WARNING ' in summary[0]
        assert ("Backup to %s completed with errors in " % (backups / 'latest')) in summary[0]
        assert ": 3 files are missing from it (rsync's messages before this summary say which and why); " in summary[0]
    else:
        assert ' done in ' in summary[0] and 'errors' not in summary[0]
        assert '3 files vanished during the transfer (normal on a live system)' in summary[0]


def test_snapshot_failure_leaves_no_snapshot(run_cli, source, backups, fake_bin):
    """When cp fails, nothing with a snapshot name (and no temporary copy) is left."""
    write_script(fake_bin / 'cp', 'mkdir -p "$4"; exit 1\n')
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
    assert len(snapshot_names(backups)) >= 2
    newest = snapshot_names(backups)[-1]
    assert take_manifest(backups / newest, times='seconds') == take_manifest(source, times='seconds')


def test_a_run_lists_the_set_once_for_its_snapshot(source, backups, monkeypatch):
    """
    The snapshot step names the snapshot from the listing made under the lock (one round trip less over SSH).

    A caller of the snapshot step alone still lists the set: it removes an
    interrupted copy that it couldn't know of otherwise.
    """
    from rsync_system_backup import RsyncSystemBackup
    from rsync_system_backup.backup_set import operations
    from rsync_system_backup.snapshots import naming, replacement
    listed = []

    def list_directory(context, directory, sudo=False):
        listed.append(directory)
        return operations.list_directory(context, directory, sudo=sudo)
    options = dict(source=str(source), destination=str(backups / 'latest'), notifications_enabled=False)
    RsyncSystemBackup(**options).execute()
    monkeypatch.setattr(naming, 'list_directory', list_directory)
    monkeypatch.setattr(replacement, 'list_directory', list_directory)
    RsyncSystemBackup(**options).execute()
    assert listed.count(str(backups)) == 1 and len(snapshot_names(backups)) == 2
    del listed[:]
    leftover = backups / '2001-01-01_00-00-00.incomplete'
    os.makedirs(str(leftover))
    RsyncSystemBackup(backup_enabled=False, rotate_enabled=False, **options).create_snapshot()
    assert listed.count(str(backups)) == 1 and not leftover.exists() and len(snapshot_names(backups)) == 3


def test_after_snapshot_runs_between_the_snapshot_and_rotation(source, backups):
    """The after_snapshot function sees the new snapshot and the snapshots that rotation then removes (issue 24)."""
    from rsync_system_backup import RsyncSystemBackup
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-30-00'])
    seen = []

    def after_snapshot(program):
        seen.append((program.summary.snapshot_pathname, list_names(backups)))

    program = RsyncSystemBackup(source=str(source), destination=str(backups / 'latest'), notifications_enabled=False,
                                after_snapshot=after_snapshot)
    program.execute()
    [(snapshot, names)] = seen
    new = os.path.basename(snapshot)
    assert sorted(names) == sorted(['2024-05-01_10-00-00', '2024-05-01_10-30-00', new, 'latest'])
    assert list_names(backups) == ['2024-05-01_10-00-00', new, 'latest']
    assert program.summary.rotation_plan.removed == [str(backups / '2024-05-01_10-30-00')]


def test_failing_after_snapshot_stops_before_rotation(source, backups):
    """An exception of after_snapshot fails the run: the snapshot stays, rotation doesn't run, the lock is gone."""
    from rsync_system_backup import RsyncSystemBackup
    from rsync_system_backup.exceptions import InvalidOptionError, RsyncSystemBackupError
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-30-00'])

    def after_snapshot(program):
        raise RsyncSystemBackupError("the after hook failed")

    program = RsyncSystemBackup(source=str(source), destination=str(backups / 'latest'), notifications_enabled=False,
                                after_snapshot=after_snapshot)
    with pytest.raises(RsyncSystemBackupError, match="the after hook failed"):
        program.execute()
    [new] = [name for name in snapshot_names(backups) if not name.startswith('2024')]
    assert take_manifest(backups / new, times='seconds') == take_manifest(source, times='seconds')
    assert '2024-05-01_10-30-00' in snapshot_names(backups)
    assert program.summary.rotation_plan is None
    # The next run takes the lock again, and rotates.
    RsyncSystemBackup(source=str(source), destination=str(backups / 'latest'), notifications_enabled=False).execute()
    assert '2024-05-01_10-30-00' not in snapshot_names(backups)
    with pytest.raises(InvalidOptionError, match="after_snapshot must be a function or None"):
        RsyncSystemBackup(destination=str(backups / 'latest'), after_snapshot='echo done')
