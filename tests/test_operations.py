"""
Tests of ``backup_set/operations.py``: listing a directory on another system takes one command, flushing.

Over SSH every command is a round trip, and a run lists the backup directory
several times (the marker check, recovery, whose listing the snapshot
reuses, and rotation), so :func:`.list_directory()` asks with a single command. Here a stand-in
context runs the commands on this system and records them.
"""

import os
import pathlib
import re
import subprocess

import pytest

from rsync_system_backup.backup_set.operations import list_directory
from support.loop_filesystems import MountedFilesystem
from support.stand_ins import real_program, write_script
from support.trees import make_source, snapshot_names


class RecordingContext(object):

    """A stand-in for a remote execution context: it runs commands here and records them."""

    def __init__(self):
        """Start with no commands."""
        self.commands = []

    def capture(self, *command, **options):
        """Run a command, record it and return its output (decoded, like executor's)."""
        self.commands.append(command)
        return subprocess.check_output(command).decode('utf-8', 'surrogateescape')

    def test(self, *command, **options):
        """Run a command, record it and report whether it succeeded."""
        self.commands.append(command)
        return subprocess.call(command) == 0

    def execute(self, *command, **options):
        """Run a command that must succeed, and record it."""
        self.commands.append(command)
        subprocess.check_call(command)


def test_listing_is_one_command(tmp_path):
    """A directory's names, awkward ones included, come from one command."""
    names = ['latest', '2024-05-01_10-00-00', 'with space', 'new\nline', '.rsync-system-backup']
    for name in names:
        (tmp_path / name).mkdir()
    context = RecordingContext()
    assert sorted(list_directory(context, str(tmp_path))) == sorted(names)
    assert len(context.commands) == 1


def test_missing_directory_is_empty(tmp_path):
    """A directory that doesn't exist lists as empty, also with one command."""
    context = RecordingContext()
    assert list_directory(context, str(tmp_path / 'missing')) == []
    assert len(context.commands) == 1


@pytest.mark.parametrize('method', ['hardlink', 'link-dest'])
def test_flush_before_the_final_renames(tmp_path, run_cli, fake_bin, method):
    """
    ``sync -f`` flushes the filesystem before a snapshot gets its final name and before ``latest`` is swapped.

    A stand-in ``sync`` notes its arguments and what the backup directory holds at that moment, then runs the real one.
    """
    source = tmp_path / 'source'
    make_source(source)
    backups = tmp_path / 'backups'
    log = tmp_path / 'sync.log'
    write_script(fake_bin / 'sync', 'echo "$*: $(ls -A %s | tr "\\n" " ")" >> %s\nexec %s "$@"\n'
                 % (backups, log, real_program('sync')))
    for _ in range(2):
        result = run_cli('--disable-notifications', '--snapshot-method=%s' % method, source, backups / 'latest')
        assert result.returncode == 0, result
    calls = log.read_text().splitlines()
    snapshots = snapshot_names(backups)
    assert len(snapshots) == 2
    new_tree = backups / '.rsync-system-backup.new'
    expected = []
    for snapshot in snapshots:
        if method == 'link-dest':
            # The new tree, while latest is still the old one (or missing, before the first swap).
            expected.append(re.compile(r'^-f -- %s: .*\.rsync-system-backup\.new' % re.escape(str(new_tree))))
        # The new snapshot, still under its temporary name, its final name not yet taken.
        temporary, final_name = re.escape(str(backups / snapshot)), re.escape(snapshot)
        expected.append(re.compile(r'^-f -- %s\.incomplete: (?!.*\b%s )' % (temporary, final_name)))
    assert len(calls) == len(expected), calls
    for call, pattern in zip(calls, expected):
        assert pattern.match(call), (call, pattern.pattern)


def test_btrfs_snapshots_reach_the_disk_without_a_flush(tmp_path, fake_bin):
    """
    A btrfs snapshot commits a transaction, with ``latest``'s data: neither its rename nor the source record needs
    ``sync -f``.

    The manifest, which no flush writes then, is on disk by itself (it is
    fsynced, see :func:`.new_manifest()`), and ``--verify`` checks the
    snapshots. The source is a btrfs subvolume too, so the runs after the
    first plan from its snapshots and write the record of the source
    snapshot after the destination's snapshot.
    """
    log = tmp_path / 'sync.log'
    write_script(fake_bin / 'sync', 'echo "$*" >> %s\nexec %s "$@"\n' % (log, real_program('sync')))
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        source = filesystem.mount_point / 'src'
        filesystem.run('btrfs', '-q', 'subvolume', 'create', source)
        make_source(pathlib.Path(filesystem.view(source)))
        latest = filesystem.mount_point / 'backups' / 'latest'
        for number in range(3):
            (pathlib.Path(filesystem.view(source)) / ('round-%i' % number)).write_text('round %i' % number)
            result = filesystem.run_cli('-v', source, latest, env=dict(PATH='%s:%s' % (fake_bin, os.environ['PATH'])))
            assert result.returncode == 0, result.output
            assert "Using the btrfs snapshot method" in result.output
            assert ("Planned the transfer from the snapshots of %s" % source in result.output) == (number > 0)
        assert not log.exists(), log.read_text()
        backups = pathlib.Path(filesystem.view(latest.parent))
        assert len(snapshot_names(backups)) >= 2
        assert (backups / '.rsync-system-backup.source-snapshot').exists()
        assert (backups / 'latest' / 'round-2').read_text() == 'round 2'
        verified = filesystem.run_cli('--verify-all', latest)
        assert verified.returncode == 0, verified.output


@pytest.mark.parametrize('name', ['.rsync-system-backup', '.rsync-system-backup.lock'])
def test_marker_and_lock_never_follow_planted_links(tmp_path, run_cli, source, name):
    """A symbolic link planted under the marker's or the lock's name is refused, and its target never written."""
    backups = tmp_path / 'backups'
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    victim = tmp_path / 'victim'
    victim.write_text('precious\n')
    (backups / name).unlink()
    (backups / name).symlink_to(victim)
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 1, result
    assert 'Traceback' not in result.output, result
    assert victim.read_text() == 'precious\n'
    assert (backups / name).is_symlink()


@pytest.mark.parametrize('remote', [False, True])
def test_write_file_replaces_a_link_instead_of_following_it(tmp_path, remote):
    """In process and through a command (as on SSH destinations) a planted link is replaced, never followed."""
    from executor.contexts import LocalContext

    from rsync_system_backup.backup_set.operations import read_file, write_file
    context = RecordingContext() if remote else LocalContext()
    victim = tmp_path / 'victim'
    victim.write_text('precious\n')
    marker = tmp_path / 'marker'
    marker.symlink_to(victim)
    with pytest.raises(Exception):
        read_file(context, str(marker), sudo=True)
    write_file(context, str(marker), 'new text\n', sudo=True)
    assert victim.read_text() == 'precious\n'
    assert not marker.is_symlink() and marker.read_text() == 'new text\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['marker', 'victim']
