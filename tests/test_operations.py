"""
Tests of listing a directory on another system: one command per listing.

Over SSH every command is a round trip, and a run lists the backup directory
several times (the marker check, recovery, the snapshot and rotation), so
:func:`.list_directory()` asks with a single command. Here a stand-in
context runs the commands on this system and records them.
"""

import subprocess

from rsync_system_backup.target.operations import list_directory


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
