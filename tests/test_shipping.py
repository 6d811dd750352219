"""
Tests of running the destination's programs (``agent/shipping.py``, ``agent/standalone.py``).

Each program runs either in this process or as a command of its own, which
``python3 -I -S`` runs from the modules' source on its standard input; the
tests run the same programs both ways (an I/O scheduling class, or a context
that isn't this system's, makes it a command) and compare the results.
"""

import io
import os
import signal
import sys
import threading

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.agent import bootstrap, kinds, protect, standalone
from rsync_system_backup.agent.shipping import Finished, StartedProgram, run_program, ship_modules, start_program
from rsync_system_backup.agent.standalone import Stopped, held_signals
from rsync_system_backup.agent.tree import Tree
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX
from rsync_system_backup.exceptions import RemoteCommandError
from rsync_system_backup.processes.signals import Interrupted, cleanup
from rsync_system_backup.snapshots.protection import PROGRAM_MODULES as PROTECT_MODULES
from rsync_system_backup.transfer.check import PROGRAM_MODULES as KINDS_MODULES
from support.stand_ins import write_script
from support.trees import take_manifest, write_file

WAYS = {'here': None, 'shipped': 'idle'}
"""The I/O scheduling class that runs a program each way: none runs it in this process."""


class ElsewhereContext(object):

    """A context that runs its commands on this system, but stands for another one (``python3`` from the PATH)."""

    def __init__(self):
        """Run commands with a local context."""
        self.local = LocalContext()

    def execute(self, *command, **options):
        """Run a command (see :meth:`executor.contexts.LocalContext.execute()`)."""
        return self.local.execute(*command, **options)


@pytest.fixture
def saved_signals():
    """Put this process's handlers of SIGINT, SIGTERM and SIGHUP back after the test."""
    handlers = {number: signal.getsignal(number) for number in standalone.HANDLED_SIGNALS}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)


def make_latest(tmp_path):
    """Make a small ``latest``: a directory, a file and a symbolic link; give its pathname (a string)."""
    write_file(tmp_path / 'latest' / 'dir' / 'file', b'content')
    os.symlink('dir', str(tmp_path / 'latest' / 'link'))
    return str(tmp_path / 'latest')


def test_modules_are_shipped_with_their_packages():
    """The packages come first (empty), then the entry module and every module with its source, then an empty line."""
    shipped = ship_modules(KINDS_MODULES)
    stream = io.BytesIO(shipped)
    headers = []
    header = stream.readline().split()
    while header:
        headers.append((header[0].decode(), header[2].decode()))
        source = stream.read(int(header[1]))
        if header[2] == b'module':
            with open(sys.modules[header[0].decode()].__file__, 'rb') as handle:
                assert source == handle.read()
        header = stream.readline().split()
    assert headers == [('rsync_system_backup', 'package'), ('rsync_system_backup.agent', 'package'),
                       (bootstrap.ENTRY_MODULE, 'module'), ('rsync_system_backup.agent.tree', 'module'),
                       ('rsync_system_backup.agent.kinds', 'module')]
    assert stream.read() == b''


@pytest.mark.parametrize('way', sorted(WAYS))
def test_both_ways_give_the_same_result(tmp_path, way):
    """A program's answer, exit code and message are the same in this process and in a command of its own."""
    latest = make_latest(tmp_path)
    questions = kinds.encode_questions([b'dir', b'dir/file', b'link', b'missing'], [])
    finished = run_program(LocalContext(), "The test", KINDS_MODULES, [latest], questions, ionice=WAYS[way])
    assert (finished.returncode, finished.stdout, finished.stderr) == (0, b'dfL-', b'')
    failed = run_program(LocalContext(), "The test", KINDS_MODULES, [latest + '/missing'], questions,
                         ionice=WAYS[way])
    assert (failed.returncode, failed.stdout) == (1, b'')
    assert failed.problem == "Failed to look into %s/missing: [Errno 2] No such file or directory: b'%s/missing'" \
        % (latest, latest)


def test_shipped_to_another_systems_python(tmp_path):
    """A context of another system runs the program with the ``python3`` on its PATH, isolated."""
    latest = make_latest(tmp_path)
    finished = run_program(ElsewhereContext(), "The test", KINDS_MODULES, [latest],
                           kinds.encode_questions([b'dir'], []))
    assert (finished.returncode, finished.stdout) == (0, b'd'), finished.stderr


def test_missing_python(fake_bin, monkeypatch):
    """Without ``python3`` on the destination the message says what needs it and how to install it."""
    write_script(fake_bin / 'python3', 'exit 127\n')
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    with pytest.raises(RemoteCommandError) as raised:
        run_program(ElsewhereContext(), "The test", KINDS_MODULES, ['/'])
    assert str(raised.value) == ("The test needs python3 on the system that holds the backups, and it isn't "
                                 "installed there: install python3 (python3-minimal on Debian).")


def test_exception_in_this_process_ends_the_program_as_in_python(tmp_path, monkeypatch):
    """An exception that escapes ``main()`` here gives exit code 1 and the traceback, as ``python3`` would."""
    def broken(*arguments):
        raise ValueError("broken on purpose")
    monkeypatch.setattr(kinds, 'describe', broken)
    finished = run_program(LocalContext(), "The test", KINDS_MODULES, [str(tmp_path)])
    assert finished.returncode == 1
    assert finished.messages[0] == 'Traceback (most recent call last):'
    assert finished.problem == 'ValueError: broken on purpose'


