"""
An SSH server whose users log in without being root, with or without passwordless sudo.

The users and the sudo rule exist only inside sshd's mount namespace:
private copies of ``/etc/passwd`` and ``/etc/group`` with the test users
added are bind-mounted over the host's there, and ``/etc/sudoers.d`` is a
tmpfs that holds only the test's drop-in (checked with ``visudo -cf`` first);
``/mnt`` gets a tmpfs with a copy of ``authorized_keys`` that the users can
read.
So a login over SSH, and sudo within it, see the users and the rule, while
the host's files stay exactly as they were, whatever happens to the test.
"""

import os
import shlex

from support.remote import PrivateHomeSSHServer
from support.servers import find_program, write_lines
from support.users import SUDOERS_DROP_IN, write_sudoers_drop_in

SUDO_USER = 'rsb-operator'
"""A user that may run anything as root through sudo, without a password."""

PLAIN_USER = 'rsb-nobody'
"""A user without sudo rights."""

TEST_USERS = ((SUDO_USER, 64170), (PLAIN_USER, 64171))
"""The test users and their (unused) user and group ids."""

KEYS_DIRECTORY = '/mnt'
"""Where sshd's namespace gets a tmpfs with a copy of ``authorized_keys`` that every user can read."""

KEYS_SETTING = 'AuthorizedKeysFile %s/authorized_keys' % KEYS_DIRECTORY
"""The ``sshd_config`` line that points sshd at that copy."""


class SudoSSHServer(PrivateHomeSSHServer):

    """A :class:`support.remote.PrivateHomeSSHServer` with the users :data:`SUDO_USER` and :data:`PLAIN_USER`."""

    def prepare(self):
        """Write the private user database and sudoers drop-in, and mount them in sshd's namespace."""
        command = super(SudoSSHServer, self).prepare()
        find_program('sudo', 'sudo')
        passwd = os.path.join(self.directory, 'passwd')
        group = os.path.join(self.directory, 'group')
        with open('/etc/passwd') as handle:
            users = handle.read().splitlines()
        with open('/etc/group') as handle:
            groups = handle.read().splitlines()
        for name, number in TEST_USERS:
            users.append('%s:*:%i:%i:rsync-system-backup test:/:/bin/sh' % (name, number, number))
            groups.append('%s:x:%i:' % (name, number))
        write_lines(passwd, users)
        write_lines(group, groups)
        drop_in = write_sudoers_drop_in(self.directory, rules=['%s ALL=(root) NOPASSWD: ALL' % SUDO_USER])
        # sshd reads authorized_keys as the user, who can't enter the test's directories: a copy goes on a tmpfs.
        with open(self.server_config_file) as handle:
            settings = [KEYS_SETTING if line.startswith('AuthorizedKeysFile ') else line
                        for line in handle.read().splitlines()]
        write_lines(self.server_config_file, settings)
        mounts = [
            'mount --bind %s /etc/passwd' % shlex.quote(passwd),
            'mount --bind %s /etc/group' % shlex.quote(group),
            'mount -t tmpfs -o mode=755 tmpfs /etc/sudoers.d',
            'cp -p %s /etc/sudoers.d/%s' % (shlex.quote(drop_in), SUDOERS_DROP_IN),
            'mount -t tmpfs -o mode=755 tmpfs %s' % KEYS_DIRECTORY,
            'install -m 644 %s %s/authorized_keys' % (shlex.quote(self.authorized_keys_file), KEYS_DIRECTORY),
        ]
        command[-1] = ' && '.join(mounts + [command[-1]])
        return command
