"""
Tests of the manifests' program (``agent/manifests.py``) through ``manifests/remote.py``, on the test's own filesystem.

Its verbs run in this process, and as a command of their own (an I/O
scheduling class makes it one, as on another system); the known problems
come back the same either way.
"""

import os
import pathlib
import subprocess

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.agent import manifests
from rsync_system_backup.manifests.format import MANIFEST_DIRECTORY, manifest_name
from rsync_system_backup.manifests.remote import AgentFailedError, run_agent
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
        run_agent(LocalContext(), 'build', str(directory), str(directory / name), name, 'hardlink')
    return str(directory)


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
    run_agent(LocalContext(), 'build', backups, '', third, 'btrfs')
    assert run_agent(LocalContext(), 'verify', backups, third) == dict(entries=None, differences=None)
    assert run_agent(LocalContext(), 'usage', backups, third)['methods'] == {third: 'btrfs'}
    write_file(pathlib.Path(backups) / manifest_name(FIRST), b'damaged')
    run_agent(LocalContext(), 'build', backups, os.path.join(backups, SECOND), SECOND, 'hardlink')
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
        run_agent(LocalContext(), 'build', backups, os.path.join(backups, FIRST), FIRST, 'hardlink',
                  ionice=WAYS[way])
    assert str(raised.value).startswith("The manifests' program failed on the destination while running build "
                                        "(NotADirectoryError: ")
