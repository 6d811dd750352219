"""
Tests of the lock on a backup set (:mod:`rsync_system_backup.target.lock`) held by a command on an SSH destination.

A real sshd on 127.0.0.1 (see :mod:`support.remote`) runs the lock command;
the tests look at the lock file with a real ``flock``.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from support.cli import assert_failed
from support.processes import lock_is_free, session_processes, wait_for
from support.remote import SERVER_ALIAS, ClientHome, PrivateHomeSSHServer, wait_until_idle
from support.trees import make_source

LOCK_FILE_NAME = '.rsync-system-backup.lock'


class PathWithoutFlockServer(PrivateHomeSSHServer):

    """An SSH server whose sessions find every program of this system on their ``$PATH`` except ``flock``."""

    def prepare(self):
        """Fill a directory with links to the system's programs, leave out flock and make it the sessions' PATH."""
        command = super(PathWithoutFlockServer, self).prepare()
        programs = os.path.join(self.directory, 'programs')
        os.makedirs(programs, exist_ok=True)
        for directory in ('/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'):
            for name in os.listdir(directory) if os.path.isdir(directory) else []:
                link = os.path.join(programs, name)
                if name != 'flock' and not os.path.lexists(link):
                    os.symlink(os.path.join(directory, name), link)
        with open(self.server_config_file, 'a') as handle:
            handle.write('SetEnv PATH=%s\n' % programs)
        return command


def test_flock_missing_on_the_destination(tmp_path):
    """A destination without flock is an error that names util-linux (not "another run holds the lock", 75)."""
    source = tmp_path / 'source'
    make_source(source)
    backups = tmp_path / 'backups'
    with PathWithoutFlockServer(tmp_path / 'sshd') as server:
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
    from rsync_system_backup.target.lock import DestinationLock

    class SlowCleanup(object):
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            with cleanup(failing=True):
                print('cleaning up', flush=True)
                sys.stdin.readline()

    context = create_remote_context(sys.argv[1])
    try:
        with stop_on_signals(), shared_connection(context), DestinationLock(context, sys.argv[2]), SlowCleanup():
            print('locked', flush=True)
            time.sleep(60)
    except Interrupted as e:
        print('released after the cleanup of %s' % e.signal_name, flush=True)
''')
"""
A program that locks a directory over SSH (with the shared connection of a
run) and sleeps. When a signal interrupts it, its cleanup waits for a line
on standard input, so the test can look at the lock meanwhile.
"""


@pytest.mark.parametrize('how', ['SIGTERM to the program', 'SIGINT to its process group',
                                 'SIGHUP to its process group'])
def test_holder_outlives_the_first_signal(tmp_path, ssh_server, how):
    """The holder of an SSH destination's lock survives the signal and keeps the lock until the cleanups are done."""
    directory = tmp_path / 'backups'
    directory.mkdir()
    lock_file = directory / LOCK_FILE_NAME
    environment = dict(os.environ, **ssh_server.environment())
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
        # The signal stopped the program's other processes (the shared connection among them) ...
        wait_for(lambda: not session_processes(process.pid), message="the program's other processes to stop")
        # ... but not the lock's holder.
        assert not lock_is_free(lock_file), "the lock was released before the cleanup was done"
        process.stdin.write('\n')
        process.stdin.flush()
        output, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert output == 'released after the cleanup of %s\n' % how.split()[0], errors
    assert lock_is_free(lock_file)
    assert lock_file.read_text() == ''
    wait_until_idle(ssh_server)
