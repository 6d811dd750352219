"""Tests of the parallel hard-link copy (``snapshots/parallel_copy.py``) on the test's own filesystem."""

import os
import resource
import signal
import stat
import subprocess
import time

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.snapshots.parallel_copy import link_copy
from support.processes import wait_for
from support.stand_ins import log_arguments, logged_calls, real_program, write_script
from support.trees import take_manifest, write_file


WAYS = {'thread': None, 'command': 'idle'}
"""
The I/O scheduling class that runs the copy's program each way: none runs it
in a thread of this process, a class makes it a command of its own.
"""


def make_awkward_tree(latest):
    """
    Make a ``latest`` with what a split copy could get wrong.

    Directories at the top with their own mode, owner, xattrs, ACLs and
    times; a hard-link group across two of them; files, a symbolic link to a
    directory and a FIFO at the top; awkward names; an empty directory.
    """
    write_file(latest / 'etc' / 'passwd', b'root:x:0:0', mode=0o644, mtime=1400000000)
    write_file(latest / 'etc' / '-starts with a dash', b'dash', mtime=1400000001)
    write_file(latest / 'etc' / 'line\nbreak', b'newline', mtime=1400000002)
    write_file(latest / 'home' / 'alice' / 'notes', b'notes', mode=0o600, owner=(1234, 5678), mtime=1400000003)
    os.link(str(latest / 'home' / 'alice' / 'notes'), str(latest / 'etc' / 'notes-link'))
    write_file(latest / 'top file', b'at the top', mtime=1400000004)
    os.symlink('home', str(latest / 'link-to-home'))
    os.mkfifo(str(latest / 'fifo'), 0o640)
    (latest / 'empty').mkdir()
    os.chown(str(latest / 'home'), 1234, 5678)
    os.chmod(str(latest / 'home'), 0o751)
    os.setxattr(str(latest / 'home'), 'user.note', b'kept')
    subprocess.check_call(['setfacl', '-m', 'u:1234:rx', str(latest / 'etc')])
    os.setxattr(str(latest), 'user.top', b'top')
    os.chmod(str(latest), 0o755)
    for directory in ('etc', 'home/alice', 'home', 'empty', '.'):
        os.utime(str(latest / directory), ns=(1300000000123456789, 1300000000987654321))


