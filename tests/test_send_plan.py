"""Tests of the walk-free plan (``transfer/send_plan.py``, ``transfer/send_stream.py``) on real btrfs snapshots."""

import io
import os
import struct
import subprocess
import threading
import time

import pytest

from executor.contexts import LocalContext

from rsync_system_backup.transfer.send_plan import Replay, SendPlanUnavailable, replay_send
from rsync_system_backup.transfer.send_stream import (
    ATTRIBUTE_HEADER,
    COMMAND_HEADER,
    STREAM_MAGIC,
    Command,
    StreamError,
    read_commands,
)
from support.loop_filesystems import MountedFilesystem
from support.send_plans import COPY_OPTIONS, SendPlanSeed, apply_plan, plan_in_namespace, remaining_differences
from support.stand_ins import write_script

SEEDS = range(1, 61)
"""The seeds of the randomised check, each on a filesystem of its own (failing seeds found later join them)."""


@pytest.fixture
def btrfs(tmp_path):
    """A mounted btrfs with a subvolume ``source`` (see :class:`Snapshots`)."""
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        yield Snapshots(filesystem)


class Snapshots(object):

    """A subvolume ``source`` on a mounted btrfs, its read-only snapshots, and a copy of the first as ``latest``."""

    def __init__(self, filesystem):
        """Create the subvolume."""
        self.filesystem = filesystem
        self.top = filesystem.mount_point
        filesystem.run('btrfs', '-q', 'subvolume', 'create', self.top / 'source')
        self.source = os.fsencode(filesystem.view(self.top / 'source'))

    def path(self, name):
        """The pathname of a name in the source, for this process (bytes)."""
        return self.source + b'/' + name

    def write(self, name, content=b'x'):
        """Write a file of the source."""
        with open(self.path(name), 'wb') as handle:
            handle.write(content)

    def snapshot(self, name):
        """Take a read-only snapshot of the source."""
        self.filesystem.run('btrfs', '-q', 'subvolume', 'snapshot', '-r', self.top / 'source', self.top / name)

    def copy(self, snapshot):
        """Copy a snapshot to ``latest``."""
        self.filesystem.run('rsync', *(COPY_OPTIONS + ('%s/' % (self.top / snapshot), '%s/' % (self.top / 'latest'))))

    def plan(self, old, new, *options):
        """The send plan from one snapshot to another."""
        return plan_in_namespace(self.filesystem, self.top / old, self.top / new, *options)

    def apply(self, plan, new):
        """Apply a plan to ``latest`` and list what rsync would still change."""
        apply_plan(self.filesystem, plan, self.top / new, self.top / 'latest')
        return remaining_differences(self.filesystem, self.top / new, self.top / 'latest')


ALL_BYTES = [b'n' + bytes([byte]) + b'x' for byte in range(1, 256) if byte != ord('/')]
"""Names with every byte that a name can hold (``btrfs receive --dump`` escapes most of them)."""


def test_every_byte_and_hostile_xattrs(btrfs):
    """Names come out as the exact bytes, and an xattr value with newlines adds no command (the dump would)."""
    for name in ALL_BYTES + [b'victim', b'evil']:
        btrfs.write(name)
    btrfs.snapshot('old')
    btrfs.copy('old')
    for name in ALL_BYTES:
        os.chmod(btrfs.path(name), 0o600)
    os.setxattr(btrfs.path(b'evil'), b'user.x\nunlink ./new/victim', b'd a t a\nunlink ./new/victim\n')
    btrfs.snapshot('new')
    plan = btrfs.plan('old', 'new')
    assert plan.entries == dict((name, b'f') for name in ALL_BYTES + [b'evil'])
    assert not plan.deletions and not plan.content_changes
    assert btrfs.apply(plan, 'new') == []