def test_stop_of_this_process_passes_through(tmp_path, monkeypatch):
    """This process's own stop (a signal during the program) isn't turned into an exit code."""
    def interrupted(*arguments):
        raise Interrupted(signal.SIGTERM)
    monkeypatch.setattr(kinds, 'describe', interrupted)
    with pytest.raises(Interrupted):
        run_program(LocalContext(), "The test", KINDS_MODULES, [str(tmp_path)])


@pytest.mark.parametrize('way', sorted(WAYS))
def test_messages_through_to_this_process(tmp_path, capfd, way):
    """Without capturing, the program's messages go to this process's standard error (progress, say)."""
    finished = run_program(LocalContext(), "The test", KINDS_MODULES, [str(tmp_path / 'missing')],
                           capture_stderr=False, ionice=WAYS[way])
    assert (finished.returncode, finished.stderr, finished.messages, finished.problem) == (1, b'', [], 'exit code 1')
    assert 'Failed to look into %s' % (tmp_path / 'missing') in capfd.readouterr().err


def test_shield_in_this_process_is_the_cleanup(tmp_path, monkeypatch):
    """In this process the protect step's changes are shielded by this process's :func:`.cleanup()`."""
    shields = []
    real_run = protect.Protection.run

    def run_and_record(self, orders, shield):
        shields.append(shield)
        return real_run(self, orders, shield)
    monkeypatch.setattr(protect.Protection, 'run', run_and_record)
    latest = make_latest(tmp_path)
    orders = protect.Orders()
    orders.deletions = [b'dir']
    finished = run_program(LocalContext(), "The test", PROTECT_MODULES, [latest, PRIVATE_PREFIX],
                           protect.encode_orders(orders))
    assert (finished.returncode, shields) == (protect.DONE, [cleanup])
    assert sorted(os.listdir(latest)) == ['link']


def test_own_process_stops_on_signals(tmp_path, monkeypatch, saved_signals):
    """
    In a process of its own a signal stops the program, which cleans up and exits with 128 + its number.

    The protect step gets SIGTERM while it copies: its private directory goes,
    ``latest`` stays as it was.
    """
    latest = make_latest(tmp_path)
    os.link(os.path.join(latest, 'link'), str(tmp_path / 'shared'), follow_symlinks=False)
    before = take_manifest(latest)

    def copy_and_stop(*arguments):
        os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(protect, 'copy_entry', copy_and_stop)
    orders = protect.Orders()
    orders.kinds = {b'link': b'L'}
    monkeypatch.setattr(sys, 'stdin', io.TextIOWrapper(io.BytesIO(protect.encode_orders(orders))))
    monkeypatch.setattr(sys, 'stdout', io.TextIOWrapper(io.BytesIO()))
    assert standalone.run('rsync_system_backup.agent.protect', [latest, PRIVATE_PREFIX]) == 128 + signal.SIGTERM
    assert take_manifest(latest) == before
    assert sorted(os.listdir(str(tmp_path))) == ['latest', 'shared']


def test_held_signals_take_effect_afterwards(saved_signals):
    """A signal held back by the shield of a program in its own process stops it when the block ends."""
    signal.signal(signal.SIGHUP, standalone.stop)
    done = []
    with pytest.raises(Stopped) as raised:
        with held_signals():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGHUP)
            done.append(True)
    assert done == [True]
    assert raised.value.args == (signal.SIGHUP,)


def test_started_program_falls_back_without_python(tmp_path, fake_bin, monkeypatch):
    """Where ``python3`` is missing the fallback runs, with the program's arguments."""
    for program in ('sh', 'cat'):
        os.symlink('/bin/' + program, str(fake_bin / program))
    monkeypatch.setenv('PATH', str(fake_bin))
    started = start_program(ElsewhereContext(), KINDS_MODULES, ['first', 'second'],
                            'echo "fallback $2 $1" >&2; exit 3')
    finished = started.wait()
    assert (finished.returncode, finished.problem) == (3, 'fallback second first')
    assert started.wait() is finished


def test_started_program_that_ended_before_its_input(tmp_path):
    """A command that ends before it reads its input is no error: its exit code tells."""
    command = LocalContext().execute('true', input=True, asynchronous=True, capture=True, capture_stderr=True,
                                     check=False)
    command.subprocess.wait()
    started = StartedProgram(command)
    # Less than a pipe's buffer, so that closing it flushes what is left (and finds the pipe broken again).
    started.feed(b'modules')
    started.stop()
    assert not started.is_running
    assert started.wait().returncode == 0


def test_finished_without_messages():
    """A program without messages is described by its exit code."""
    assert Finished(3, b'', b'\n  \n').problem == 'exit code 3'
    assert Finished(1, b'', b'first\nlast.\n\n').problem == 'last.'


def test_bootstrap_loads_the_shipped_modules(monkeypatch):
    """The bootstrap's loader makes each shipped module under its name, in its package, and stops at the empty line."""
    monkeypatch.setattr(sys, 'modules', dict(sys.modules))
    for name in ('rsync_system_backup', 'rsync_system_backup.agent', 'rsync_system_backup.agent.tree',
                 bootstrap.ENTRY_MODULE):
        del sys.modules[name]
    stream = io.BytesIO(ship_modules(['rsync_system_backup.agent.tree']) + b'the program input')
    bootstrap.load_modules(stream)
    assert sys.modules['rsync_system_backup.agent'].__path__ == []
    assert sys.modules['rsync_system_backup.agent.tree'].Tree is not Tree
    assert callable(sys.modules[bootstrap.ENTRY_MODULE].run)
    assert stream.read() == b'the program input'
