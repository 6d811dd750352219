"""
sudo that never asks for a password in the middle of a run.

A user other than root runs the commands that need root with sudo (unless
``-u/--no-sudo``), on this system and as the SSH user on a destination. A
password prompt halfway through a run would hang an unattended run and
interrupt one on a terminal, so:

- before anything is written, ``sudo -n -k true`` checks that sudo works without
  a password (:func:`check_sudo_here()` on this system,
  :func:`.connections.ssh.check_sudo()` on an SSH destination), and when it
  doesn't, one line (:func:`describe_sudo_refusal()`) names the sudoers line
  that lets the user in;
- every command's sudo runs with ``-n`` (:class:`NoPasswordPrompt`), so
  that a rule that wants a password for some command makes that command
  fail instead of asking.
"""

import os
import pwd

from rsync_system_backup.exceptions import ProgramNotFoundError, SudoUnavailableError

SUDO_PROBE = ('sudo', '-n', '-k', 'true')
"""
The command that tells whether sudo works without a password: ``-k`` sets
aside credentials that an earlier ``sudo`` cached, which would run out during
a long transfer and leave a later command asking.
"""


class NoPasswordPrompt(object):

    """Mixin for :class:`~executor.ExternalCommand` classes whose sudo runs with ``-n`` (it never asks)."""

    @property
    def sudo_command(self):
        """The ``sudo`` prefix of the command line, with ``-n`` (a list of strings, empty without sudo)."""
        prefix = super(NoPasswordPrompt, self).sudo_command
        return prefix[:1] + ['-n'] + prefix[1:] if prefix else prefix


def describe_sudo_refusal(user, detail, host=None):
    """
    Say in one line that a user can't become root with sudo without a password, and how to let her.

    :param user: The user's name (a string).
    :param detail: Why ``sudo -n -k true`` failed (a string).
    :param host: The SSH destination, or :data:`None` for this system.
    :returns: The message, with the sudoers line to add (a string).
    """
    return ("The %s %s can't become root on %s with sudo without a password ('%s' failed: %s): "
            "run 'visudo -f /etc/sudoers.d/rsync-system-backup'%s and add the line "
            "'%s ALL=(root) NOPASSWD: ALL', or %s, or use -u/--no-sudo."
            % ("SSH user" if host else "user", user, host or "this system", ' '.join(SUDO_PROBE),
               detail.rstrip('.'), " there" if host else "", user,
               "log in as root" if host else "run rsync-system-backup as root"))


def check_sudo_here(context):
    """
    Check that this system's user can become root with sudo without a password, unless she is root.

    :param context: The execution context of this system.
    :raises: :exc:`.SudoUnavailableError` when ``sudo -n -k true`` fails or
             sudo isn't installed; the message gives the sudoers line that
             lets the user in.
    """
    if context.have_superuser_privileges:
        return
    try:
        probe = context.execute(*SUDO_PROBE, capture=True, capture_stderr=True, check=False, shell=False, tty=False)
    except ProgramNotFoundError:
        detail = "sudo is not installed"
    else:
        if probe.succeeded:
            return
        detail = describe_probe_failure(probe)
    raise SudoUnavailableError(describe_sudo_refusal(user_name(), detail))


def describe_probe_failure(probe):
    """
    Say why :data:`SUDO_PROBE` failed.

    :param probe: The :class:`~executor.ExternalCommand` that ran it (with its standard error captured).
    :returns: The last line of sudo's messages, or the exit code when it gave none (a string).
    """
    lines = [line.strip() for line in (probe.stderr or b'').decode('utf-8', 'replace').splitlines() if line.strip()]
    return lines[-1] if lines else "exit code %i" % probe.returncode


def user_name():
    """
    Name the user that this process runs as.

    :returns: Her name in the user database, or ``#UID`` when she has none there (a string).
    """
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return '#%i' % os.getuid()
