"""
Tests for rsync daemon destinations and the daemon's ``post-xfer exec`` command, against a real rsync daemon.

The client runs as a real process (see :mod:`support.remote`); every run
also checks that no process outlives it. The ``post-xfer exec`` command is
the installed ``rsync-system-backup`` program of the interpreter that runs
the tests.
"""

import concurrent.futures
import os
import shlex
import subprocess
import sys

import pytest

from support.cli import assert_failed
from support.processes import lock_is_free, wait_for
from support.remote import ClientHome, SmallDiskRsyncDaemon, server_view, wait_until_idle
from support.rsync_daemon import RsyncDaemon, write_secrets_file
from support.servers import free_port
from support.trees import list_names, make_snapshots, make_source, read_tree, snapshot_names

PROGRAM = os.path.join(os.path.dirname(sys.executable), 'rsync-system-backup')
"""The installed command (what an rsyncd.conf names in its ``post-xfer exec``)."""

LOCK_FILE_NAME = '.rsync-system-backup.lock'
"""The lock file of a backup set, next to ``latest``."""

PASSWORD = 'c0rrect horse; $battery'
"""The daemon password of the user ``alice`` (with characters a shell would interpret)."""


def post_xfer_command(log_file):
    """The ``post-xfer exec`` command: snapshot and rotate the module, logging to a file."""
    assert os.access(PROGRAM, os.X_OK), "Install the package (pip install -e .) so that %s exists." % PROGRAM
    return 'COLOREDLOGS_SYSLOG=false %s --snapshot --rotate --disable-notifications --log-file=%s' % (
        shlex.quote(PROGRAM), shlex.quote(str(log_file)))


@pytest.fixture
def module_parents(tmp_path):
    """The parent directories of the modules' paths (each module's path is ``latest`` in one of them)."""
    directories = {name: tmp_path / name for name in ('open', 'private', 'snapshots')}
    for directory in directories.values():
        (directory / 'latest').mkdir(parents=True)
    return directories


@pytest.fixture
def daemon(tmp_path, module_parents):
    """An rsync daemon with an open module, a module with a password and a module that snapshots after transfers."""
    secrets = write_secrets_file(tmp_path / 'rsyncd.secrets', {'alice': PASSWORD})
    modules = {
        'open': {'path': module_parents['open'] / 'latest', 'read only': 'no'},
        'private': {'path': module_parents['private'] / 'latest', 'read only': 'no',
                    'auth users': 'alice', 'secrets file': secrets},
        'snapshots': {'path': module_parents['snapshots'] / 'latest', 'read only': 'no',
                      'post-xfer exec': post_xfer_command(tmp_path / 'post-xfer.log')},
    }
    with RsyncDaemon(tmp_path / 'rsyncd', modules) as server:
        yield server
        wait_until_idle(server)


@pytest.fixture
def client(tmp_path):
    """Runs the command (see :class:`support.remote.ClientHome`)."""
    return ClientHome(tmp_path / 'client-home')


def test_backup_to_module(daemon, module_parents, client, source):
    """-b transfers into a module (rsync:// syntax with a port)."""
    result = client.run('--backup', source, daemon.url('open'))
    assert result.returncode == 0, result
    assert read_tree(module_parents['open'] / 'latest') == source.contents
    assert list_names(module_parents['open']) == ['latest']


@pytest.mark.parametrize('options', [['--snapshot'], ['--rotate'], ['--backup', '--snapshot']])
def test_snapshot_and_rotation_need_post_xfer_exec(daemon, module_parents, client, source, options):
    """-s or -r chosen by hand can't be done from the client: a clear message before anything is transferred."""
    result = client.run(*(options + [source, daemon.url('open')]))
    assert_failed(result, "Can't run commands on the rsync daemon 127.0.0.1", "use -b/--backup alone",
                  "'post-xfer exec = rsync-system-backup --snapshot --rotate'")
    assert "The transfer to" not in result.output
    assert os.listdir(module_parents['open'] / 'latest') == []


def test_default_steps_transfer_before_failing(daemon, module_parents, client, source):
    """With the default steps the data reaches the daemon first (as in 1.1), then the run fails saying what to add."""
    result = client.run(source, daemon.url('open'))
    assert_failed(result, "The transfer to %s is done." % daemon.url('open').rstrip('/'),
                  "Can't run commands on the rsync daemon 127.0.0.1",
                  "'post-xfer exec = rsync-system-backup --snapshot --rotate' in the module's section")
    assert read_tree(module_parents['open'] / 'latest') == source.contents
    assert list_names(module_parents['open']) == ['latest']