@pytest.mark.parametrize('way', sorted(WAYS))
def test_copy_is_what_cp_archive_link_makes(tmp_path, fake_bin, monkeypatch, way):
    """
    The copy has every name, attribute and time of ``latest``, each file a
    link to its inode, made by several cp, in a thread of this process (whose
    working directory stays) or in a command of its own.
    """
    latest = tmp_path / 'latest'
    make_awkward_tree(latest)
    for index in range(40):
        write_file(latest / ('dir-%02i' % index) / 'file', b'%i' % index, mtime=1400000000 + index)
        os.utime(str(latest / ('dir-%02i' % index)), ns=(1300000000, 1300000000 + index))
    os.utime(str(latest), ns=(1300000000123456789, 1300000000987654321))
    reference = tmp_path / 'reference'
    subprocess.check_call(['cp', '--archive', '--link', str(latest), str(reference)])
    log_arguments(fake_bin / 'cp', tmp_path / 'cp-calls', real_program('cp'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    working_directory = os.getcwd()
    copy = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'), ionice=WAYS[way])
    assert copy.returncode == 0, copy.stderr
    assert os.getcwd() == working_directory
    assert take_manifest(tmp_path / 'copy') == take_manifest(reference) == take_manifest(latest)
    for directory, subdirectories, files in os.walk(str(latest)):
        for name in files:
            original = os.path.join(directory, name)
            made = os.path.join(str(tmp_path / 'copy'), os.path.relpath(original, str(latest)))
            assert os.lstat(made).st_ino == os.lstat(original).st_ino
    calls = logged_calls(tmp_path / 'cp-calls')
    assert len(calls) > 1 and all('--parents' in call for call in calls)


def test_without_python_one_cp_copies(tmp_path, fake_bin, monkeypatch):
    """A destination without python3 gets the same copy from one cp (a local one runs the program in a thread)."""
    latest = tmp_path / 'latest'
    make_awkward_tree(latest)
    for program in ('sh', 'cp', 'ionice'):
        os.symlink(real_program(program), str(fake_bin / program))
    monkeypatch.setenv('PATH', str(fake_bin))
    copy = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'), ionice=WAYS['command'])
    assert copy.returncode == 0, copy.stderr
    assert take_manifest(tmp_path / 'copy') == take_manifest(latest)


@pytest.mark.parametrize('way', sorted(WAYS))
def test_failed_cp_fails_the_copy(tmp_path, fake_bin, monkeypatch, capfd, way):
    """When a cp fails, the copy fails with cp's message (in English) and no more cp processes start."""
    latest = tmp_path / 'latest'
    for index in range(200):
        write_file(latest / ('dir-%03i' % index) / 'file', b'data')
    (fake_bin / 'cp').write_text('#!/bin/sh\necho "cp ($LC_ALL): cannot create hard link: Too many links" >&2\n'
                                 'echo call >> %s\nexit 1\n' % (tmp_path / 'calls'))
    (fake_bin / 'cp').chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    monkeypatch.setenv('LC_ALL', 'de_DE.UTF-8')
    copy = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'), ionice=WAYS[way])
    assert copy.returncode != 0
    assert b'cp (C): cannot create hard link: Too many links' in copy.stderr
    assert 'Too many links' not in capfd.readouterr().err
    assert len((tmp_path / 'calls').read_text().splitlines()) <= os.cpu_count()


def test_existing_target_is_left_alone(tmp_path):
    """A copy never goes into a directory that exists (cp would copy into it): that fails, and it stays as it was."""
    latest = tmp_path / 'latest'
    write_file(latest / 'dir' / 'file', b'data')
    write_file(tmp_path / 'copy' / 'mine', b'mine')
    copy = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'))
    assert copy.returncode != 0
    assert copy.stderr.decode().splitlines() == ["Failed to copy %s to %s: [Errno 17] File exists: '%s'"
                                                 % (latest, tmp_path / 'copy', tmp_path / 'copy')]
    assert sorted(os.listdir(str(tmp_path / 'copy'))) == ['mine']


def test_symbolic_link_at_the_top_is_linked_not_followed(tmp_path):
    """A symbolic link to a directory at the top of latest is copied as a link, and nothing is written through it."""
    latest, outside = tmp_path / 'latest', tmp_path / 'outside'
    write_file(outside / 'private', b'not to be copied')
    latest.mkdir()
    os.symlink(str(outside), str(latest / 'planted'))
    copy = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'))
    assert copy.returncode == 0, copy.stderr
    assert stat.S_ISLNK(os.lstat(str(tmp_path / 'copy' / 'planted')).st_mode)
    assert sorted(os.listdir(str(outside))) == ['private']


def test_relative_pathnames(tmp_path, monkeypatch):
    """Relative pathnames (an SSH destination such as host:backups/latest) are taken from the working directory."""
    latest = tmp_path / 'backups' / 'latest'
    make_awkward_tree(latest)
    # A directory of latest by the target's relative name: cp must not write there.
    (latest / 'backups').mkdir()
    monkeypatch.chdir(tmp_path)
    copy = link_copy(LocalContext(), 'backups/latest', 'backups/snapshot')
    assert copy.returncode == 0, copy.stderr
    assert take_manifest(tmp_path / 'backups' / 'snapshot') == take_manifest(latest)
    assert os.listdir(str(latest / 'backups')) == []


def test_directories_get_no_attributes_of_their_own(tmp_path):
    """The directories the copy makes don't keep ACLs inherited from a default ACL above them."""
    root = tmp_path / 'backups'
    root.mkdir()
    subprocess.check_call(['setfacl', '-d', '-m', 'u:1234:rwx', str(root)])
    latest = root / 'latest'
    subprocess.check_call(['cp', '--archive', '--no-preserve=all', '-r', '--', str(make_plain_tree(tmp_path)),
                           str(latest)])
    subprocess.check_call(['setfacl', '-R', '-b', '-k', str(latest)])
    copy = link_copy(LocalContext(), str(latest), str(root / 'snapshot'))
    assert copy.returncode == 0, copy.stderr
    assert take_manifest(root / 'snapshot') == take_manifest(latest)
    for directory in ('snapshot', 'snapshot/top'):
        assert not [name for name in os.listxattr(str(root / directory)) if name.startswith('system.posix_acl')]


def make_plain_tree(tmp_path):
    """Make a small tree without ACLs (a directory at the top with a file, a file at the top) and give its path."""
    tree = tmp_path / 'plain'
    write_file(tree / 'top' / 'file', b'in a directory')
    write_file(tree / 'file', b'at the top')
    return tree


def test_many_directories_at_the_top(tmp_path):
    """More directories at the top than the process may have open files is fine."""
    latest = tmp_path / 'latest'
    for index in range(300):
        write_file(latest / ('home-%03i' % index) / 'file', b'%i' % index)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    try:
        copy = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert copy.returncode == 0, copy.stderr
    assert take_manifest(tmp_path / 'copy') == take_manifest(latest)


def test_batches_have_a_size_limit(tmp_path, fake_bin, monkeypatch):
    """However long the names, no cp gets more than 64 KiB of them."""
    latest = tmp_path / 'latest'
    (latest / 'long').mkdir(parents=True)
    for index in range(5000):
        (latest / 'long' / ('%04i' % index + 'x' * 246)).touch()
    log_arguments(fake_bin / 'cp', tmp_path / 'cp-calls', real_program('cp'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    copy = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'))
    assert copy.returncode == 0, copy.stderr
    sizes = [sum(len(argument) + 1 for argument in call if argument.startswith('long/'))
             for call in logged_calls(tmp_path / 'cp-calls')]
    assert sum(1 for call in logged_calls(tmp_path / 'cp-calls') for argument in call
               if argument.startswith('long/')) == 5000
    assert max(sizes) <= 65536
    assert len(os.listdir(str(tmp_path / 'copy' / 'long'))) == 5000


class Interruption(Exception):

    """What the test's signal handler raises, as the run's own handler raises :exc:`.Interrupted`."""


def test_interrupted_wait_stops_the_thread(tmp_path, fake_bin, monkeypatch):
    """A signal that cuts short the wait for a copy in a thread stops the copy first: no cp outlives the wait."""
    latest = tmp_path / 'latest'
    make_awkward_tree(latest)
    write_script(fake_bin / 'cp', 'echo $$ >> %s\nexec sleep 60\n' % (tmp_path / 'pids'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))

    def interrupt(signal_number, frame):
        raise Interruption()
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        started = link_copy(LocalContext(), str(latest), str(tmp_path / 'copy'), asynchronous=True)
        wait_for(lambda: (tmp_path / 'pids').exists(), message="a cp to start")
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        began = time.monotonic()
        with pytest.raises(Interruption):
            started.wait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - began < 30
    assert not started.is_running
    for pid in (tmp_path / 'pids').read_text().split():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
