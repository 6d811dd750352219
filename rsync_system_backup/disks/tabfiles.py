"""
Parsing of ``/etc/crypttab`` and ``/etc/fstab``.

The parsers take the *text* of a file rather than a filename, so the caller
can read the file in whatever way suits it (locally, over SSH, through an
execution context) and hand the contents over::

    entries = parse_crypttab(context.read_file('/etc/crypttab').decode())
    entry = find_crypttab_entry(entries, 'backups')
    if entry is not None:
        device = resolve_device(entry.source)   # '/dev/disk/by-uuid/...'

Both file formats are whitespace separated tables (spaces and tabs, any
number of them). The parsers understand:

- comment lines (``#`` as the first non-blank character) and blank lines;
- trailing comments: a field that *starts* with ``#`` ends the line
  (``/dev/sdb1 /mnt ext4 defaults 0 0  # backup disk``), while a ``#``
  inside a field (``/mnt/a#b``) is an ordinary character;
- missing optional trailing fields, which get the documented defaults;
- octal escapes such as ``\\040`` (space) and ``\\011`` (tab), which is how
  both files write whitespace inside a field. Escapes are decoded to bytes
  first and then as UTF-8, so ``\\303\\251`` becomes ``é``.

Malformed lines (too few fields, or non-numeric dump/pass fields in fstab)
are skipped, like most tools that read these files do.

Nothing in this module touches the filesystem: :func:`resolve_device` is a
pure mapping from ``UUID=...``-style tags to ``/dev/disk/by-*`` paths.
"""

import posixpath
import re
from typing import List, NamedTuple, Optional

__all__ = (
    'CrypttabEntry',
    'FstabEntry',
    'DEVICE_TAGS',
    'parse_crypttab',
    'parse_fstab',
    'find_crypttab_entry',
    'find_fstab_entry',
    'resolve_device',
    'decode_escapes',
)

DEVICE_TAGS = {
    'UUID': '/dev/disk/by-uuid',
    'LABEL': '/dev/disk/by-label',
    'PARTUUID': '/dev/disk/by-partuuid',
    'PARTLABEL': '/dev/disk/by-partlabel',
}
"""Maps the tags understood by :func:`resolve_device` to the udev directories that hold their symbolic links."""

NO_KEY_FILE = ('none', '-')
"""Key file field values in ``/etc/crypttab`` that mean "no key file" (ask for a passphrase)."""

FIELD = re.compile(r'[^ \t\r\v\f]+')
"""Matches one field: fields are separated by ASCII blanks only (``str.split()`` also splits on no-break spaces)."""

OCTAL_ESCAPE = re.compile(rb'\\([0-3][0-7][0-7])')
"""Matches a backslash followed by three octal digits (``\\040``) in the UTF-8 encoded text of a field."""


class CrypttabEntry(NamedTuple):

    """
    One line of ``/etc/crypttab``: ``target source [key_file] [options]``.

    :ivar target: The name of the mapping, i.e. the encrypted filesystem is
                  available as ``/dev/mapper/<target>`` once unlocked.
    :ivar source: The encrypted block device, as written in the file: a path
                  or a tag such as ``UUID=...`` (see :func:`resolve_device`).
    :ivar key_file: The key file, or :data:`None` when the field is missing,
                    ``none`` or ``-`` (meaning: ask for a passphrase).
    :ivar options: The comma separated options as a list of strings (empty
                   when the field is missing).
    """

    target: str
    source: str
    key_file: Optional[str]
    options: List[str]

    @property
    def device(self):
        """
        The pathname of the source device (:func:`resolve_device` applied to :attr:`source`).

        :raises: :exc:`ValueError` when :attr:`source` is a tag without a value (``UUID=``).
        """
        return resolve_device(self.source)


class FstabEntry(NamedTuple):

    """
    One line of ``/etc/fstab``: ``device mount_point [fs_type [options [dump [passno]]]]``.

    :ivar device: The device field as written in the file: a path, a tag such
                  as ``UUID=...`` (see :func:`resolve_device`), or something
                  filesystem specific (``tmpfs``, ``server:/export``).
    :ivar mount_point: The mount point (or ``none`` for swap).
    :ivar fs_type: The filesystem type (``auto`` when the field is missing).
    :ivar options: The comma separated options as a list of strings
                   (``['defaults']`` when the field is missing).
    :ivar dump: The dump frequency as an integer (0 when missing).
    :ivar passno: The fsck pass number as an integer (0 when missing).
    """

    device: str
    mount_point: str
    fs_type: str
    options: List[str]
    dump: int
    passno: int


def parse_crypttab(text):
    """
    Parse the contents of ``/etc/crypttab``.

    :param text: The contents of the file (a string, or UTF-8 encoded bytes).
    :returns: A list of :class:`CrypttabEntry` objects in file order; a
              line with fewer than two fields is skipped, fields after the
              fourth are ignored.

    Only ``target`` and ``source`` are required: a line such as
    ``backups UUID=1234`` gives ``key_file=None`` and ``options=[]``.
    """
    entries = []
    for fields in _split_lines(text):
        if len(fields) < 2:
            continue
        key_file = fields[2] if len(fields) > 2 else None
        if key_file in NO_KEY_FILE:
            key_file = None
        options = _split_options(fields[3]) if len(fields) > 3 else []
        entries.append(CrypttabEntry(target=fields[0], source=fields[1], key_file=key_file, options=options))
    return entries


