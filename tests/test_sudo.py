"""
Tests of ``processes/sudo.py``: a user who isn't root, with and without passwordless sudo on this system.

The command runs as ``nobody`` (see :mod:`support.users`) in a private mount
namespace whose ``/etc/sudoers.d`` holds only the test's drop-in: one that
lets her become root without a password, or one that lets no one in. So
sudo, the command's checks and the backup are real, and the host's sudoers
files stay as they are.
"""

import os
import shlex
import shutil
import subprocess

import pytest

from rsync_system_backup.processes.sudo import describe_sudo_refusal
from support.cli import CommandResult, assert_failed, command_environment, command_line
from support.trees import read_tree, snapshot_names
from support.users import AS_NOBODY, NOBODY, for_nobody, python_runs_as_nobody, shared_directory, with_sudoers

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('sudo') or not shutil.which('unshare'),
                                reason='needs root, sudo and unshare')

REFUSAL = ("The user nobody can't become root on this system with sudo without a password ('sudo -n -k true' failed: "
           "sudo: a password is required): run 'visudo -f /etc/sudoers.d/rsync-system-backup' and add the line "
           "'nobody ALL=(root) NOPASSWD: ALL', or run rsync-system-backup as root, or use -u/--no-sudo.")
"""The one line that a run as ``nobody`` ends with when sudo wants her password."""


@pytest.fixture
def scene(tmp_path):
    """
    A source that only root can read all of, and where its backup goes, in a directory that ``nobody`` can enter.

    Gives a dict: ``source``, ``backups`` (not created: only root may create
    it there), ``latest``, ``contents`` (the source's tree), ``sudoers`` (a
    directory of root's for the sudoers drop-in) and ``environment`` (the
    command's, fit for her).
    """
    if not python_runs_as_nobody():
        pytest.skip("this Python or the package can't be run by an unprivileged user")
    with shared_directory('rsb-sudo-') as shared:
        source = os.path.join(shared, 'source')
        os.makedirs(os.path.join(source, 'etc'))
        with open(os.path.join(source, 'etc', 'hostname'), 'w') as handle:
            handle.write('sudo-test\n')
        with open(os.path.join(source, 'etc', 'shadow'), 'w') as handle:
            handle.write('root-only\n')
        os.chmod(os.path.join(source, 'etc', 'shadow'), 0o600)
        home = os.path.join(shared, 'home')
        os.mkdir(home)
        os.chown(home, *NOBODY)
        backups = os.path.join(shared, 'backups')
        yield dict(source=source, backups=backups, latest=os.path.join(backups, 'latest'),
                   contents=read_tree(source), sudoers=tmp_path,
                   environment=for_nobody(command_environment(HOME=home)))


def run_as_nobody(scene, *arguments, sudo=False, terminal=False):
    """
    Run the command as ``nobody`` where sudo knows only the test's rules.

    :param scene: The :func:`scene`.
    :param arguments: The command line arguments.
    :param sudo: See :func:`support.users.with_sudoers()`.
    :param terminal: :data:`True` to give the command a pseudo-terminal (through
                     ``script``, which merges its output into standard output).
    :returns: A :class:`support.cli.CommandResult`.
    """
    argv = with_sudoers(list(AS_NOBODY) + command_line('--disable-notifications', *arguments), scene['sudoers'],
                        sudo=sudo)
    if terminal:
        argv = ['script', '-qec', shlex.join(argv), '/dev/null']
    process = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             env=scene['environment'], timeout=120)
    stderr = process.stdout.replace('\r\n', '\n') if terminal else process.stderr
    return CommandResult(process.returncode, process.stdout, stderr)


@pytest.mark.parametrize('arguments', [(), ('--dry-run',), ('--list',)], ids=['backup', 'dry-run', 'list'])
def test_without_passwordless_sudo_nothing_runs(scene, arguments):
    """Without passwordless sudo, a run stops first with one line that names the sudoers line: nothing is created."""
    if arguments == ('--list',):
        arguments = ('--list', scene['latest'])
    else:
        arguments += (scene['source'], scene['latest'])
    result = run_as_nobody(scene, *arguments)
    assert_failed(result, REFUSAL)
    assert 'sh -c' not in result.stderr and 'findmnt' not in result.stderr, result
    assert not os.path.exists(scene['backups'])


def test_no_password_prompt_on_a_terminal(scene):
    """On a terminal sudo asks nothing: the same one line, at once."""
    result = run_as_nobody(scene, scene['source'], scene['latest'], terminal=True)
    assert_failed(result, REFUSAL)
    assert '[sudo]' not in result.stderr and 'password for' not in result.stderr, result
    assert not os.path.exists(scene['backups'])


def test_with_passwordless_sudo_the_check_passes(scene):
    """With passwordless sudo the run goes on as root: the file only root can read is backed up, owners kept."""
    result = run_as_nobody(scene, scene['source'], scene['latest'], sudo=True)
    assert result.returncode == 0, result
    assert read_tree(scene['latest']) == scene['contents']
    copy = os.stat(os.path.join(scene['latest'], 'etc', 'shadow'))
    assert (copy.st_uid, copy.st_gid) == (0, 0)
    assert os.stat(scene['backups']).st_uid == 0
    assert len(snapshot_names(scene['backups'])) == 1
    result = run_as_nobody(scene, '--list', scene['latest'], sudo=True)
    assert result.returncode == 0, result
    assert snapshot_names(scene['backups'])[0] in result.stdout


def test_no_sudo_needs_no_check(scene):
    """With -u/--no-sudo there is no sudo check: the run goes as far as she can go herself."""
    result = run_as_nobody(scene, '--no-sudo', scene['source'], scene['latest'])
    assert_failed(result, "Can't access %s: permission denied" % scene['backups'])
    assert 'sudo -n -k true' not in result.stderr, result
    assert not os.path.exists(scene['backups'])


def test_the_message_of_an_ssh_destination():
    """The same one line names the SSH user and the host for an SSH destination."""
    assert describe_sudo_refusal('backup', 'sudo is not installed', 'server') == (
        "The SSH user backup can't become root on server with sudo without a password ('sudo -n -k true' failed: "
        "sudo is not installed): run 'visudo -f /etc/sudoers.d/rsync-system-backup' there and add the line "
        "'backup ALL=(root) NOPASSWD: ALL', or log in as root, or use -u/--no-sudo.")


def test_no_password_prompt_halfway(scene):
    """sudo lets her run true alone without a password: the check passes, the first command fails, nothing asks."""
    result = run_as_nobody(scene, scene['source'], scene['latest'], sudo=shutil.which('true'), terminal=True)
    assert result.returncode == 1, result
    assert 'sudo: a password is required' in result.stderr, result
    assert '[sudo]' not in result.stderr and 'password for' not in result.stderr, result
    assert 'Traceback' not in result.stderr, result
    assert not os.path.exists(scene['backups'])
