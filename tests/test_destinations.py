"""Tests for parsing and rendering rsync locations (:mod:`rsync_system_backup.destinations`)."""

import pytest

from rsync_system_backup.destinations import Destination
from rsync_system_backup.exceptions import InvalidDestinationError, ParentDirectoryUnavailable


@pytest.mark.parametrize('expression, parts', [
    ('/mnt/backups/latest', dict(directory='/mnt/backups/latest')),
    ('relative/latest', dict(directory='relative/latest')),
    ('./odd:name/latest', dict(directory='./odd:name/latest')),
    ('server:/backups/latest', dict(hostname='server', directory='/backups/latest')),
    ('alice@server:/backups/latest', dict(username='alice', hostname='server', directory='/backups/latest')),
    ('server:backups/latest', dict(hostname='server', directory='backups/latest')),
    ('server:~/backups/latest', dict(hostname='server', directory='backups/latest')),
    ('alice@server:~//backups/latest/', dict(username='alice', hostname='server', directory='backups/latest/')),
    ('server:./~/latest', dict(hostname='server', directory='./~/latest')),
    ('server:backups/~', dict(hostname='server', directory='backups/~')),
    ('server::module/~/latest', dict(hostname='server', module='module', directory='~/latest')),
    ('~/latest', dict(directory='~/latest')),
    ('[::1]:/backups/latest', dict(hostname='[::1]', directory='/backups/latest')),
    ('server::module', dict(hostname='server', module='module')),
    ('alice@server::module/host/latest', dict(username='alice', hostname='server', module='module',
                                              directory='host/latest')),
    ('rsync://server/module/latest', dict(hostname='server', module='module', directory='latest')),
    ('rsync://alice@server:8873/module/a/latest', dict(username='alice', hostname='server', port_number=8873,
                                                       module='module', directory='a/latest')),
    ('/with space/and\nnewline/latest', dict(directory='/with space/and\nnewline/latest')),
])
def test_parse(expression, parts):
    """Every rsync syntax is split into the right parts."""
    destination = Destination(expression=expression)
    expected = dict(username='', hostname='', port_number=None, module='', directory='')
    expected.update(parts)
    actual = dict((name, getattr(destination, name)) for name in expected)
    assert actual == expected


@pytest.mark.parametrize('expression, rendered', [
    ('/mnt/backups/latest', '/mnt/backups/latest'),
    ('alice@server:/backups/latest', 'alice@server:/backups/latest'),
    ('server::module/latest', 'server::module/latest'),
    ('rsync://server/module/latest', 'server::module/latest'),
    ('rsync://alice@server:8873/module/latest', 'rsync://alice@server:8873/module/latest'),
])
def test_render(expression, rendered):
    """A parsed expression renders back to an equivalent expression, and that parses to the same parts."""
    destination = Destination(expression=expression)
    assert destination.expression == rendered
    again = Destination(expression=rendered)
    for name in ('username', 'hostname', 'port_number', 'module', 'directory'):
        assert getattr(again, name) == getattr(destination, name)


def test_render_from_parts():
    """A destination built from its parts renders as rsync expects."""
    assert Destination(hostname='server', directory='/b/latest').expression == 'server:/b/latest'
    assert Destination(hostname='server', module='m', port_number=1873).expression == 'rsync://server:1873/m'
    assert str(Destination(directory='/b/latest')) == '/b/latest'


def test_kinds():
    """The kind of destination follows from its parts."""
    local = Destination(expression='/b/latest')
    remote = Destination(expression='server:/b/latest')
    daemon = Destination(expression='server::module')
    assert (local.is_local, local.is_remote_shell, local.is_daemon) == (True, False, False)
    assert (remote.is_local, remote.is_remote_shell, remote.is_daemon) == (False, True, False)
    assert (daemon.is_local, daemon.is_remote_shell, daemon.is_daemon) == (False, False, True)
    assert Destination(expression='[::1]:/b').ssh_alias == '::1'


@pytest.mark.parametrize('expression, parent', [
    ('/mnt/backups/latest', '/mnt/backups'),
    ('/mnt/backups/latest/', '/mnt/backups'),
    ('server:/latest', '/'),
    ('server:latest', '.'),
])
def test_parent_directory(expression, parent):
    """Snapshots go next to the destination directory."""
    assert Destination(expression=expression).parent_directory == parent


@pytest.mark.parametrize('expression', ['/', 'server::module'])
def test_parent_directory_unavailable(expression):
    """A destination without a parent directory can't hold snapshots."""
    with pytest.raises(ParentDirectoryUnavailable):
        Destination(expression=expression).parent_directory


@pytest.mark.parametrize('expression, message', [
    ('', 'The destination is empty'),
    ('   ', 'The destination is empty'),
    ('server:', 'names no directory'),
    ('server::', 'names no rsync daemon module'),
    ('server::/dir', 'names no rsync daemon module'),
    ('rsync://server', "Can't parse the destination"),
    ('rsync://server:abc/module', "The port 'abc'"),
    ('rsync://server:99999/module', "The port '99999'"),
    ('@server:/dir', "Can't parse the destination"),
    ('-oProxyCommand=true:/backups/latest', "names the host '-oProxyCommand=true', which starts with '-'"),
    ('-oProxyCommand=true@server:/backups', "names the user '-oProxyCommand=true', which starts with '-'"),
    ('-oProxyCommand=true::module', "names the host '-oProxyCommand=true', which starts with '-'"),
    ('rsync://-oProxyCommand=true/module', "names the host '-oProxyCommand=true', which starts with '-'"),
    ('server:-x/latest', "names the directory '-x/latest', which starts with '-'"),
    ('server:~/-x/latest', "names the directory '-x/latest', which starts with '-'"),
    ('alice@[::1]:~bob/latest', "starts with ~bob, the home directory of bob on [::1], which only a shell there "
                                "could find: give the directory's absolute path instead (ssh alice@::1 'echo ~bob' "
                                "shows it)"),
    ('server:~', "The destination 'server:~' is the SSH user's home directory on server itself"),
    ('alice@server:~/./', "give a directory inside it, for example alice@server:~/backups/latest."),
])
def test_invalid(expression, message):
    """Expressions that aren't rsync locations are refused with a message that says why."""
    with pytest.raises(InvalidDestinationError) as error:
        Destination(expression=expression)
    assert message in str(error.value)
