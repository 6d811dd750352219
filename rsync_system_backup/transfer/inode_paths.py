"""
Every name of an inode in a btrfs subvolume, from the kernel (the ``BTRFS_IOC_INO_PATHS`` ioctl).

The send plan (see :mod:`.transfer.send_plan`) must find the other names of
each hard-linked file that changed. ``btrfs inspect-internal inode-resolve``
asks the kernel with this ioctl, one process per inode (1.5 to 6 ms each,
20 of them in a run at 100,000 files with 1% changed); :func:`inode_paths()`
asks it directly. The ioctl needs ``CAP_SYS_ADMIN``: the send plan is only
made by root on the source's own system (see :mod:`.transfer.plan_choice`).

The kernel writes a ``struct btrfs_data_container`` into a buffer that the
caller provides: four 32-bit counters (bytes left, bytes missing, elements,
elements missed), then one 64-bit offset per name, each from the start of
the offsets to the name, a NUL-terminated path relative to the subvolume.
"""

import ctypes
import errno
import fcntl
import os
import struct

INO_PATHS_REQUEST = (3 << 30) | (56 << 16) | (0x94 << 8) | 35
"""``BTRFS_IOC_INO_PATHS``: ``_IOWR(0x94, 35, struct btrfs_ioctl_ino_path_args)``, whose size is 56 bytes."""

ARGUMENTS = struct.Struct('=QQ4QQ')
"""``struct btrfs_ioctl_ino_path_args``: the inode, the buffer's size, four reserved words, the buffer's address."""

CONTAINER = struct.Struct('=IIII')
"""The head of ``struct btrfs_data_container``: bytes left, bytes missing, elements, elements missed."""

ANSWER_SIZE = 4096
"""
The size of the buffer for the answer (bytes): the kernel fills no more
than 4096 bytes, whatever the caller offers (measured: the names of an
inode with 20 names of 205 bytes don't fit in 64 KiB either).
"""


def inode_paths(subvolume, inode):
    """
    Find every name of an inode in a subvolume.

    :param subvolume: The subvolume's top directory (bytes).
    :param inode: The inode's number (an integer).
    :returns: The names, relative to the subvolume (a list of bytes).
    :raises: :exc:`OSError` when the ioctl fails (not btrfs, not root, no
             such inode), also with ``ENAMETOOLONG`` when the names don't fit
             in the kernel's answer (see :data:`ANSWER_SIZE`).
    """
    descriptor = os.open(subvolume, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        names, complete = ask_kernel(descriptor, inode)
    finally:
        os.close(descriptor)
    if not complete:
        raise OSError(errno.ENAMETOOLONG, "the names of inode %i don't fit in the kernel's answer" % inode)
    return names


def ask_kernel(descriptor, inode):
    """
    Run the ioctl once, with a buffer of :data:`ANSWER_SIZE` bytes for the answer.

    :param descriptor: An open directory of the subvolume (an integer).
    :param inode: The inode's number (an integer).
    :returns: A tuple of the names (a list of bytes) and :data:`False` when
              the answer lacked room for some of them (:data:`True` when it is complete).
    """
    buffer = ctypes.create_string_buffer(ANSWER_SIZE)
    arguments = bytearray(ARGUMENTS.pack(inode, ANSWER_SIZE, 0, 0, 0, 0, ctypes.addressof(buffer)))
    fcntl.ioctl(descriptor, INO_PATHS_REQUEST, arguments)
    data = buffer.raw
    _, missing, count, missed = CONTAINER.unpack_from(data)
    if missing or missed:
        return [], False
    offsets = struct.unpack_from('=%iQ' % count, data, CONTAINER.size)
    names = []
    for offset in offsets:
        start = CONTAINER.size + offset
        end = data.find(b'\0', start)
        if not CONTAINER.size <= start < end:
            raise OSError(errno.EIO, "the kernel's answer for inode %i is malformed" % inode)
        names.append(data[start:end])
    return names, True