def test_renames_links_and_deletions(btrfs):
    """Renames (across directories, of whole directories), hard links, symlinks and deletions, with their kinds."""
    for directory in (b'd1', b'd2', b'tree', b'tree/sub'):
        os.mkdir(btrfs.path(directory))
    for name in (b'hl', b'd1/ren', b'tree/sub/f', b'content', b'modeonly', b'gone', b'x -> y', b'keep'):
        btrfs.write(name, name)
    os.link(btrfs.path(b'hl'), btrfs.path(b'd1/hl2'))
    os.link(btrfs.path(b'keep'), btrfs.path(b'd2/keep2'))
    os.symlink(b'target', btrfs.path(b'sym'))
    btrfs.snapshot('old')
    btrfs.copy('old')
    os.rename(btrfs.path(b'd1/ren'), btrfs.path(b'd2/ren2'))
    os.rename(btrfs.path(b'tree'), btrfs.path(b'd1/tree2'))
    os.chmod(btrfs.path(b'modeonly'), 0o600)
    with open(btrfs.path(b'content'), 'ab') as handle:
        handle.write(b'more')
    with open(btrfs.path(b'hl'), 'ab') as handle:
        handle.write(b'more')
    os.unlink(btrfs.path(b'gone'))
    os.unlink(btrfs.path(b'sym'))
    os.symlink(b'elsewhere', btrfs.path(b'sym'))
    os.link(btrfs.path(b'keep'), btrfs.path(b'd1/keep3'))
    os.rename(btrfs.path(b'x -> y'), btrfs.path(b'd2/new\nname'))
    btrfs.snapshot('new')
    plan = btrfs.plan('old', 'new')
    files = [b'hl', b'd1/hl2', b'content', b'modeonly', b'd2/ren2', b'd2/new\nname', b'keep', b'd2/keep2',
             b'd1/keep3', b'd1/tree2/sub/f']
    assert plan.entries == dict([(name, b'f') for name in files] + [(b'sym', b'L')] + [
        (name, b'd') for name in (b'd1', b'd2', b'd1/tree2', b'd1/tree2/sub')])
    assert plan.deletions == {b'd1/ren', b'tree', b'gone', b'x -> y'}
    assert plan.content_changes == {b'hl', b'd1/hl2', b'content', b'd2/ren2', b'd2/new\nname', b'sym', b'd1/keep3',
                                    b'd1/tree2', b'd1/tree2/sub', b'd1/tree2/sub/f'}
    assert plan.root_changed
    assert btrfs.apply(plan, 'new') == []


def test_nested_subvolumes(btrfs):
    """A nested subvolume is an empty directory of the snapshot: planned when it comes, deleted when it goes."""
    btrfs.write(b'file')
    btrfs.filesystem.run('btrfs', '-q', 'subvolume', 'create', btrfs.top / 'source' / 'stays')
    btrfs.snapshot('old')
    btrfs.copy('old')
    btrfs.filesystem.run('btrfs', '-q', 'subvolume', 'create', btrfs.top / 'source' / 'nested')
    btrfs.write(b'nested/inside')
    btrfs.snapshot('new')
    plan = btrfs.plan('old', 'new')
    assert plan.entries == {b'nested': b'd'} and not plan.deletions
    # The kernel gives such a directory the time when it first shows it: rsync's plan would copy that time.
    assert set(btrfs.apply(plan, 'new')) <= {'.d..t...... nested/', '.d..t...... stays/'}
    btrfs.filesystem.run('btrfs', '-q', 'subvolume', 'delete', btrfs.top / 'source' / 'nested')
    btrfs.snapshot('newer')
    plan = btrfs.plan('new', 'newer')
    assert not plan.entries and plan.deletions == {b'nested'}


def test_excluded_names(btrfs):
    """A name that the filters leave out, or that lies below a directory they leave out, isn't planned."""
    os.makedirs(btrfs.path(b'skip/deeper'))
    os.mkdir(btrfs.path(b'keep'))
    btrfs.snapshot('old')
    for name in (b'skip/deeper/file', b'skip/file', b'keep/file', b'keep/file.tmp', b'skip.tmp'):
        btrfs.write(name)
    btrfs.snapshot('new')
    plan = btrfs.plan('old', 'new', '--filter=- /skip/', '--exclude=*.tmp')
    assert plan.entries == {b'keep/file': b'f', b'keep': b'd'}
    assert b'skip/deeper/file' in btrfs.plan('old', 'new').entries


