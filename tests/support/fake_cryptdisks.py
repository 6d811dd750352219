"""
Stand-ins for ``cryptdisks_start`` and ``cryptdisks_stop`` that work only inside a test namespace.

They "unlock" a crypttab entry with a symbolic link in the namespace's own
``/dev/mapper`` (see :mod:`support.namespaces`) and log every call.
"""

import os
import shlex

from support.namespaces import NAMESPACE_MARKER

FAKE_CRYPTDISKS_START = r'''#!/bin/sh
# Fake cryptdisks_start written by tests/support/fake_cryptdisks.py for the test suite.
# It never unlocks anything: "unlocking" makes /dev/mapper/NAME a symbolic
# link to the source device. It only runs inside a test namespace.
log=@LOG@
unlock=@UNLOCK@
if [ ! -e @MARKER@ ]; then
    echo "cryptdisks_start (fake): refusing to run outside a test namespace" >&2
    exit 2
fi
name=${1-}
printf 'start %s\n' "$name" >> "$log"
source=
if [ -n "$name" ] && [ -r /etc/crypttab ]; then
    while read -r target device rest; do
        case $target in ''|'#'*) continue ;; esac
        if [ "$target" = "$name" ]; then
            source=$device
            break
        fi
    done < /etc/crypttab
fi
if [ -z "$source" ]; then
    echo "cryptdisks_start (fake): $name not found in /etc/crypttab" >&2
    exit 1
fi
case $source in
    UUID=*) source=/dev/disk/by-uuid/${source#UUID=} ;;
    LABEL=*) source=/dev/disk/by-label/${source#LABEL=} ;;
    PARTUUID=*) source=/dev/disk/by-partuuid/${source#PARTUUID=} ;;
    PARTLABEL=*) source=/dev/disk/by-partlabel/${source#PARTLABEL=} ;;
esac
if [ ! -e "$source" ]; then
    echo "cryptdisks_start (fake): $name: source device $source not present" >&2
    exit 1
fi
if [ "$unlock" != 1 ]; then
    exit 0
fi
if [ -e "/dev/mapper/$name" ]; then
    echo "cryptdisks_start (fake): $name (started): already active"
    exit 0
fi
ln -s "$source" "/dev/mapper/$name"
'''
"""Template of the fake ``cryptdisks_start`` (see :func:`write_fake_cryptdisks`)."""

FAKE_CRYPTDISKS_STOP = r'''#!/bin/sh
# Fake cryptdisks_stop written by tests/support/fake_cryptdisks.py for the test suite.
# It removes the symbolic link made by the fake cryptdisks_start and always
# exits 0 (like the real one). It only runs inside a test namespace.
log=@LOG@
if [ ! -e @MARKER@ ]; then
    echo "cryptdisks_stop (fake): refusing to run outside a test namespace" >&2
    exit 2
fi
name=${1-}
printf 'stop %s\n' "$name" >> "$log"
if [ @LOCK@ = 1 ] && [ -n "$name" ] && [ -L "/dev/mapper/$name" ]; then
    rm -f "/dev/mapper/$name"
fi
exit 0
'''
"""Template of the fake ``cryptdisks_stop`` (see :func:`write_fake_cryptdisks`)."""


def write_fake_cryptdisks(bin_dir, log_file, unlock=True, lock=True):
    """
    Write fake ``cryptdisks_start`` and ``cryptdisks_stop`` programs.

    :param bin_dir: The directory to write them to (created when missing);
                    pass it in the `path` of :func:`namespace_command`.
    :param log_file: Every call appends ``start NAME`` or ``stop NAME`` to
                     this file (see :func:`read_cryptdisks_log`).
    :param unlock: :data:`True` (the default) to have ``cryptdisks_start``
                   create ``/dev/mapper/NAME`` as a symbolic link to the
                   source device of NAME's crypttab entry; :data:`False` to
                   have it exit 0 without creating anything (a disk that
                   "fails to unlock" without an error).
    :param lock: :data:`True` (the default) to have ``cryptdisks_stop``
                 remove that link; :data:`False` to have it exit 0 and leave
                 the disk unlocked (as the real one does when the device is
                 busy).
    :returns: A tuple with the pathnames of the two programs.

    The fake ``cryptdisks_start NAME`` reads ``/etc/crypttab`` (in the
    namespace) and exits 1 when NAME has no entry or its source device
    (``UUID=``/``LABEL=``/``PARTUUID=``/``PARTLABEL=`` map to
    ``/dev/disk/by-*``) doesn't exist, like Debian's. The fake
    ``cryptdisks_stop NAME`` removes the link and always exits 0. Both exit
    2 without doing anything outside a test namespace (when
    :data:`NAMESPACE_MARKER` is missing), so they can never create
    ``/dev/mapper`` entries on the host.
    """
    bin_dir = os.fspath(bin_dir)
    os.makedirs(bin_dir, exist_ok=True)
    replacements = {
        '@LOG@': shlex.quote(os.path.abspath(os.fspath(log_file))),
        '@UNLOCK@': '1' if unlock else '0',
        '@LOCK@': '1' if lock else '0',
        '@MARKER@': shlex.quote(NAMESPACE_MARKER),
    }
    programs = []
    for name, template in (('cryptdisks_start', FAKE_CRYPTDISKS_START), ('cryptdisks_stop', FAKE_CRYPTDISKS_STOP)):
        for placeholder, value in replacements.items():
            template = template.replace(placeholder, value)
        pathname = os.path.join(bin_dir, name)
        with open(pathname, 'w') as handle:
            handle.write(template)
        os.chmod(pathname, 0o755)
        programs.append(pathname)
    return tuple(programs)


def read_cryptdisks_log(log_file):
    """
    Read the calls recorded by the fake ``cryptdisks_*`` programs.

    :param log_file: The log file given to :func:`write_fake_cryptdisks`.
    :returns: A list of lines such as ``['start backups', 'stop backups']``
              (empty when the file doesn't exist, i.e. nothing was called).
    """
    try:
        with open(log_file) as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []
