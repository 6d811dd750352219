"""
The mount points that a system configures, and whether the filesystem of each is mounted now.

A backup disk is usually named in ``/etc/fstab`` (an encrypted one too: its
fstab entry mounts ``/dev/mapper/NAME``, the target of ``/etc/crypttab``),
or in a systemd mount unit in ``/etc/systemd/system`` (its ``Where=``). When
that disk isn't mounted, its mount point is a plain directory on the
filesystem underneath, usually the root filesystem, and a backup written
there fills the wrong disk. :func:`read_mount_configuration()` reads both
files and the mount table of the destination's system (in this process, or
with one command on another system);
:func:`find_unmounted_mount_point()` tells whether a path lies below such a
mount point that isn't mounted.
"""

import glob
import os
import posixpath
import re

from rsync_system_backup.disks.tabfiles import decode_escapes, parse_fstab
from rsync_system_backup.disks.unlock_and_mount import FSTAB_FILE
from rsync_system_backup.backup_set.operations import runs_in_process

MOUNT_UNITS = '/etc/systemd/system/*.mount'
"""The systemd mount units that an administrator writes (the ones of packages mount the system's own directories)."""

MOUNTINFO_FILE = '/proc/self/mountinfo'
"""The mount table of the reading process's mount namespace."""

WHERE_LINE = re.compile(r'^[ \t]*Where[ \t]*=[ \t]*(\S.*?)[ \t]*$', re.MULTILINE)
"""The line of a systemd mount unit that names its mount point."""

CONFIGURATION_SCRIPT = r'''
cat /etc/fstab 2> /dev/null; printf '\0'
cat /proc/self/mountinfo; printf '\0'
for unit in /etc/systemd/system/*.mount; do
    if [ -f "$unit" ]; then printf '%s\0' "$unit"; cat -- "$unit"; printf '\0'; fi
done
'''
"""
Shell code that prints ``/etc/fstab``, the mount table and each systemd
mount unit (its pathname, then its text), each followed by a NUL byte.
"""


class MountConfiguration(object):

    """The configured mount points of a system, and the mount points of its mount table."""

    def __init__(self, configured, mounted):
        """
        Remember what was read.

        :param configured: The configured mount points: a list of tuples of
                           the mount point (a normalised absolute path) and
                           the file that names it (a string).
        :param mounted: The mount points of the mount table (a set of strings).
        """
        self.configured = configured
        self.mounted = mounted


def parse_mount_table(text):
    """
    Read the mounts of a mount table with their filesystem types.

    :param text: The contents of ``/proc/self/mountinfo`` (bytes or a string).
    :returns: A dict of mount points (strings) and their filesystem types
              (strings, or :data:`None` for a line without one). Of two mounts
              on one mount point the later one counts: it covers the other.
    """
    if isinstance(text, str):
        text = text.encode('utf-8', 'surrogateescape')
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            # Spaces and other special characters are written as octal escapes (\040), as in /etc/fstab.
            mount_point = decode_escapes(os.fsdecode(fields[4]))
            # The optional fields end with '-', which the type follows.
            separator = fields.index(b'-', 6) if b'-' in fields[6:-1] else None
            mounts[mount_point] = os.fsdecode(fields[separator + 1]) if separator else None
    return mounts


def parse_mountinfo(text):
    """
    Read the mount points of a mount table.

    :param text: The contents of ``/proc/self/mountinfo`` (bytes or a string).
    :returns: A set of pathnames (strings).
    """
    return set(parse_mount_table(text))


def parse_mount_unit(text):
    """
    Find the mount point of a systemd mount unit.

    :param text: The unit file's text (a string).
    :returns: The value of its last ``Where=`` line (a string), or :data:`None`.
    """
    values = WHERE_LINE.findall(text)
    return values[-1] if values else None


def list_configured_mount_points(fstab_text, units):
    """
    List the mount points that ``/etc/fstab`` and systemd mount units name.

    :param fstab_text: The text of ``/etc/fstab`` (a string, empty when it is missing).
    :param units: Tuples of a mount unit's pathname and its text.
    :returns: A list of tuples of a mount point (an absolute, normalised
              path other than ``/``) and the file that names it.
    """
    configured = []
    for entry in parse_fstab(fstab_text):
        if entry.mount_point.startswith('/') and entry.fs_type != 'swap':
            configured.append((posixpath.normpath(entry.mount_point), FSTAB_FILE))
    for pathname, text in units:
        where = parse_mount_unit(text)
        if where and where.startswith('/'):
            configured.append((posixpath.normpath(where), pathname))
    return [(mount_point, origin) for mount_point, origin in configured if mount_point != '/']


def read_mount_configuration(context, sudo=False):
    """
    Read the configured mount points and the mount table of a system.

    :param context: The execution context of the system.
    :param sudo: :data:`True` to read with superuser privileges.
    :returns: A :class:`MountConfiguration`.
    """
    if runs_in_process(context, sudo):
        fstab_text = read_text(FSTAB_FILE)
        units = [(pathname, read_text(pathname)) for pathname in sorted(glob.glob(MOUNT_UNITS))]
        with open(MOUNTINFO_FILE, 'rb') as handle:
            mounted = parse_mountinfo(handle.read())
    else:
        output = context.capture('sh', '-c', CONFIGURATION_SCRIPT, 'mounts', sudo=sudo, shell=False, tty=False)
        parts = output.split('\0')
        fstab_text, mounted = parts[0], parse_mountinfo(parts[1] if len(parts) > 1 else '')
        rest = parts[2:]
        units = [(rest[index], rest[index + 1]) for index in range(0, len(rest) - 1, 2)]
    return MountConfiguration(list_configured_mount_points(fstab_text, units), mounted)


def read_text(pathname):
    """
    Read a configuration file of this system.

    :param pathname: The file's pathname (a string).
    :returns: Its text (a string), empty when it can't be read.
    """
    try:
        with open(pathname, encoding='utf-8', errors='surrogateescape') as handle:
            return handle.read()
    except OSError:
        return ''


def find_mount(pathname, mount_points):
    """
    Find the mount that holds a path.

    :param pathname: An absolute path without symbolic links (a string).
    :param mount_points: The mount points (a set of strings).
    :returns: The deepest mount point at or above `pathname` (a string).
    """
    while pathname not in mount_points and pathname != '/':
        pathname = posixpath.dirname(pathname)
    return pathname


def is_at_or_below(pathname, directory):
    """
    Check whether a path is a directory or lies below it (both absolute and normalised).

    :param pathname: The path (a string).
    :param directory: The directory (a string).
    :returns: :data:`True` when `pathname` is `directory` or lies below it.
    """
    return pathname == directory or pathname.startswith(directory.rstrip('/') + '/')


def find_unmounted_mount_point(configuration, pathname):
    """
    Find the configured mount point that a path lies below, when its filesystem isn't mounted.

    :param configuration: A :class:`MountConfiguration`.
    :param pathname: An absolute path without symbolic links (as far as it exists, a string).
    :returns: A tuple of the mount point and the file that names it, or
              :data:`None` when the path lies below no configured mount
              point, or on the filesystem mounted there (or on one mounted further down).
    """
    pathname = posixpath.normpath(pathname)
    containing = [(mount_point, origin) for mount_point, origin in configuration.configured
                  if is_at_or_below(pathname, mount_point)]
    if not containing:
        return None
    mount_point, origin = max(containing, key=lambda item: len(item[0]))
    if is_at_or_below(find_mount(pathname, configuration.mounted), mount_point):
        return None
    return mount_point, origin
