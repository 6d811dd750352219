"""
Tests of how many SSH connections a run opens, and how it reports them.

Every SSH login costs a key exchange and an authentication, so a run logs in
once, for a shared connection that carries the checks, every command, the
holder of the lock and the transfer. The count is reported with ``-vv``; here
it is compared with the logins in the SSH server's log.
"""

import os

import pytest

from rsync_system_backup.connections.ssh import opens_connection
from support.remote import SERVER_ALIAS
from support.trees import make_snapshots, make_source

LOGIN_MARKER = 'Accepted publickey'
"""What sshd logs for each login."""


@pytest.mark.parametrize('command_line, expected', [
    (['ssh', '-l', 'root', '-o', 'BatchMode=yes', 'host', 'rsync --version'], True),
    (['ssh', '-M', '-o', 'ControlPersist=no', '-o', 'ControlPath=/tmp/x/control', 'host', 'cat'], True),
    (['ssh', '-o', 'ControlMaster=no', '-o', 'ControlPath=/tmp/x/control', 'host', 'mkdir -p /b'], False),
    (['ssh', '-O', 'exit', '-o', 'ControlPath=/tmp/x/control', 'host'], False),
])
def test_opens_connection(command_line, expected):
    """Logins are told apart from control requests and from commands that use a shared connection."""
    assert opens_connection(command_line) is expected


@pytest.mark.parametrize('arguments', [[], ['--snapshot'], ['--rotate']])
def test_connections_are_few_and_reported(tmp_path, client_home, ssh_server, arguments):
    """A run over SSH (full, snapshot only or rotation only) logs in once and says so."""
    source = tmp_path / 'source'
    make_source(source)
    backups = tmp_path / 'backups'
    make_snapshots(backups, ['2024-05-01_10-%02d-00' % minute for minute in range(10)])
    os.makedirs(str(backups / 'latest'))
    logins_before = ssh_server.read_log().count(LOGIN_MARKER)
    # -vv: the count is a debug message.
    result = client_home.run('-vv', *(arguments or [source]), '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
    assert result.returncode == 0, result
    logins = ssh_server.read_log().count(LOGIN_MARKER) - logins_before
    assert logins == 1
    assert '(SSH connections opened there: 1)' in result.stderr, result
