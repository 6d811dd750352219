"""
Reading a btrfs send stream: the commands that turn one snapshot into another.

``btrfs send --no-data -p OLD NEW`` writes, in the kernel's binary format,
the commands that a receiver would carry out to turn a copy of ``OLD`` into
``NEW``: create an entry, rename, link, unlink, remove a directory, change
attributes, and (without the data) which files' contents change.
:func:`read_commands()` reads them, while ``btrfs send`` still writes,
into :class:`Command` objects whose paths are bytes exactly as the kernel
wrote them.

The binary stream is read instead of ``btrfs receive --dump``'s text: the
dump escapes paths (a backslash before a space, ``\\\\`` for a backslash,
``\\n`` and the other C escapes, ``\\ooo`` for every other byte that isn't
printable ASCII), but prints extended attributes' names and values as they are, so a
value holding a newline starts a line that reads as another command (a user
who can set ``user.*`` attributes on her files could add deletions to it).

The stream is a header (:data:`STREAM_MAGIC` and a little-endian 32-bit
version), then commands: a 32-bit length, a 16-bit command number and a
32-bit checksum, then that many bytes of attributes, each a 16-bit type, a
16-bit length and the value (in version 2 and later, :data:`DATA_ATTRIBUTE`
has no length and takes the rest of its command).
"""

import struct

STREAM_MAGIC = b'btrfs-stream\0'
"""How a send stream starts."""

VERSIONS = (1, 2, 3)
"""The stream versions that :func:`read_commands()` reads."""

COMMAND_HEADER = struct.Struct('<IHI')
"""A command's header: the length of its attributes, its number and its checksum."""

ATTRIBUTE_HEADER = struct.Struct('<HH')
"""An attribute's header: its type and its length."""

COMMAND_NAMES = {
    1: 'subvol', 2: 'snapshot', 3: 'mkfile', 4: 'mkdir', 5: 'mknod', 6: 'mkfifo', 7: 'mksock', 8: 'symlink',
    9: 'rename', 10: 'link', 11: 'unlink', 12: 'rmdir', 13: 'set_xattr', 14: 'remove_xattr', 15: 'write',
    16: 'clone', 17: 'truncate', 18: 'chmod', 19: 'chown', 20: 'utimes', 21: 'end', 22: 'update_extent',
    23: 'fallocate', 24: 'fileattr', 25: 'encoded_write', 26: 'enable_verity',
}
"""The commands of stream versions 1 to 3 by number (the names that ``btrfs receive --dump`` shows)."""

PATH_ATTRIBUTES = {15: 'path', 16: 'path_to', 17: 'path_link', 22: 'clone_path'}
"""The attributes that hold paths, by type: kept as bytes."""

INTEGER_ATTRIBUTES = {3: 'ino', 4: 'size', 5: 'mode', 6: 'uid', 7: 'gid', 8: 'rdev', 18: 'file_offset'}
"""The 64-bit attributes that :class:`Command` decodes, by type."""

DATA_ATTRIBUTE = 19
"""The attribute of a write's data (the only one without a length from version 2 on)."""


class StreamError(Exception):

    """Raised when the stream isn't a send stream that :func:`read_commands()` understands."""


class Command(object):

    """One command of a send stream."""

    def __init__(self, name, attributes):
        """
        Remember a command.

        :param name: Its name (a value of :data:`COMMAND_NAMES`).
        :param attributes: A dict of its decoded attributes: the names of
                           :data:`PATH_ATTRIBUTES` (bytes) and
                           :data:`INTEGER_ATTRIBUTES` (integers).
        """
        self.name = name
        self.attributes = attributes

    def __repr__(self):
        """Show the command and its attributes (for messages and tests)."""
        return 'Command(%r, %r)' % (self.name, self.attributes)


def read_commands(stream):
    """
    Read a send stream as it comes.

    :param stream: A binary stream whose ``read(n)`` gives `n` bytes unless
                   the stream ends first (a buffered pipe from ``btrfs
                   send``, or :class:`io.BytesIO`).
    :returns: A generator of :class:`Command` objects, up to and without the ``end`` command.
    :raises: :exc:`StreamError` (while iterating) when the stream is cut
             short, isn't one, or has a version or command number this
             module doesn't know.

    Each command is given as soon as its last byte is read, so whoever
    reads them works while ``btrfs send`` still writes the rest.
    """
    header = stream.read(len(STREAM_MAGIC) + 4)
    if not header.startswith(STREAM_MAGIC) or len(header) < len(STREAM_MAGIC) + 4:
        raise StreamError("it isn't a btrfs send stream")
    version = struct.unpack_from('<I', header, len(STREAM_MAGIC))[0]
    if version not in VERSIONS:
        raise StreamError("it has version %i" % version)
    while True:
        head = stream.read(COMMAND_HEADER.size)
        if len(head) < COMMAND_HEADER.size:
            raise StreamError("it ends without an end command")
        length, number, _ = COMMAND_HEADER.unpack(head)
        block = stream.read(length)
        if len(block) < length:
            raise StreamError("a command is cut short")
        if number not in COMMAND_NAMES:
            raise StreamError("it has an unknown command (number %i)" % number)
        name = COMMAND_NAMES[number]
        if name == 'end':
            return
        yield Command(name, read_attributes(block, version))


def read_attributes(block, version):
    """
    Decode a command's attributes.

    :param block: The attributes (bytes).
    :param version: The stream's version.
    :returns: A dict (see :class:`Command`); attributes of other types are skipped.
    :raises: :exc:`StreamError` when an attribute is cut short.
    """
    attributes = {}
    position = 0
    while position < len(block):
        if version >= 2 and struct.unpack_from('<H', block, position)[0] == DATA_ATTRIBUTE:
            break
        if position + ATTRIBUTE_HEADER.size > len(block):
            raise StreamError("an attribute is cut short")
        kind, length = ATTRIBUTE_HEADER.unpack_from(block, position)
        value = block[position + ATTRIBUTE_HEADER.size:position + ATTRIBUTE_HEADER.size + length]
        position += ATTRIBUTE_HEADER.size + length
        if len(value) != length:
            raise StreamError("an attribute is cut short")
        if kind in PATH_ATTRIBUTES:
            attributes[PATH_ATTRIBUTES[kind]] = value
        elif kind in INTEGER_ATTRIBUTES and length == 8:
            attributes[INTEGER_ATTRIBUTES[kind]] = struct.unpack('<Q', value)[0]
    return attributes
