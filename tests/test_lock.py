"""
Tests of the lock on a backup set (:mod:`rsync_system_backup.backup_set.lock`) held by a command on an SSH destination.

A real sshd on 127.0.0.1 (see :mod:`support.remote`) runs the lock command;
the tests look at the lock file with a real ``flock``.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from executor import ExternalCommand

from rsync_system_backup.connections.shared_connection import shared_connection
from rsync_system_backup.connections.ssh import create_remote_context
from rsync_system_backup.backup_set.lock import DestinationLock
from support.cli import assert_failed
from support.processes import lock_is_free, session_processes, wait_for
from support.remote import SERVER_ALIAS, ClientHome, StandInPathSSHServer, wait_until_idle
from support.trees import make_source

LOCK_FILE_NAME = '.rsync-system-backup.lock'


def test_flock_missing_on_the_destination(tmp_path):
    """A destination without flock is an error that names util-linux (not "another run holds the lock", 75)."""
    source = tmp_path / 'source'
    make_source(source)
    backups = tmp_path / 'backups'
    with StandInPathSSHServer(tmp_path / 'sshd', {'flock': None}) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host(SERVER_ALIAS, server.port, home.install_key(server.identity_file))
        result = home.run('-b', source, '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
        wait_until_idle(server)
    assert_failed(result, "flock is not installed on %s, so %s can't be locked against other runs: install "
                  "util-linux there (it provides flock)." % (SERVER_ALIAS, backups))
    assert not (backups / 'latest').exists() or os.listdir(backups / 'latest') == []


def test_failing_lock_command(tmp_path, client_home):
    """A lock command that fails (here: the lock file is a directory) gives one line with its message, no traceback."""
    source = tmp_path / 'source'
    make_source(source)
    backups = tmp_path / 'backups'
    (backups / LOCK_FILE_NAME).mkdir(parents=True)
    result = client_home.run('-b', source, '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
    assert_failed(result, "Can't lock %s on %s: " % (backups / LOCK_FILE_NAME, SERVER_ALIAS), "Is a directory",
                  "(the lock command exited with code 2)")
    assert 'AttributeError' not in result.stderr


HOLDER_SCRIPT = textwrap.dedent('''
    import sys, time
    from rsync_system_backup.connections.shared_connection import shared_connection
    from rsync_system_backup.connections.ssh import create_remote_context
    from rsync_system_backup.processes.signals import Interrupted, cleanup, stop_on_signals
    from rsync_system_backup.backup_set.lock import DestinationLock

    class SlowCleanup(object):
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            with cleanup(failing=True):
                print('cleaning up', flush=True)
                sys.stdin.readline()
                context.execute('true', shell=False, tty=False)

    context = create_remote_context(sys.argv[1])
    try:
        with stop_on_signals(), shared_connection(context), DestinationLock(context, sys.argv[2]), SlowCleanup():
            print('locked', flush=True)
            time.sleep(60)
    except Interrupted as e:
        print('released after the cleanup of %s (SSH logins: %i)' % (e.signal_name, context.connection_count),
              flush=True)
''')
"""
A program that locks a directory over SSH (with the shared connection of a
run) and sleeps. When a signal interrupts it, its cleanup waits for a line
on standard input, so the test can look at the lock meanwhile, and then
runs a command on the destination, as a run's cleanups do.
"""


@pytest.mark.parametrize('how', ['SIGTERM to the program', 'SIGINT to its process group',
                                 'SIGHUP to its process group'])
def test_holder_outlives_the_first_signal(tmp_path, ssh_server, how):
    """
    The holder of an SSH destination's lock survives the signal and keeps the lock until the cleanups are done.

    The holder and the cleanup's command go through the shared connection,
    which survives the signal too: the destination sees one login.
    """
    directory = tmp_path / 'backups'
    directory.mkdir()
    lock_file = directory / LOCK_FILE_NAME
    environment = dict(os.environ, **ssh_server.environment())
    logins_before = ssh_server.read_log().count('Accepted publickey')
    process = subprocess.Popen([sys.executable, '-c', HOLDER_SCRIPT, ssh_server.alias, str(directory)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment, text=True, start_new_session=True)
    try:
        assert process.stdout.readline() == 'locked\n', process.stderr.read()
        assert not lock_is_free(lock_file)
        if how.startswith('SIGTERM'):
            # What systemd does with KillMode=mixed, and kill PID.
            process.send_signal(signal.SIGTERM)
        else:
            # What a terminal does for Control-C and when it closes: the signal goes to the whole job.
            os.killpg(process.pid, signal.SIGINT if 'SIGINT' in how else signal.SIGHUP)
        assert process.stdout.readline() == 'cleaning up\n', process.stderr.read()
        # Nothing of the program is left in its session (the shared connection and the lock's holder have
        # sessions of their own) ...
        wait_for(lambda: not session_processes(process.pid), message="the program's other processes to stop")
        # ... and the signal didn't stop the lock's holder.
        assert not lock_is_free(lock_file), "the lock was released before the cleanup was done"
        process.stdin.write('\n')
        process.stdin.flush()
        output, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert output == 'released after the cleanup of %s (SSH logins: 1)\n' % how.split()[0], errors
    assert ssh_server.read_log().count('Accepted publickey') - logins_before == 1
    assert lock_is_free(lock_file)
    assert lock_file.read_text() == ''
    wait_until_idle(ssh_server)


def test_release_waits_without_polling(monkeypatch, tmp_path, ssh_server):
    """
    Releasing the lock and closing the shared connection end when their ssh commands do.

    executor's own wait looks at a running command every 0.2 seconds, which
    a run would pay at its end (the holder exits a round trip after its
    input is closed); here that wait fails the test.
    """
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)

    def polled(command, *args, **kw):
        raise AssertionError("executor's wait polled %s" % command)

    monkeypatch.setattr(ExternalCommand, 'wait_for_process', polled)
    directory = tmp_path / 'backups'
    directory.mkdir()
    context = create_remote_context(ssh_server.alias)
    with shared_connection(context), DestinationLock(context, str(directory)):
        assert not lock_is_free(directory / LOCK_FILE_NAME)
    assert lock_is_free(directory / LOCK_FILE_NAME)
    wait_until_idle(ssh_server)
