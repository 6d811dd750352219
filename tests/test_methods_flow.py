"""
Tests of the snapshot methods (``snapshots/methods.py``) on the test's own filesystem: options, -b alone, recovery.

They run the real command on the test's temporary directory (ext4 or tmpfs,
where ``auto`` picks the safe-hardlink method; the tests of link-dest's new
tree ask for link-dest).
"""

import logging
import os

import pytest

from rsync_system_backup import RsyncSystemBackup
from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.snapshots.replacement import NEW_NAME, OLD_NAME
from support.stand_ins import write_script
from support.trees import list_names, snapshot_names, take_manifest


@pytest.fixture
def source(tmp_path):
    """A small source tree."""
    root = tmp_path / 'source'
    (root / 'etc').mkdir(parents=True)
    (root / 'etc' / 'hostname').write_text('flow-test\n')
    (root / 'etc' / 'mode').write_text('mode changes\n')
    return root


def test_backup_alone_replaces_latest(run_cli, source, tmp_path):
    """With link-dest, -b alone builds a new latest beside the old one and swaps it in; snapshots stay as they were."""
    latest = tmp_path / 'backups' / 'latest'
    assert run_cli('--disable-notifications', '--snapshot-method=link-dest', source, latest).returncode == 0
    [snapshot] = snapshot_names(latest.parent)
    before = take_manifest(latest.parent / snapshot, times='seconds')
    old_inode = os.stat(str(latest / 'etc' / 'mode')).st_ino
    (source / 'etc' / 'mode').chmod(0o600)
    result = run_cli('-v', '--disable-notifications', '--snapshot-method=link-dest', '--backup', source, latest)
    assert result.returncode == 0, result
    assert 'Using the link-dest snapshot method' in result.output
    assert list_names(latest.parent) == sorted([snapshot, 'latest'])
    assert take_manifest(latest, times='seconds') == take_manifest(source, times='seconds')
    assert os.stat(str(latest / 'etc' / 'mode')).st_ino != old_inode
    assert os.stat(str(latest / 'etc' / 'hostname')).st_nlink == 2, "unchanged files stay hard-linked"
    assert take_manifest(latest.parent / snapshot, times='seconds') == before


def test_interrupted_swap_is_undone(run_cli, source, tmp_path):
    """A swap of latest cut in half (crash between the two renames) is put right by the next run."""
    latest = tmp_path / 'backups' / 'latest'
    assert run_cli('--disable-notifications', '--backup', source, latest).returncode == 0
    # The state after 'latest' was renamed away and before the new tree took its place.
    latest.rename(latest.parent / OLD_NAME)
    (latest.parent / NEW_NAME / 'etc').mkdir(parents=True)
    result = run_cli('--disable-notifications', '--snapshot', source, latest)
    assert result.returncode == 0, result
    assert 'Putting %s back in place of its interrupted replacement' % latest in result.output
    assert 'Removing %s, left behind by an interrupted run' % (latest.parent / NEW_NAME) in result.output
    [snapshot] = snapshot_names(latest.parent)
    assert take_manifest(latest.parent / snapshot, times='seconds') == take_manifest(source, times='seconds')
    assert list_names(latest.parent) == sorted([snapshot, 'latest'])


def test_leftover_old_latest_is_removed(run_cli, source, tmp_path):
    """The old latest of a swap whose removal was interrupted is removed by the next run."""
    latest = tmp_path / 'backups' / 'latest'
    assert run_cli('--disable-notifications', '--backup', source, latest).returncode == 0
    (latest.parent / OLD_NAME / 'etc').mkdir(parents=True)
    result = run_cli('--disable-notifications', source, latest)
    assert result.returncode == 0, result
    assert 'Removing %s, the previous %s left behind by an interrupted run' % (latest.parent / OLD_NAME, latest) \
        in result.output
    assert not (latest.parent / OLD_NAME).exists()