def test_password_from_environment(daemon, module_parents, client, source):
    """$RSYNC_PASSWORD logs in; the password shows up nowhere, not even in debug output."""
    result = client.run('-vv', '--backup', source, daemon.url('private', user='alice'),
                        env={'RSYNC_PASSWORD': PASSWORD})
    assert result.returncode == 0, result
    assert read_tree(module_parents['private'] / 'latest') == source.contents
    assert PASSWORD not in result.output


def assert_daemon_failure(result, daemon_port, *messages):
    """
    Check a failed transfer to the daemon: exit code 1, one line that names the daemon, and no word of ssh.

    :param result: The :class:`support.remote.GuardedResult` of the run.
    :param daemon_port: The daemon's port (an integer).
    :param messages: More strings that the error line must contain.
    """
    assert_failed(result, "rsync failed with exit code", "the rsync daemon at 127.0.0.1:%i" % daemon_port, *messages)
    assert 'ssh' not in result.output.lower(), result
    assert 'remote shell' not in result.output, result


def test_wrong_password(daemon, module_parents, client, source):
    """A wrong password fails with a message that names the daemon and doesn't repeat the password."""
    result = client.run('--backup', source, daemon.url('private', user='alice'), env={'RSYNC_PASSWORD': 'wrong!'})
    assert_daemon_failure(result, daemon.port, "exit code 5 (error starting the client-server protocol): "
                          "@ERROR: auth failed on module private: the rsync daemon at 127.0.0.1:%i refused the "
                          "login to the module 'private': check the user name in the destination and the password "
                          "in $RSYNC_PASSWORD or the --password-file; no snapshot was made" % daemon.port)
    assert 'wrong!' not in result.output
    assert os.listdir(module_parents['private'] / 'latest') == []


def test_missing_password(daemon, module_parents, client, source):
    """A module that wants a password, and none given: the message says so (rsync's prompt got no answer)."""
    result = client.run('--backup', source, daemon.url('private', user='alice'))
    assert_daemon_failure(result, daemon.port, ": @ERROR: auth failed on module private: the rsync daemon at "
                          "127.0.0.1:%i wants a password for the module 'private' and got none: set $RSYNC_PASSWORD "
                          "or give --password-file;" % daemon.port)
    assert os.listdir(module_parents['private'] / 'latest') == []


def test_password_file(tmp_path, daemon, module_parents, client, source):
    """--password-file logs in; the password shows up nowhere."""
    password_file = tmp_path / 'password'
    password_file.write_text(PASSWORD + '\n')
    password_file.chmod(0o600)
    result = client.run('-vv', '--backup', '--password-file', password_file, source,
                        daemon.url('private', user='alice'))
    assert result.returncode == 0, result
    assert read_tree(module_parents['private'] / 'latest') == source.contents
    assert PASSWORD not in result.output


def test_password_file_readable_by_others(tmp_path, daemon, client, source):
    """A password file that others can read is refused by rsync, and the message says how to fix it."""
    password_file = tmp_path / 'password'
    password_file.write_text(PASSWORD + '\n')
    password_file.chmod(0o644)
    result = client.run('--backup', '--password-file=%s' % password_file, source,
                        daemon.url('private', user='alice'))
    assert_failed(result, "password file must not be other-accessible", "chmod 600")


def test_password_file_needs_daemon(tmp_path, client, source):
    """--password-file with a destination that isn't a daemon is refused before anything happens."""
    result = client.run('--backup', '--password-file=/nonexistent', source, tmp_path / 'backups' / 'latest')
    assert_failed(result, "--password-file is for rsync daemon logins")
    assert not (tmp_path / 'backups').exists()


def test_unknown_module(daemon, client, source):
    """A module the daemon doesn't have: a message that names the daemon and says how to list its modules."""
    result = client.run('--backup', source, daemon.url('nonexistent'))
    assert_daemon_failure(result, daemon.port, "exit code 5 (error starting the client-server protocol): "
                          "@ERROR: Unknown module 'nonexistent': the rsync daemon at 127.0.0.1:{0} has no module "
                          "'nonexistent': check the module name in the destination ('rsync rsync://127.0.0.1:{0}/' "
                          "lists its modules);".format(daemon.port))


