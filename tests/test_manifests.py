"""
Tests of the manifests' program (``agent/manifests.py``) through ``manifests/remote.py``, on the test's own filesystem.

Its verbs run in this process, and as a command of their own (an I/O
scheduling class makes it one, as on another system); the known problems
come back the same either way.
"""

import hashlib
import io
import os
import pathlib
import subprocess
import time

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.agent import manifests
from rsync_system_backup.manifests.format import (
    LATEST_RECORD,
    MANIFEST_DIRECTORY,
    format_entry,
    manifest_name,
    read_entry_lines,
)
from rsync_system_backup.manifests.incremental import (
    END,
    InstructionReader,
    encode_changes,
    encode_instructions,
    encode_name,
    order_key,
)
from rsync_system_backup.manifests.recording import ManifestBuilder
from rsync_system_backup.manifests.remote import AgentFailedError, run_agent
from rsync_system_backup.manifests.scan import scan_tree, walk
from rsync_system_backup.exceptions import RemoteCommandError
from support.trees import write_file

WAYS = {'here': None, 'shipped': 'idle'}
"""The I/O scheduling class that runs the program each way: none runs it in this process."""

FIRST, SECOND = '2024-01-01_00-00-00', '2024-01-02_00-00-00'
"""The names of the test's snapshots."""


@pytest.fixture
def backups(tmp_path):
    """A directory with ``latest`` and two snapshots, each with a manifest; give its pathname (a string)."""
    directory = tmp_path / 'backups'
    for name in ('latest', FIRST, SECOND):
        write_file(directory / name / 'file', b'content of %s' % name.encode())
        build(str(directory), str(directory / name), name, 'hardlink')
    return str(directory)


def build(directory, tree, name, method, described='', changes=None, **options):
    """
    Build a manifest with the program (see :func:`.agent.manifests.build_manifest()`).

    :param directory: The directory that holds the snapshots.
    :param tree: The tree to describe, or an empty string.
    :param name: The snapshot's name.
    :param method: The snapshot method.
    :param described: The snapshot whose manifest describes the tree before the changes.
    :param changes: The changes (see :func:`.encode_instructions()`), or :data:`None` to walk.
    :param options: More options of :func:`.run_agent()`.
    :returns: The program's answer.
    """
    return run_agent(LocalContext(), 'build', directory, tree, method, described,
                     data=encode_instructions(name, changes), **options)


@pytest.mark.parametrize('way', sorted(WAYS))
def test_verbs_answer_both_ways(backups, way):
    """Verify, diff and usage give the same answers in this process and in a command of their own."""
    ionice = WAYS[way]
    verified = run_agent(LocalContext(), 'verify', backups, FIRST, ionice=ionice)
    assert verified['entries'] == 2 and not any(verified['differences'].values())
    compared = run_agent(LocalContext(), 'diff', backups, FIRST, SECOND, ionice=ionice)
    assert compared['source'] == 'manifests'
    assert [entry[0] for entry in compared['differences']['changed']] == ['file']
    measured = run_agent(LocalContext(), 'usage', backups, FIRST, SECOND, 'latest', ionice=ionice)
    assert measured['methods'] == {FIRST: 'hardlink', SECOND: 'hardlink', 'latest': 'hardlink'}
    assert sorted(measured['sizes']) == sorted([FIRST, SECOND, 'latest'])


