"""
A throw-away rsync daemon (``rsync --daemon``) on 127.0.0.1 for the test suite, and its secrets files.

Example::

    with RsyncDaemon(tmp_path / 'rsyncd', {'backups': {'path': dst, 'read only': 'no'}}) as daemon:
        subprocess.check_call(['rsync', '-a', 'src/', daemon.url('backups')])
"""

import os

from support.servers import DEFAULT_TIMEOUT, LOCALHOST, ChildServer, find_program, free_port, write_lines


def write_secrets_file(path, credentials):
    """
    Write an rsync daemon secrets file (``user:password`` lines, mode 600).

    :param path: The pathname of the file to write (a string or path).
    :param credentials: A dictionary with user names and passwords.
    :returns: The pathname of the file (a string).
    """
    path = str(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        for user, password in credentials.items():
            handle.write('%s:%s\n' % (user, password))
    os.chmod(path, 0o600)  # In case the file already existed.
    return path


class RsyncDaemon(ChildServer):

    """
    An rsync daemon (``rsync --daemon --no-detach``) on 127.0.0.1.

    Files in :attr:`directory`: ``rsyncd.conf``, ``rsyncd.log`` (the
    daemon's log plus its standard error) and ``rsyncd.lock``.
    """

    name = 'rsync daemon'
    greeting = b'@RSYNCD:'

    def __init__(self, directory, modules, port=None, timeout=DEFAULT_TIMEOUT):
        """
        Initialize an :class:`RsyncDaemon` object (:meth:`start()` starts it).

        :param directory: See :class:`ChildServer`.
        :param modules: A dictionary of module names and dictionaries of
                        their options, for example ``{'backups': {'path':
                        '/srv', 'read only': 'no', 'auth users': 'alice',
                        'secrets file': write_secrets_file(...)}}``.
        :param port: A fixed port (an integer, for example 873), or
                     :data:`None` to use :func:`free_port()`.
        :param timeout: See :class:`ChildServer`.
        """
        super(RsyncDaemon, self).__init__(directory, timeout)
        self.modules = modules
        self.port = port or free_port()
        self.config_file = os.path.join(self.directory, 'rsyncd.conf')
        self.log_file = os.path.join(self.directory, 'rsyncd.log')

    def prepare(self):
        """
        Write the daemon's configuration file.

        :returns: The command line that starts the daemon (a list of strings).
        """
        rsync = find_program('rsync', 'rsync')
        lines = [
            'port = %d' % self.port,
            'address = %s' % LOCALHOST,
            'use chroot = no',
            'log file = %s' % self.log_file,
            'lock file = %s' % os.path.join(self.directory, 'rsyncd.lock'),
            'uid = root',
            'gid = root',
        ]
        for module, options in self.modules.items():
            lines.append('')
            lines.append('[%s]' % module)
            lines.extend('    %s = %s' % (key, value) for key, value in options.items())
        write_lines(self.config_file, lines)
        return [
            rsync, '--daemon', '--no-detach', '--config=%s' % self.config_file,
            '--port=%d' % self.port, '--address=%s' % LOCALHOST,
        ]

    def url(self, module, path='', user=None):
        """
        Get the ``rsync://`` URL of a module of this daemon.

        :param module: The name of the module (a string).
        :param path: A pathname inside the module (a string, optional).
        :param user: The user name to log in as (a string, optional).
        :returns: For example ``rsync://alice@127.0.0.1:40123/backups/dir/``.
        """
        return 'rsync://%s%s:%d/%s/%s' % (user + '@' if user else '', LOCALHOST, self.port, module, path.lstrip('/'))
