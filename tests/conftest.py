"""
Fixtures shared by the test suite (the helpers behind them are in the :mod:`support` package).

Running the real command (:func:`run_cli`, :func:`start_cli`, with
stand-ins for system programs in :func:`fake_bin`), a default source tree
and backup directory (:func:`source`, :func:`backups`, :func:`latest`; a
test module that needs another scene defines its own), the check that the host's mount
configuration stays as it was (:func:`unchanged_host`), and for the tests of
remote destinations a throw-away sshd (:func:`ssh_server`) and a test
``~/.ssh`` that reaches it (:func:`client_home`; see :mod:`support.remote`).

Under pytest-xdist (``.ci/test`` runs ``-n auto --dist loadfile``), ``-n
auto`` starts one worker more than there are processors
(:func:`pytest_xdist_auto_num_workers`), and each worker puts the test
modules that hold a test marked slow first
(:func:`pytest_collection_modifyitems`), so that the longest modules start
at once and the short ones fill up the workers at the end.
"""

import os
import signal
import subprocess
import sys

import pytest

TESTS_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
"""The directory of the tests (put on :data:`sys.path`, so that the test modules import ``support``)."""

sys.path.insert(0, TESTS_DIRECTORY)

from support.cli import command_environment, run_command, start_command  # noqa: E402
from support.leaks import host_state  # noqa: E402
from support.remote import SERVER_ALIAS, ClientHome, PrivateHomeSSHServer, wait_until_idle  # noqa: E402
from support.stand_ins import write_script  # noqa: E402
from support.trees import SourceTree  # noqa: E402


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """
    Tell pytest-xdist how many workers ``-n auto`` means: one more than there are processors.

    Most tests spend their time waiting for rsync, ssh, mounts and the
    signals they send, not computing: on two processors, two workers kept
    them busy only a little over half of the time, three took a run from
    about 290 to about 235 seconds. (Four were no faster than three.)
    """
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(session, config, items):
    """
    In a pytest-xdist worker, put the test modules that hold a test marked slow first (in their own order).

    With ``--dist loadfile --no-loadscope-reorder`` the workers take whole
    modules in this order, so the longest ones don't start last and keep one
    worker busy long after the others are done. A run without xdist keeps
    the order of the files.
    """
    if not hasattr(config, 'workerinput'):
        return
    slow_modules = {item.nodeid.partition('::')[0] for item in items if item.get_closest_marker('slow')}
    items.sort(key=lambda item: item.nodeid.partition('::')[0] not in slow_modules)


@pytest.fixture
def fake_bin(tmp_path):
    """A directory that the command's ``$PATH`` searches first, for stand-ins of system programs."""
    directory = tmp_path / 'fake-bin'
    directory.mkdir()
    return directory


@pytest.fixture
def notifications_log(tmp_path, fake_bin, monkeypatch):
    """
    A stand-in ``notify-send`` on ``$PATH`` that records each notification in a file.

    The command's environment names a (made-up) session bus, as in a desktop
    session: without one, no ``notify-send`` runs at all.
    """
    monkeypatch.setenv('DBUS_SESSION_BUS_ADDRESS', 'unix:path=%s' % (tmp_path / 'no-bus'))
    log = tmp_path / 'notifications.log'
    write_script(fake_bin / 'notify-send', 'echo "$*" >> %s\n' % log)
    return log


@pytest.fixture
def run_cli(fake_bin):
    """
    Run ``python -m rsync_system_backup`` as a real process.

    Returns a function that takes the command line arguments (and optional
    ``env`` overrides, a ``timeout``, ``stdin`` and a working directory
    ``cwd``) and returns a :class:`support.cli.CommandResult`. Standard
    input is ``/dev/null`` unless given, so the command sees no terminal.
    """
    def run(*arguments, env=None, timeout=120, stdin=subprocess.DEVNULL, cwd=None):
        return run_command(arguments, command_environment(fake_bin, **(env or {})), timeout=timeout, stdin=stdin,
                           cwd=cwd)
    return run


@pytest.fixture
def start_cli(fake_bin):
    """
    Start ``python -m rsync_system_backup --disable-notifications`` in the background, in a session of its own.

    Returns a function that takes the command line arguments (and optional
    ``env`` overrides) and returns a :class:`subprocess.Popen` object, whose
    standard output holds standard error too (see
    :func:`support.cli.finish()`). After the test, every process of those
    sessions that is still running is killed.
    """
    processes = []

    def start(*arguments, env=None):
        process = start_command(('--disable-notifications',) + arguments, command_environment(fake_bin, **(env or {})))
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()


@pytest.fixture(scope='module')
def ssh_server(tmp_path_factory):
    """An sshd on 127.0.0.1 whose sessions have a private home directory, shared by a test module's tests."""
    with PrivateHomeSSHServer(tmp_path_factory.mktemp('sshd')) as server:
        yield server


@pytest.fixture
def client_home(tmp_path, ssh_server):
    """
    A test ``~/.ssh`` (a :class:`support.remote.ClientHome`) whose config maps ``SERVER_ALIAS`` to :func:`ssh_server`.

    Its ``key`` attribute is the login key's pathname as the command sees
    it. After the test, this waits until the server's sessions have ended.
    """
    home = ClientHome(tmp_path / 'client-home')
    home.key = home.install_key(ssh_server.identity_file)
    home.add_host(SERVER_ALIAS, ssh_server.port, home.key)
    yield home
    wait_until_idle(ssh_server)


@pytest.fixture
def source(tmp_path):
    """
    A source tree with awkward names and its contents (a :class:`support.trees.SourceTree`).

    Test modules that need another tree define a ``source`` fixture of their own.
    """
    return SourceTree(tmp_path / 'source')


@pytest.fixture
def backups(tmp_path):
    """
    The directory that will hold ``latest`` and the snapshots (not created).

    Test modules that need another backup directory define a ``backups`` fixture of their own.
    """
    return tmp_path / 'backups'


@pytest.fixture
def latest(backups):
    """An empty ``latest`` in :func:`backups` (created with its parent), for tests of the later steps."""
    directory = backups / 'latest'
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def unchanged_host():
    """Check after the test that the host's fstab, crypttab, ``/dev/mapper``, ... are as they were before."""
    before = host_state()
    yield before
    assert host_state() == before