@pytest.mark.parametrize('way', sorted(WAYS))
def test_known_problems(backups, way):
    """A missing or damaged manifest, or a snapshot that can't be read, is a known problem with its message."""
    ionice = WAYS[way]
    os.unlink(os.path.join(backups, manifest_name(SECOND)))
    with pytest.raises(AgentFailedError) as raised:
        run_agent(LocalContext(), 'verify', backups, SECOND, ionice=ionice)
    assert str(raised.value) == "%s has no manifest (%s is missing)" % (
        SECOND, os.path.join(backups, manifest_name(SECOND)))
    write_file(pathlib.Path(backups) / manifest_name(SECOND), b'not gzip')
    with pytest.raises(AgentFailedError) as raised:
        run_agent(LocalContext(), 'verify', backups, SECOND, ionice=ionice)
    assert str(raised.value).startswith("Can't read the manifest %s: " % os.path.join(backups, manifest_name(SECOND)))
    assert run_agent(LocalContext(), 'usage', backups, SECOND, ionice=ionice)['methods'] == {SECOND: ''}
    os.unlink(os.path.join(backups, manifest_name(SECOND)))
    subprocess.run(['rm', '-r', os.path.join(backups, FIRST)], check=True)
    with pytest.raises(AgentFailedError) as raised:
        run_agent(LocalContext(), 'verify', backups, FIRST, ionice=ionice)
    assert str(raised.value).startswith("Can't read %s: " % os.path.join(backups, FIRST))
    with pytest.raises(AgentFailedError) as raised:
        run_agent(LocalContext(), 'diff', backups, FIRST, SECOND, ionice=ionice)
    assert str(raised.value).startswith("Can't read the snapshots to compare: ")


def test_manifests_without_entries_or_lending_nothing(backups):
    """
    A manifest without entries records the method only; a damaged earlier
    manifest lends no checksums but doesn't stop the next; without a manifest
    two snapshots are compared by walking them.
    """
    third = '2024-01-03_00-00-00'
    write_file(pathlib.Path(backups) / third / 'file', b'longer content of the third snapshot')
    build(backups, '', third, 'btrfs')
    assert run_agent(LocalContext(), 'verify', backups, third) == dict(entries=None, differences=None)
    assert run_agent(LocalContext(), 'usage', backups, third)['methods'] == {third: 'btrfs'}
    write_file(pathlib.Path(backups) / manifest_name(FIRST), b'damaged')
    build(backups, os.path.join(backups, SECOND), SECOND, 'hardlink')
    assert run_agent(LocalContext(), 'verify', backups, SECOND)['entries'] == 2
    compared = run_agent(LocalContext(), 'diff', backups, SECOND, third)
    assert compared['source'] == 'walk'
    assert [entry[0] for entry in compared['differences']['changed']] == ['file']


def test_set_that_changes_while_it_is_measured(backups, monkeypatch):
    """A backup set that changes under the walk is a known problem: try again."""
    def changing(*arguments):
        raise OSError(2, "No such file or directory")
    monkeypatch.setattr(manifests, 'measure_exclusive_sizes', changing)
    with pytest.raises(AgentFailedError) as raised:
        run_agent(LocalContext(), 'usage', backups, FIRST)
    assert str(raised.value) == ("The backup set in %s changed while it was measured ([Errno 2] No such file or "
                                 "directory): try again" % backups)


@pytest.mark.parametrize('way', sorted(WAYS))
def test_progress_goes_to_this_process(backups, capfd, way):
    """With progress the verification shows its count on this process's standard error, and clears the line."""
    assert run_agent(LocalContext(), 'verify', backups, FIRST, progress=True, ionice=WAYS[way])['entries'] == 2
    shown = capfd.readouterr().err
    assert shown.startswith('\rVerifying %s: ' % FIRST) and shown.endswith('\r\x1b[K')


@pytest.mark.parametrize('way', sorted(WAYS))
def test_failing_program(backups, way):
    """An error the program doesn't know ends it, and the message names it."""
    subprocess.run(['rm', '-r', os.path.join(backups, MANIFEST_DIRECTORY)], check=True)
    write_file(pathlib.Path(backups) / MANIFEST_DIRECTORY, b'in the way')
    with pytest.raises(RemoteCommandError) as raised:
        build(backups, os.path.join(backups, FIRST), FIRST, 'hardlink', ionice=WAYS[way])
    assert str(raised.value).startswith("The manifests' program failed on the destination while running build "
                                        "(NotADirectoryError: ")