def test_failed_transfer_keeps_latest(run_cli, source, tmp_path, fake_bin):
    """When rsync fails under link-dest, its new tree is removed and latest stays as it was."""
    latest = tmp_path / 'backups' / 'latest'
    assert run_cli('--disable-notifications', '--snapshot-method=link-dest', source, latest).returncode == 0
    before = take_manifest(latest, times='seconds')
    write_script(fake_bin / 'rsync', 'for last do :; done\nmkdir -p "$last/partial"\nexit 12\n')
    result = run_cli('--disable-notifications', '--snapshot-method=link-dest', source, latest)
    assert result.returncode == 1, result
    assert take_manifest(latest, times='seconds') == before
    assert NEW_NAME not in os.listdir(str(latest.parent))
    assert len(snapshot_names(latest.parent)) == 1


def test_daemon_post_xfer_falls_back_to_hardlink(run_cli, tmp_path):
    """After an rsync daemon's transfer on a filesystem without reflinks, snapshots are hard links, with a warning."""
    latest = tmp_path / 'module' / 'latest'
    (latest / 'etc').mkdir(parents=True)
    (latest / 'etc' / 'hostname').write_text('written by the daemon\n')
    result = run_cli('-v', '--disable-notifications', '--snapshot', '--rotate',
                     env={'RSYNC_MODULE_PATH': str(latest), 'RSYNC_EXIT_STATUS': '0'})
    assert result.returncode == 0, result
    assert 'Using the hardlink snapshot method' in result.output
    assert 'the rsync daemon writes it in place' in result.output
    assert 'Keep the module on btrfs, or on XFS with reflinks' in result.output
    [snapshot] = snapshot_names(latest.parent)
    assert os.stat(str(latest.parent / snapshot / 'etc' / 'hostname')).st_ino == \
        os.stat(str(latest / 'etc' / 'hostname')).st_ino


def test_method_has_no_effect_for_daemon_clients(caplog):
    """A client that sends to an rsync daemon makes no snapshots, so a snapshot method there only gets a warning."""
    program = RsyncSystemBackup(destination='backup-server::backups', snapshot_method='btrfs',
                                snapshot_enabled=False, rotate_enabled=False)
    with caplog.at_level(logging.WARNING):
        program.prepare_snapshot_method()
    assert "The snapshot method btrfs has no effect here" in caplog.text


@pytest.mark.parametrize('method, message', [
    ('btrfs', 'The btrfs snapshot method needs a destination on btrfs, but'),
    ('reflink', 'The reflink snapshot method needs a filesystem with reflinks'),
])
def test_unsupported_method_is_refused(run_cli, source, tmp_path, method, message):
    """An explicit method that the destination's filesystem can't do is refused with one line, before any transfer."""
    latest = tmp_path / 'backups' / 'latest'
    result = run_cli('--disable-notifications', '--snapshot-method=%s' % method, source, latest)
    assert result.returncode == 1, result
    errors = [line for line in result.output.splitlines() if 'Aborting due to error' in line]
    assert len(errors) == 1 and message in errors[0], result
    assert not latest.exists()


def test_unknown_method(run_cli, source, tmp_path):
    """An unknown method name is a usage error (one line), and the API refuses it too."""
    result = run_cli('--snapshot-method=zfs', source, tmp_path / 'backups' / 'latest')
    assert result.returncode == 1
    assert result.output == ("Error: Unknown snapshot method 'zfs': use auto, btrfs, reflink, safe-hardlink, "
                             "link-dest or hardlink.\n")
    with pytest.raises(InvalidOptionError):
        RsyncSystemBackup(snapshot_method='Hardlink')
    assert RsyncSystemBackup().snapshot_method == 'auto'


def test_method_names_match_the_methods():
    """The light list of names that the command line checks is exactly the methods' names, best first."""
    from rsync_system_backup.snapshots.method_names import AUTOMATIC, METHOD_NAMES
    from rsync_system_backup.snapshots.choice import SNAPSHOT_METHODS
    assert METHOD_NAMES == (AUTOMATIC,) + tuple(SNAPSHOT_METHODS)
