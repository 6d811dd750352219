"""
Fixtures shared by the test suite.

Running the real command (:func:`run_cli`, with stand-ins for system programs
in :func:`fake_bin`), and for the tests of remote destinations a throw-away
sshd (:func:`ssh_server`), a test ``~/.ssh`` that reaches it
(:func:`client_home`) and a source tree (:func:`source`; see
:mod:`support.remote`).
"""

import os
import subprocess
import sys

import pytest

TESTS_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS_DIRECTORY)

from support.remote import SERVER_ALIAS, ClientHome, PrivateHomeSSHServer, SourceTree, wait_until_idle  # noqa: E402
from support.trees import CommandResult  # noqa: E402


@pytest.fixture
def fake_bin(tmp_path):
    """A directory that the command's ``$PATH`` searches first, for stand-ins of system programs."""
    directory = tmp_path / 'fake-bin'
    directory.mkdir()
    return directory


@pytest.fixture
def notifications_log(tmp_path, fake_bin):
    """A stand-in ``notify-send`` on ``$PATH`` that records each notification in a file."""
    log = tmp_path / 'notifications.log'
    script = fake_bin / 'notify-send'
    script.write_text('#!/bin/sh\necho "$*" >> %s\n' % log)
    script.chmod(0o755)
    return log


@pytest.fixture
def run_cli(fake_bin):
    """
    Run ``python -m rsync_system_backup`` as a real process.

    Returns a function that takes the command line arguments (and optional
    ``env`` overrides and a ``timeout``) and returns a :class:`CommandResult`.
    Standard input is ``/dev/null``, so the command sees no terminal.
    """
    def run(*arguments, env=None, timeout=120, stdin=subprocess.DEVNULL):
        environment = dict(os.environ)
        environment.pop('RSYNC_MODULE_PATH', None)
        environment['COLOREDLOGS_SYSLOG'] = 'false'
        environment['PATH'] = '%s:%s' % (fake_bin, environment['PATH'])
        environment.update(env or {})
        process = subprocess.run(
            [sys.executable, '-m', 'rsync_system_backup'] + [str(a) for a in arguments],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, timeout=timeout,
        )
        return CommandResult(process.returncode, process.stdout.decode('utf-8', 'replace'),
                             process.stderr.decode('utf-8', 'replace'))
    return run


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
    A source tree with awkward names and its contents (a :class:`support.remote.SourceTree`).

    Test modules that need another tree define a ``source`` fixture of their own.
    """
    return SourceTree(tmp_path / 'source')