def test_order_key_follows_the_walk(tmp_path):
    """Sorting paths by order_key() gives the walk's order: a directory's entries before its next sibling."""
    for name in ('a', 'a.b', 'a!', 'a/x', 'a/x/y', 'a/x.y', 'a0', '-', 'Z', '\xe9', 'b/\t', 'b/ '):
        write_file(tmp_path / 'tree' / name / 'f', b'')
    os.mkdir(os.path.join(os.fsencode(tmp_path / 'tree'), b'\xe9\xff'))
    walked = [path for path, _, _, _ in walk(str(tmp_path / 'tree'))]
    assert len(walked) > 20
    assert sorted(reversed(walked), key=order_key) == walked


@pytest.mark.parametrize('way', sorted(WAYS))
def test_build_from_changes(tmp_path, way):
    """
    Both ways, a manifest built from the previous one and the changed names
    equals a walk; without the previous manifest's name, or with another
    method, the program walks.
    """
    directory, latest = tmp_path / 'set', tmp_path / 'set' / 'latest'
    for name in ('keep/same', 'keep/changed', 'gone/deep/file', 'becomes-dir', 'becomes-file/inside', 'again/old'):
        write_file(latest / name, name.encode())
    subprocess.run(['cp', '-al', str(latest), str(directory / FIRST)], check=True)
    assert build(str(directory), str(latest), FIRST, 'safe-hardlink')['source'] == 'walk'
    os.unlink(str(latest / 'keep' / 'changed'))
    write_file(latest / 'keep' / 'changed', b'new content')
    subprocess.run(['rm', '-r', str(latest / 'gone'), str(latest / 'becomes-dir'), str(latest / 'becomes-file'),
                    str(latest / 'again')], check=True)
    write_file(latest / 'becomes-dir' / 'below' / 'file', b'below')
    write_file(latest / 'becomes-file', b'a file now')
    # Deleted and made again (as two planned passes may do): nothing of the old directory stays.
    write_file(latest / 'again' / 'new', b'new')
    changes = ([b'keep', b'keep/changed', b'gone', b'becomes-dir', b'becomes-file', b'again', b'again/new'],
               [b'gone', b'becomes-file', b'again'])
    ionice = WAYS[way]
    for method, described, source in (('safe-hardlink', '', 'walk'), ('hardlink', FIRST, 'walk'),
                                      ('safe-hardlink', FIRST, 'changes')):
        built = build(str(directory), str(latest), SECOND, method, described, changes, ionice=ionice)
        assert built['source'] == source, (method, described)
        lines = read_entry_lines(os.path.join(str(directory), manifest_name(SECOND)))[2]
        assert lines == [format_entry(entry)[:-1].encode() for entry in scan_tree(str(latest))]
        assert (directory / MANIFEST_DIRECTORY / LATEST_RECORD).read_text() == SECOND + '\n'


@pytest.mark.parametrize('way', sorted(WAYS))
def test_build_after_attributes_changed_in_place(tmp_path, way):
    """
    A name whose attributes changed in place builds from the changes only when they list every name of its inode.

    rsync changes the mode of a file with two names through one of them,
    and both change: when the changes list one name, the program walks.
    """
    directory, latest = tmp_path / 'set', tmp_path / 'set' / 'latest'
    write_file(latest / 'one', b'shared')
    write_file(latest / 'other', b'alone')
    os.link(str(latest / 'one'), str(latest / 'two'))
    subprocess.run(['cp', '-a', str(latest), str(directory / FIRST)], check=True)
    assert build(str(directory), str(latest), FIRST, 'reflink')['source'] == 'walk'
    ionice = WAYS[way]
    rounds = ((SECOND, 0o600, [b'one'], 'walk'), ('2024-01-03_00-00-00', 0o640, [b'one', b'two'], 'changes'))
    described = FIRST
    for name, mode, listed, source in rounds:
        os.chmod(str(latest / 'one'), mode)
        changes = (listed + [b'other'], [], listed + [b'other'])
        built = build(str(directory), str(latest), name, 'reflink', described, changes, ionice=ionice)
        assert built['source'] == source
        lines = read_entry_lines(os.path.join(str(directory), manifest_name(name)))[2]
        assert lines == [format_entry(entry)[:-1].encode() for entry in scan_tree(str(latest))]
        subprocess.run(['cp', '-a', str(latest), str(directory / name)], check=True)
        described = name