def parse_fstab(text):
    """
    Parse the contents of ``/etc/fstab``.

    :param text: The contents of the file (a string, or UTF-8 encoded bytes).
    :returns: A list of :class:`FstabEntry` objects in file order; a line
              with fewer than two fields, or whose dump or pass field isn't a
              non-negative integer, is skipped; fields after the sixth are
              ignored.

    Missing trailing fields get defaults: ``fs_type='auto'``,
    ``options=['defaults']``, ``dump=0`` and ``passno=0``.
    """
    entries = []
    for fields in _split_lines(text):
        if len(fields) < 2:
            continue
        numbers = []
        for value in fields[4:6]:
            if not value.isdigit() or not value.isascii():
                break
            numbers.append(int(value))
        else:
            numbers.extend([0] * (2 - len(numbers)))
            entries.append(FstabEntry(
                device=fields[0],
                mount_point=fields[1],
                fs_type=fields[2] if len(fields) > 2 else 'auto',
                options=(_split_options(fields[3]) or ['defaults']) if len(fields) > 3 else ['defaults'],
                dump=numbers[0],
                passno=numbers[1],
            ))
    return entries


def find_crypttab_entry(entries, target):
    """
    Find the ``/etc/crypttab`` entry for a mapping name.

    :param entries: An iterable of :class:`CrypttabEntry` objects
                    (usually the result of :func:`parse_crypttab`).
    :param target: The mapping name to look for (the first field).
    :returns: The first :class:`CrypttabEntry` whose :attr:`~CrypttabEntry.target`
              equals `target`, or :data:`None` when there is none.
    """
    for entry in entries:
        if entry.target == target:
            return entry
    return None


def find_fstab_entry(entries, mount_point):
    """
    Find the ``/etc/fstab`` entry for a mount point.

    :param entries: An iterable of :class:`FstabEntry` objects
                    (usually the result of :func:`parse_fstab`).
    :param mount_point: The mount point to look for. Redundant slashes and
                        ``.`` components don't matter (``/mnt/backups/`` finds
                        ``/mnt/backups``).
    :returns: The *last* matching :class:`FstabEntry` (as with ``mount``, a
              later line for the same mount point wins), or :data:`None`.
    """
    wanted = _normalize_path(mount_point)
    found = None
    for entry in entries:
        if _normalize_path(entry.mount_point) == wanted:
            found = entry
    return found


def resolve_device(source):
    """
    Map a device specification from ``/etc/crypttab`` or ``/etc/fstab`` to a pathname.

    :param source: A device specification: ``UUID=x``, ``LABEL=x``,
                   ``PARTUUID=x``, ``PARTLABEL=x`` (the value may be enclosed
                   in double or single quotes) or anything else, which is
                   returned unchanged (a plain path such as ``/dev/sdb1``).
    :returns: ``/dev/disk/by-uuid/x``, ``/dev/disk/by-label/x``,
              ``/dev/disk/by-partuuid/x``, ``/dev/disk/by-partlabel/x`` or
              `source` itself.
    :raises: :exc:`ValueError` when a tag has an empty value (``UUID=``),
             which would otherwise name the ``/dev/disk/by-uuid`` directory.

    This is pure string manipulation: the filesystem is never consulted.
    Tag names are case sensitive (as in ``mount``). A ``/`` in a value is
    written as ``\\x2f``, as udev does in its symbolic link names (udev's
    other escapes are not reproduced).
    """
    name, separator, value = source.partition('=')
    if not separator or name not in DEVICE_TAGS:
        return source
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
        value = value[1:-1]
    if not value:
        raise ValueError('Device specification %r has an empty value!' % source)
    return DEVICE_TAGS[name] + '/' + value.replace('/', '\\x2f')


def decode_escapes(field):
    """
    Decode the octal escapes in a field of ``/etc/fstab`` or ``/etc/crypttab``.

    :param field: The raw text of one field (``/mnt/my\\040disk``).
    :returns: The decoded text (``/mnt/my disk``). A backslash that isn't
              followed by three octal digits (up to ``\\377``) is kept as is;
              bytes that aren't valid UTF-8 become surrogate escapes.
    """
    if '\\' not in field:
        return field
    raw = field.encode('utf-8', 'surrogateescape')
    raw = OCTAL_ESCAPE.sub(lambda match: bytes([int(match.group(1), 8)]), raw)
    return raw.decode('utf-8', 'surrogateescape')


def _split_lines(text):
    """
    Split the text of a table file into fields, dropping comments and blank lines.

    :param text: The contents of the file (a string or UTF-8 encoded bytes).
    :returns: A generator of lists with the decoded fields of a line before
              any trailing comment (never empty).
    """
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'surrogateescape')
    # str.splitlines() would also split on \v, \f, \x1c, \x85, \u2028 and more.
    for line in text.split('\n'):
        fields = []
        for field in FIELD.findall(line):
            if field.startswith('#'):
                break
            fields.append(decode_escapes(field))
        if fields:
            yield fields


def _split_options(field):
    """
    Split a comma separated options field.

    :param field: The (decoded) options field.
    :returns: A list of the non-empty options.
    """
    return [option for option in field.split(',') if option]


def _normalize_path(path):
    """
    Normalize a mount point for comparison.

    :param path: A pathname (``/mnt//backups/``).
    :returns: The normalized pathname (``/mnt/backups``).
    """
    return posixpath.normpath(path) if path else path