def test_module_path_missing(tmp_path, client, source):
    """
    A module whose path doesn't exist: the client's message and the post-xfer exec command's both say so (issue 22).

    The daemon answers ``@ERROR: chdir failed``, which isn't a refused
    login; its ``post-xfer exec`` command runs all the same, with
    ``$RSYNC_EXIT_STATUS`` 255, which isn't ssh failing.
    """
    path = tmp_path / 'unmounted' / 'latest'
    log_file = tmp_path / 'post-xfer.log'
    modules = {'backups': {'path': path, 'read only': 'no', 'post-xfer exec': post_xfer_command(log_file)}}
    with RsyncDaemon(tmp_path / 'rsyncd', modules) as server:
        result = client.run('--backup', source, server.url('backups'))
        assert_daemon_failure(result, server.port, "exit code 5 (error starting the client-server protocol): "
                              "@ERROR: chdir failed: the rsync daemon at 127.0.0.1:%i can't enter the path of its "
                              "module 'backups': check that the directory that 'path =' names in the [backups] "
                              "section of its rsyncd.conf exists (is the backup disk mounted?) and that the daemon's "
                              "user can enter it; no snapshot was made" % server.port)
        assert 'login' not in result.output and 'password' not in result.output, result
        wait_until_idle(server)
    log = log_file.read_text()
    assert "Aborting due to error: The rsync daemon's module path %s doesn't exist, so its transfer failed with " \
           "exit code 255 (the daemon turned the transfer away before it began); no snapshot was made and nothing " \
           "was rotated. Mount the backup disk if the path is on one, or create the directory, or correct " \
           "'path =' in the module's section of rsyncd.conf." % path in log, log
    assert 'ssh' not in log.lower() and 'remote shell' not in log, log
    assert not (tmp_path / 'unmounted').exists()


def test_connection_refused(client, source):
    """A port where no daemon listens: a message that names the daemon's address."""
    port = free_port()
    result = client.run('--backup', source, 'rsync://127.0.0.1:%d/backups' % port)
    assert_daemon_failure(result, port, "exit code 10 (error in socket I/O)", "Connection refused",
                          ": the rsync daemon at 127.0.0.1:%i refused the connection: check that the daemon runs and "
                          "listens on that port;" % port)


def test_post_xfer_exec_snapshots_and_rotates(tmp_path, daemon, module_parents, client, source):
    """The daemon's post-xfer exec snapshots the module's path into its parent and rotates, logging to a file."""
    parent = module_parents['snapshots']
    make_snapshots(parent, ['2024-05-01_10-00-00', '2024-05-01_10-30-00'])
    result = client.run('--backup', source, daemon.url('snapshots'))
    assert result.returncode == 0, result
    wait_until_idle(daemon)  # The post-xfer exec command may outlive the client's connection.
    assert read_tree(parent / 'latest') == source.contents
    names = snapshot_names(parent, leftovers=True)
    assert len(names) == 2 and names[0] == '2024-05-01_10-00-00', names
    assert read_tree(parent / names[1]) == source.contents
    assert os.stat(parent / names[1] / 'etc' / 'hostname').st_ino == \
        os.stat(parent / 'latest' / 'etc' / 'hostname').st_ino
    log = (tmp_path / 'post-xfer.log').read_text()
    assert "Creating snapshot %s" % (parent / names[1]) in log, log
    assert "Removing %s" % (parent / '2024-05-01_10-30-00') in log, log
    assert "ERROR" not in log, log


def test_first_backup_to_post_xfer_module(tmp_path, daemon, module_parents, client, source, run_cli):
    """
    A module's first backup gets its snapshot and its marker, and --max-age says OK (issue 22).

    The source holds what a backup set holds at its top (a ``latest``, a
    snapshot, the marker): in the module's path these are the source's, which
    the checks of a DESTINATION that is a backup set must not take for one.
    """
    for name in ('latest', '2024-05-01_10-00-00'):
        (source.path / name).mkdir()
    (source.path / '.rsync-system-backup').write_text('a backup set as the source\n')
    parent = module_parents['snapshots']
    result = client.run('--backup', source, daemon.url('snapshots'))
    assert result.returncode == 0, result
    wait_until_idle(daemon)
    log = (tmp_path / 'post-xfer.log').read_text()
    assert "ERROR" not in log, log
    assert len(snapshot_names(parent)) == 1, log
    assert (parent / '.rsync-system-backup').read_text().startswith('This directory holds backups made by')
    result = run_cli('--max-age=1h', parent / 'latest')
    assert result.returncode == 0 and result.stdout.startswith('OK: '), result