def test_no_parent_snapshot(btrfs):
    """A parent that isn't a read-only snapshot makes the send fail: the plan is unavailable and says why."""
    btrfs.filesystem.run('btrfs', '-q', 'subvolume', 'snapshot', btrfs.top / 'source', btrfs.top / 'writable')
    btrfs.snapshot('new')
    with pytest.raises(SendPlanUnavailable) as raised:
        btrfs.plan('writable', 'new')
    assert 'btrfs send failed' in raised.value.reason


def test_stream_matches_the_dump(btrfs):
    """The commands read from the binary stream are the ones btrfs receive --dump shows, in order."""
    os.mkdir(btrfs.path(b'dir'))
    btrfs.write(b'dir/file')
    btrfs.snapshot('old')
    btrfs.write(b'dir/new file')
    os.rename(btrfs.path(b'dir'), btrfs.path(b'moved'))
    os.setxattr(btrfs.path(b'moved/file'), b'user.a', b'1')
    btrfs.snapshot('new')
    stream = subprocess.run(btrfs.filesystem.command('btrfs', 'send', '--no-data', '-q', '-p', btrfs.top / 'old',
                                                     btrfs.top / 'new'), check=True, capture_output=True).stdout
    dump = btrfs.filesystem.run('sh', '-c', 'btrfs send --no-data -q -p "$1" "$2" | btrfs receive --dump', 'dump',
                                btrfs.top / 'old', btrfs.top / 'new').stdout
    names = [command.name for command in read_commands(io.BytesIO(stream))]
    assert ['snapshot'] + names[1:] == [line.split()[0] for line in dump.splitlines()]
    assert {'mkfile', 'rename', 'set_xattr', 'utimes'} <= set(names)


@pytest.mark.parametrize('data, problem', [
    (b'not a stream', "it isn't a btrfs send stream"),
    (STREAM_MAGIC + struct.pack('<I', 9), 'it has version 9'),
    (STREAM_MAGIC + struct.pack('<I', 1) + struct.pack('<IHI', 0, 99, 0), 'unknown command (number 99)'),
    (STREAM_MAGIC + struct.pack('<I', 1) + struct.pack('<IHI', 10, 2, 0), 'a command is cut short'),
    (STREAM_MAGIC + struct.pack('<I', 1), 'it ends without an end command'),
])
def test_streams_that_cant_be_read(data, problem):
    """A stream that isn't one, is cut short, or has an unknown version or command raises StreamError."""
    with pytest.raises(StreamError) as raised:
        list(read_commands(io.BytesIO(data)))
    assert problem in str(raised.value)


def encode_command(number, path):
    """Encode one command of a version 1 send stream with a path attribute (bytes)."""
    attribute = ATTRIBUTE_HEADER.pack(15, len(path)) + path
    return COMMAND_HEADER.pack(len(attribute), number, 0) + attribute


STREAM_START = STREAM_MAGIC + struct.pack('<I', 1) + encode_command(2, b'new')
"""The start of a stream: its header and the ``snapshot`` command."""


def test_commands_come_while_the_stream_is_written():
    """Each command is given as soon as it has been read, not when the stream ends."""
    reader, writer = os.pipe()
    got = []
    with io.open(reader, 'rb') as stream, io.open(writer, 'wb', buffering=0) as output:
        output.write(STREAM_START + encode_command(4, b'o257-5-0'))
        commands = read_commands(stream)
        thread = threading.Thread(target=lambda: got.extend(next(commands) for _ in range(2)))
        thread.start()
        thread.join(5)
        assert [command.name for command in got] == ['snapshot', 'mkdir'], "the reader waited for the end"
        output.write(COMMAND_HEADER.pack(0, 21, 0))
        assert list(commands) == []


def test_send_that_fails_halfway(fake_bin, monkeypatch, tmp_path):
    """A send that stops in the middle of a command is reported with its own message, not as a cut stream."""
    stream = tmp_path / 'stream'
    stream.write_bytes(STREAM_START + encode_command(4, b'o257-5-0')[:-3])
    write_script(fake_bin / 'btrfs', 'cat "%s"\necho "ERROR: a stand-in broke off" >&2\nexit 1\n' % stream)
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    with pytest.raises(SendPlanUnavailable) as raised:
        replay_send(LocalContext(), str(tmp_path / 'old'), str(tmp_path / 'new'))
    assert raised.value.reason == 'btrfs send failed: ERROR: a stand-in broke off'