@pytest.mark.parametrize('way', sorted(WAYS))
def test_build_without_its_instructions(backups, way):
    """A build whose instructions end early (the run stopped before its snapshot) writes nothing."""
    before = sorted(os.listdir(os.path.join(backups, MANIFEST_DIRECTORY)))
    complete = encode_instructions('2024-01-04_00-00-00', None)
    assert complete.endswith(END + b'\0')
    for data in (b'', complete[:-len(END) - 1]):
        with pytest.raises(AgentFailedError) as raised:
            run_agent(LocalContext(), 'build', backups, os.path.join(backups, 'latest'), 'hardlink', FIRST,
                      data=data, ionice=WAYS[way])
        assert str(raised.value) == "No manifest was written: the run stopped before its snapshot."
    assert sorted(os.listdir(os.path.join(backups, MANIFEST_DIRECTORY))) == before


class TrickleStream(io.RawIOBase):

    """A binary stream whose ``read1()`` gives one byte at a time, as a slow pipe might."""

    def __init__(self, data):
        """Hold the bytes to give."""
        self.data = data

    def read1(self, size=-1):
        """Give the next byte (or nothing at the end)."""
        chunk, self.data = self.data[:1], self.data[1:]
        return chunk


def test_instructions_read_in_two_parts():
    """The changes and the name read back from any split of the stream; a cut anywhere raises ValueError."""
    changes = ([b'a', b'b/c', b'gone', b'.', b'/odd'], [b'gone'], [b'b/c'])
    data = encode_instructions('2024-01-05_00-00-00', changes)
    assert data == encode_changes(changes) + encode_name('2024-01-05_00-00-00')
    for stream in (io.BytesIO(data), TrickleStream(data)):
        reader = InstructionReader(stream)
        assert reader.read_changes() == {'a': b'+', 'b/c': b'~', 'gone': b'-', '.': b'+', '/odd': b'+'}
        assert reader.read_name() == '2024-01-05_00-00-00'
    assert InstructionReader(io.BytesIO(encode_instructions('x', None))).read_changes() is None
    assert InstructionReader(io.BytesIO(encode_instructions('x', ([], [])))).read_changes() == {}
    for cut in range(len(data)):
        reader = InstructionReader(TrickleStream(data[:cut]))
        with pytest.raises(ValueError):
            reader.read_changes()
            reader.read_name()


@pytest.mark.parametrize('way', sorted(WAYS))
def test_changes_described_before_the_name_comes(tmp_path, way):
    """
    Given the changes, the program describes them at once, before the snapshot's name comes.

    A changed file is changed once more after the changes were given (which
    no run does): the manifest holds the first change, so it was read then.
    """
    directory, latest = tmp_path / 'set', tmp_path / 'set' / 'latest'
    write_file(latest / 'file', b'old')
    subprocess.run(['cp', '-a', str(latest), str(directory / FIRST)], check=True)
    assert build(str(directory), str(latest), FIRST, 'reflink')['source'] == 'walk'
    write_file(latest / 'file', b'new')
    builder = ManifestBuilder(LocalContext(), str(directory), str(latest), 'reflink', FIRST, ionice=WAYS[way])
    builder.give_changes(([b'file'], []))
    time.sleep(2)
    write_file(latest / 'file', b'newer')
    assert builder.finish(SECOND, ([b'file'], []))['source'] == 'changes'
    lines = read_entry_lines(os.path.join(str(directory), manifest_name(SECOND)))[2]
    assert len(lines) == 2 and lines[1].endswith(hashlib.sha256(b'new').hexdigest().encode())