def test_post_xfer_exec_after_disk_full(tmp_path, client, source):
    """After a transfer that filled the daemon's disk, post-xfer exec makes no snapshot and logs why."""
    small = tmp_path / 'small'
    small.mkdir()
    log_file = tmp_path / 'post-xfer.log'
    (source.path / 'big.bin').write_bytes(os.urandom(1024 * 1024))
    modules = {'backups': {'path': small / 'latest', 'read only': 'no', 'post-xfer exec': post_xfer_command(log_file)}}
    with SmallDiskRsyncDaemon(tmp_path / 'rsyncd', modules, small_directory=small) as server:
        result = client.run('--backup', source, server.url('backups'))
        assert_failed(result, "rsync failed with exit code", "no snapshot was made")
        wait_until_idle(server)
        assert list_names(server_view(server, small)) == ['latest']
        log = log_file.read_text()
        assert "Aborting due to error: The rsync daemon's transfer into %s failed with exit code" % (small / 'latest') \
            in log, log
        assert "no snapshot was made and nothing was rotated" in log, log
    assert os.listdir(small) == []


def test_post_xfer_exec_after_aborted_transfer(tmp_path, daemon, module_parents):
    """When the client dies during the transfer, post-xfer exec makes no snapshot and logs why."""
    source = tmp_path / 'big-source'
    source.mkdir()
    (source / 'big.bin').write_bytes(os.urandom(8 * 1024 * 1024))
    client = subprocess.Popen(['rsync', '--archive', '--bwlimit=1000', '%s/' % source, daemon.url('snapshots')],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.listdir(module_parents['snapshots'] / 'latest'), message="the transfer to start")
    finally:
        client.kill()
        client.wait()
    wait_until_idle(daemon)
    assert snapshot_names(module_parents['snapshots'], leftovers=True) == []
    log = (tmp_path / 'post-xfer.log').read_text()
    assert "Aborting due to error: The rsync daemon's transfer into %s failed with exit code" % (
        module_parents['snapshots'] / 'latest') in log, log


@pytest.mark.parametrize('status, succeeds, message', [
    ('0', True, None),
    ('23', True, "The rsync daemon's transfer into {path} ended with exit code 23 (partial transfer due to errors); "
                 "going on with it."),
    ('24', True, "ended with exit code 24"),
    ('12', False, "Aborting due to error: The rsync daemon's transfer into {path} failed with exit code 12 "
                  "(error in the rsync protocol data stream), so no snapshot was made and nothing was rotated"),
    ('-1', False, "failed with exit code -1 (ended abnormally)"),
    ('5', False, "failed with exit code 5"),
    ('garbage', False, "Aborting due to error: $RSYNC_EXIT_STATUS is 'garbage', not a number"),
])
def test_post_xfer_exec_exit_status(tmp_path, client, status, succeeds, message):
    """$RSYNC_EXIT_STATUS decides whether the post-xfer exec command snapshots and rotates."""
    latest = tmp_path / 'module' / 'latest'
    latest.mkdir(parents=True)
    (latest / 'file').write_text('data')
    make_snapshots(latest.parent, ['2024-05-01_10-00-00', '2024-05-01_10-30-00'])
    result = client.run('--snapshot', '--rotate', env={'RSYNC_MODULE_PATH': str(latest), 'RSYNC_EXIT_STATUS': status})
    names = snapshot_names(latest.parent, leftovers=True)
    if succeeds:
        assert result.returncode == 0, result
        assert len(names) == 2 and names[0] == '2024-05-01_10-00-00', names
    else:
        assert result.returncode == 1, result
        assert names == ['2024-05-01_10-00-00', '2024-05-01_10-30-00']
    if message:
        assert message.format(path=latest) in result.stderr, result


FLEET_HOSTS = 8
"""How many hosts back up at once into modules of their own in :func:`test_fleet_under_load`."""

OLD_SNAPSHOTS = ['2024-05-01_10-00-00', '2024-05-01_10-30-00']
"""Snapshots in each fleet module before the run: rotation keeps the first (monthly) and removes the second."""


