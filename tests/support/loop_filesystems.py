"""
Real filesystems for the snapshot method tests, mounted in a private mount namespace.

A :class:`MountedFilesystem` makes a btrfs, XFS (with reflinks) or ext4 image
(or takes a tmpfs), and mounts it in a mount namespace of its own, held open
by a process that waits for its standard input to close. The host never sees
the mount: the tests run commands in the namespace with ``nsenter`` and look
at the files through ``/proc/PID/root`` (see :meth:`MountedFilesystem.view`).
When the holder exits, the namespace and its mount disappear and the loop
device (set up with auto-clear by ``mount -o loop``) detaches itself;
:func:`support.leaks.assert_no_leaks` checks that it did.
"""

import subprocess

from support.cli import command_environment, command_line
from support.leaks import assert_no_leaks, cleanup_leaks
from support.remote import PrivateHomeSSHServer

IMAGE_MAKERS = {
    'btrfs': (256, ['mkfs.btrfs', '-q', '-f']),
    'xfs': (320, ['mkfs.xfs', '-q', '-f', '-m', 'reflink=1']),
    'ext4': (64, ['mkfs.ext4', '-q', '-F']),
}
"""The image size (MiB) and mkfs command of each filesystem on a loop device."""

HOLDER_SCRIPT = '''
set -eu
if [ -d /run/mount ]; then mount -n -t tmpfs -o mode=0755 rsb-utab /run/mount; fi
if [ "$1" = tmpfs ]; then mount -n -t tmpfs tmpfs "$2"; else mount -n -o loop "$1" "$2"; fi
echo mounted
exec cat > /dev/null
'''
"""
Shell code that mounts an image (or a tmpfs) in the new namespace, says so
and then waits for the end of its standard input. ``/run/mount`` gets a
private tmpfs first, so libmount records nothing on the host.
"""


class MountedFilesystem(object):

    """A filesystem mounted in a private mount namespace for the duration of a ``with`` block."""

    def __init__(self, kind, directory, size=None):
        """
        Prepare a filesystem.

        :param kind: ``btrfs``, ``xfs``, ``ext4`` or ``tmpfs``.
        :param directory: A directory of its own (a path), which holds the
                          image and the mount point ``mnt``.
        :param size: The size of the image in MiB (the image is a sparse
                     file), or :data:`None` for the size in :data:`IMAGE_MAKERS`.
        """
        self.kind = kind
        self.size = size
        self.directory = directory
        self.image = directory / 'image'
        self.mount_point = directory / 'mnt'
        self.holder = None

    def __enter__(self):
        """Make the filesystem and mount it."""
        self.mount_point.mkdir(parents=True)
        if self.kind != 'tmpfs':
            size, command = IMAGE_MAKERS[self.kind]
            with open(str(self.image), 'wb') as handle:
                handle.truncate((self.size or size) * 1024 * 1024)
            subprocess.run(command + [str(self.image)], check=True, stdin=subprocess.DEVNULL, capture_output=True)
        source = 'tmpfs' if self.kind == 'tmpfs' else str(self.image)
        self.holder = subprocess.Popen(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', HOLDER_SCRIPT,
                                        'holder', source, str(self.mount_point)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self.holder.stdout.readline() != b'mounted\n':
            self.__exit__()
            raise AssertionError("Failed to mount %s on %s" % (self.kind, self.mount_point))
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Let the namespace go and check that no mount or loop device is left."""
        self.holder.stdin.close()
        self.holder.wait(timeout=30)
        self.holder.stdout.close()
        if exc_type is None:
            assert_no_leaks([self.image], [self.directory])
        else:
            cleanup_leaks([self.image], [self.directory])

    @property
    def pid(self):
        """The process id of the process that holds the namespace (an integer)."""
        return self.holder.pid

    def view(self, pathname):
        """
        Translate a pathname in the namespace into one that the tests can open.

        :param pathname: An absolute pathname (a string or path).
        :returns: The pathname under ``/proc/PID/root`` (a string).
        """
        return '/proc/%d/root%s' % (self.pid, pathname)

    def command(self, *arguments):
        """
        Prefix a command so that it runs in the namespace.

        :param arguments: The command (strings or paths).
        :returns: A list of strings.
        """
        return ['nsenter', '--target', str(self.pid), '--mount', '--'] + [str(a) for a in arguments]

    def run(self, *arguments, env=None, check=True):
        """
        Run a command in the namespace.

        :param arguments: The command (strings or paths).
        :param env: Environment variables to add (a dict).
        :param check: :data:`True` to fail when the command fails.
        :returns: A :class:`subprocess.CompletedProcess` with text output.
        """
        environment = command_environment()
        environment.update(env or {})
        result = subprocess.run(self.command(*arguments), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                env=environment, timeout=120)
        if check:
            assert result.returncode == 0, result
        return result

    def run_cli(self, *arguments, env=None):
        """
        Run ``python -m rsync_system_backup --disable-notifications ARGUMENTS`` in the namespace.

        :param arguments: The command line arguments (strings or paths).
        :param env: Environment variables to add (a dict).
        :returns: A :class:`subprocess.CompletedProcess`; ``output`` holds
                  standard output and error together.
        """
        result = self.run(*command_line('--disable-notifications', *arguments), env=env, check=False)
        result.output = result.stdout + result.stderr
        return result


class NamespaceSSHServer(PrivateHomeSSHServer):

    """A :class:`support.remote.PrivateHomeSSHServer` whose sessions see a :class:`MountedFilesystem`."""

    def __init__(self, directory, filesystem, **options):
        """
        Prepare the server.

        :param directory: See :class:`support.servers.ChildServer`.
        :param filesystem: A mounted :class:`MountedFilesystem`.
        :param options: See :class:`support.remote.PrivateHomeSSHServer`.
        """
        super(NamespaceSSHServer, self).__init__(directory, **options)
        self.filesystem = filesystem

    def prepare(self):
        """Start sshd from inside the filesystem's namespace (its own namespace is then a copy of that one)."""
        return self.filesystem.command(*super(NamespaceSSHServer, self).prepare())
