"""
Tests of :mod:`rsync_system_backup.disks.configured_mounts`: the configured mount points, and which are mounted.

The parsing and the decision are pure functions; reading the real files is
tested in a private mount namespace (see :mod:`support.namespaces`) whose
``/etc/fstab`` and systemd mount unit are the test's, once in this process
and once with the shell code that other systems run, which must agree.
"""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from rsync_system_backup.disks.configured_mounts import (
    MountConfiguration,
    find_unmounted_mount_point,
    list_configured_mount_points,
    parse_mount_unit,
    parse_mountinfo,
)
from support.namespaces import namespace_commands

FSTAB = '''\
# <file system> <mount point> <type> <options> <dump> <pass>
UUID=1234 / ext4 errors=remount-ro 0 1
/swapfile none swap sw 0 0
LABEL=backup /mnt/backups ext4 noauto 0 2  # the backup disk
/dev/mapper/vault /mnt/my\\040vault/ ext4 noauto 0 2
server:/export /srv/nfs nfs defaults 0 0
'''
"""An fstab with the root filesystem, swap, a comment, an escaped space and a trailing slash."""

UNIT = '''\
[Unit]
Description=USB disk

[Mount]
What=LABEL=usb
Where = /media/usb
Type=ext4
'''
"""A systemd mount unit (spaces around ``=`` are allowed)."""


def test_configured_mount_points():
    """fstab's mount points but / and swap, decoded and normalised, then the units' Where=."""
    assert list_configured_mount_points(FSTAB, [('/etc/systemd/system/media-usb.mount', UNIT)]) == [
        ('/mnt/backups', '/etc/fstab'),
        ('/mnt/my vault', '/etc/fstab'),
        ('/srv/nfs', '/etc/fstab'),
        ('/media/usb', '/etc/systemd/system/media-usb.mount'),
    ]
    assert parse_mount_unit('[Mount]\nWhat=x\n') is None
    assert list_configured_mount_points('', []) == []


def test_mountinfo():
    """Mount points are field 5 of /proc/self/mountinfo, with octal escapes."""
    text = (b'27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n'
            b'99 27 0:50 / /mnt/my\\040vault rw - ext4 /dev/mapper/vault rw\n')
    assert parse_mountinfo(text) == {'/', '/mnt/my vault'}


@pytest.mark.parametrize('pathname, mounted, expected', [
    ('/mnt/backups/host/latest', {'/'}, ('/mnt/backups', '/etc/fstab')),
    ('/mnt/backups', {'/'}, ('/mnt/backups', '/etc/fstab')),
    ('/mnt/backups/host/latest', {'/', '/mnt/backups'}, None),
    ('/mnt/backups-2/latest', {'/'}, None),
    ('/srv/backups/latest', {'/'}, None),
    # A filesystem mounted further down counts: the path is on it.
    ('/mnt/backups/usb/latest', {'/', '/mnt/backups/usb'}, None),
    ('/media/usb/latest', {'/', '/media'}, ('/media/usb', 'unit')),
    ('/mnt/my vault/latest', {'/'}, ('/mnt/my vault', '/etc/fstab')),
])
def test_unmounted_mount_point(pathname, mounted, expected):
    """The deepest configured mount point above the path counts, unless the filesystem is mounted there or lower."""
    configuration = MountConfiguration(list_configured_mount_points(FSTAB, [('unit', UNIT)]), mounted)
    assert find_unmounted_mount_point(configuration, pathname) == expected


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'), reason='needs root and unshare')
@pytest.mark.usefixtures('unchanged_host')
def test_reading_here_and_with_the_shell_code_agree(tmp_path):
    """In a namespace with the test's fstab and unit, both ways of reading find the same configuration."""
    script = '\n'.join([
        'from executor.contexts import LocalContext',
        'from rsync_system_backup.disks import configured_mounts',
        'here = configured_mounts.read_mount_configuration(LocalContext())',
        'configured_mounts.runs_in_process = lambda context, sudo: False',
        'there = configured_mounts.read_mount_configuration(LocalContext())',
        'assert here.mounted == there.mounted, (here.mounted, there.mounted)',
        'print(here.configured == there.configured)',
        'print(sorted(here.configured))',
    ])
    write_unit = 'mkdir -p /etc/systemd/system && printf %%s %s > /etc/systemd/system/media-usb.mount' % (
        shlex.quote(UNIT))
    command = '%s && %s' % (write_unit, ' '.join(shlex.quote(a) for a in [sys.executable, '-c', script]))
    result = subprocess.run(namespace_commands([command], fstab=FSTAB), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ['True', repr(sorted([
        ('/mnt/backups', '/etc/fstab'), ('/mnt/my vault', '/etc/fstab'), ('/srv/nfs', '/etc/fstab'),
        ('/media/usb', '/etc/systemd/system/media-usb.mount')]))], result