def fleet_module(path, log_file):
    """
    A module's section as docs/fleet.rst shows it: one connection at a time, snapshots in post-xfer exec.

    ``max connections`` counts the connections in the module's ``lock file``,
    so each module needs a lock file of its own (a shared one would count the
    whole fleet against one module's limit).
    """
    return {'path': path, 'read only': 'no', 'max connections': '1',
            'lock file': path.parent / 'rsyncd.lock',
            'post-xfer exec': post_xfer_command(log_file) + ' --wait'}


def test_fleet_under_load(tmp_path):
    """
    8 hosts back up at once into 8 modules while 2 runs race into a ninth; every module ends as it should.

    Each host's module gets exactly one new snapshot, identical to that host's
    source, and rotation removes one old snapshot. Of the two runs into one
    module, the daemon lets one in at a time (``max connections = 1``, held
    until its ``post-xfer exec`` command is done, which here also waits until
    both runs have ended): the other is turned away with exit code 75, and the
    one snapshot is the winner's source, never a mix. No module holds a
    half-made tree or a held lock afterwards.
    """
    names = ['host%i' % number for number in range(FLEET_HOSTS)] + ['shared']
    parents = {name: tmp_path / 'server' / name for name in names}
    for name, parent in parents.items():
        (parent / 'latest').mkdir(parents=True)
        make_snapshots(parent, OLD_SNAPSHOTS)
    modules = {name: fleet_module(parent / 'latest', tmp_path / ('%s.log' % name)) for name, parent in parents.items()}
    gate = tmp_path / 'racers-done'
    modules['shared']['post-xfer exec'] += '; while [ ! -e %s ]; do sleep 0.05; done' % shlex.quote(str(gate))
    runs = [(name, name) for name in names[:-1]] + [('shared', 'racer%i' % number) for number in range(2)]
    sources = {}
    for _, host in runs:
        sources[host] = tmp_path / 'sources' / host
        make_source(sources[host])
        (sources[host] / 'etc' / 'hostname').write_text('%s\n' % host)
    with RsyncDaemon(tmp_path / 'rsyncd', modules) as daemon:
        def back_up(run):
            module, host = run
            return ClientHome(tmp_path / ('client-%s' % host)).run('--backup', sources[host], daemon.url(module))
        with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
            futures = dict((host, pool.submit(back_up, (module, host))) for module, host in runs)
            concurrent.futures.wait([futures['racer0'], futures['racer1']])
            gate.touch()
            results = dict((host, future.result()) for host, future in futures.items())
        wait_until_idle(daemon, timeout=60)
    for name in names[:-1]:
        assert results[name].returncode == 0, results[name]
        new = [snapshot for snapshot in snapshot_names(parents[name]) if snapshot not in OLD_SNAPSHOTS]
        assert len(new) == 1, snapshot_names(parents[name], leftovers=True)
        assert read_tree(parents[name] / new[0]) == read_tree(sources[name])
        assert snapshot_names(parents[name]) == [OLD_SNAPSHOTS[0], new[0]]
    winner, loser = sorted(['racer0', 'racer1'], key=lambda host: results[host].returncode)
    assert (results[winner].returncode, results[loser].returncode) == (0, 75), results
    assert "ERROR Aborting due to error: The rsync daemon refused the transfer to rsync://127.0.0.1:%i/shared " \
           "(@ERROR: max connections (1) reached -- try again later): another run is working on that module; let " \
           "it finish, or try again later." % daemon.port in results[loser].stderr, results[loser]
    made = [snapshot for snapshot in snapshot_names(parents['shared']) if snapshot not in OLD_SNAPSHOTS]
    assert len(made) == 1, snapshot_names(parents['shared'], leftovers=True)
    assert read_tree(parents['shared'] / made[0]) == read_tree(sources[winner])
    for name, parent in parents.items():
        # Nothing half-made: no temporary snapshot, no snapshot being removed, no tree being built.
        assert snapshot_names(parent, leftovers=True) == snapshot_names(parent), name
        building = ('.rsync-system-backup.new', '.rsync-system-backup.old')
        assert not [entry for entry in list_names(parent) if entry.startswith(building)], name
        assert lock_is_free(parent / LOCK_FILE_NAME)
        assert (parent / LOCK_FILE_NAME).read_text() == ''
        log = (tmp_path / ('%s.log' % name)).read_text() if (tmp_path / ('%s.log' % name)).exists() else ''
        assert 'ERROR' not in log, log
