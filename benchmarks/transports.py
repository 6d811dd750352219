"""
Where the benchmark's destinations live: on this system, or behind the loopback SSH server.

A transport turns a destination directory into the location that
rsync-system-backup and rsync take (``/dir`` or ``HOST:/dir``), turns a
command into one that runs on the destination's system, and says how every
measured command runs. Both transports reach the same filesystem, so the
benchmark prepares and checks destinations directly.
"""


class LocalTransport(object):

    """Destinations on this system."""

    key_prefix = ''
    """What the names of the cases that use this transport start with."""

    title_suffix = ''
    """What the titles of the cases that use this transport end with."""

    rsync_options = []
    """The options that rsync-system-backup adds to rsync for such destinations (none)."""

    count_connections = None
    """There are no SSH connections to count."""

    def wrap(self, argv):
        """
        Give the command line that runs a measured command.

        :param argv: The command (a list of strings).
        :returns: The command itself.
        """
        return argv

    def location(self, directory):
        """
        Give the location of a directory as rsync and rsync-system-backup take it.

        :param directory: An absolute pathname (a string).
        :returns: The pathname itself.
        """
        return directory

    def on_destination(self, argv):
        """
        Give the command line that runs a command on the destination's system.

        :param argv: The command (a list of strings).
        :returns: The command itself.
        """
        return argv


class SSHTransport(object):

    """Destinations reached through a :class:`.LoopbackSSH` server."""

    key_prefix = 'ssh-'
    title_suffix = ' over SSH'
    rsync_options = ['--protect-args']

    def __init__(self, ssh):
        """
        Use an SSH server.

        :param ssh: A started :class:`.LoopbackSSH`.
        """
        self.ssh = ssh

    def wrap(self, argv):
        """
        Give the command line that runs a measured command with the server's client configuration.

        :param argv: The command (a list of strings).
        :returns: A command line (a list of strings; see :meth:`.LoopbackSSH.isolate()`).
        """
        return self.ssh.isolate(argv)

    def count_connections(self):
        """Count the SSH logins so far (an integer)."""
        return self.ssh.connections()

    def location(self, directory):
        """
        Give the location of a directory as rsync and rsync-system-backup take it.

        :param directory: An absolute pathname (a string).
        :returns: ``USER@ALIAS:DIRECTORY`` (a string). The user is named
                  because version 1.1 prefixes its remote commands with
                  ``sudo`` unless the destination says it logs in as root.
        """
        return '%s@%s:%s' % (self.ssh.user, self.ssh.alias, directory)

    def on_destination(self, argv):
        """
        Give the command line that runs a command on the destination's system.

        :param argv: The command (a list of strings).
        :returns: An ``ssh`` command line (a list of strings).
        """
        return self.ssh.remote_command(argv)