def test_send_whose_stream_cannot_be_read(fake_bin, monkeypatch, tmp_path):
    """A stream that isn't one is reported as such, also when much follows (which is read, so the send ends well)."""
    write_script(fake_bin / 'btrfs', "printf 'not a stream'\nhead -c 1000000 /dev/zero\n")
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    with pytest.raises(SendPlanUnavailable) as raised:
        replay_send(LocalContext(), str(tmp_path / 'old'), str(tmp_path / 'new'))
    assert raised.value.reason == "can't read the send stream: it isn't a btrfs send stream"


def test_send_is_stopped_when_its_stream_cannot_be_replayed(fake_bin, monkeypatch, tmp_path):
    """A command that the replay refuses ends the plan at once, and the send, which would write forever, is stopped."""
    stream = tmp_path / 'stream'
    stream.write_bytes(STREAM_START + encode_command(18, b'a/../b'))
    pid_file = tmp_path / 'pid'
    write_script(fake_bin / 'btrfs', 'echo $$ > "%s"\ncat "%s"\nexec yes\n' % (pid_file, stream))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    started = time.monotonic()
    with pytest.raises(SendPlanUnavailable) as raised:
        replay_send(LocalContext(), str(tmp_path / 'old'), str(tmp_path / 'new'))
    assert "names 'a/../b'" in raised.value.reason
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


@pytest.mark.parametrize('commands, reason', [
    ([Command('subvol', {'path': b'x'})], "isn't relative to a parent snapshot"),
    ([Command('snapshot', {'path': b'x'}), Command('mkdir', {'path': b'o257-1-0'}),
      Command('unlink', {'path': b'o257-1-0/nothing'})], "names 'nothing', which isn't there"),
    ([Command('snapshot', {'path': b'x'}), Command('chmod', {'path': b'a/../b'})], "names 'a/../b'"),
    ([Command('snapshot', {'path': b'x'}), Command('enable_verity', {})], "names no path"),
])
def test_streams_that_cant_be_replayed(commands, reason):
    """A stream without a parent, a path that isn't there or isn't clean makes the plan unavailable."""
    with pytest.raises(SendPlanUnavailable) as raised:
        Replay().run(commands)
    assert reason in raised.value.reason


@pytest.mark.parametrize('seed', SEEDS)
def test_random_changes(tmp_path, seed):
    """The send plan names all that rsync's plan names, and applied to a copy of OLD, it makes NEW."""
    with MountedFilesystem('btrfs', tmp_path / 'btrfs', size=512) as filesystem:
        check = SendPlanSeed(seed, filesystem, excludes=seed % 2 == 0)
        problems = check.run()
        assert not problems, '\n'.join(problems[:20] + check.log)


def test_read_files_are_no_changes(btrfs):
    """Reading the source between the snapshots (new access times) plans nothing; a new modification time does."""
    os.mkdir(btrfs.path(b'dir'))
    for name in (b'read', b'dir/read', b'touched'):
        btrfs.write(name, name)
    btrfs.snapshot('old')
    btrfs.copy('old')
    time.sleep(0.01)
    for name in (b'read', b'dir/read', b'touched'):
        with open(btrfs.path(name), 'rb') as handle:
            handle.read()
    os.listdir(btrfs.path(b'dir'))
    os.utime(btrfs.path(b'touched'), ns=(time.time_ns(), 1000000000))
    btrfs.snapshot('new')
    # Reading set new access times (relatime: the first read after a write does), which the stream carries.
    old, new = (btrfs.filesystem.view(btrfs.top / name / 'read') for name in ('old', 'new'))
    assert os.lstat(old).st_atime_ns != os.lstat(new).st_atime_ns
    plan = btrfs.plan('old', 'new')
    assert plan.entries == {b'touched': b'f'}
    assert plan.deletions == set()
    assert btrfs.apply(plan, 'new') == []
