# Test infrastructure: private mount namespaces with test versions of /etc/fstab and /etc/crypttab.

"""
Run commands in a private mount namespace with test ``/etc/fstab`` and ``/etc/crypttab``.

The tests of ``--crypto`` and ``--mount`` need a system whose ``/etc/fstab``
and ``/etc/crypttab`` name throw-away disk images, but they must never touch
the host's real files. :func:`namespace_command` therefore wraps a command
in ``unshare --mount --propagation private sh -c SCRIPT``, where the script
gives the new mount namespace private copies of what the tests change:

``/etc``
    An overlay (lower: the real ``/etc``, upper: a tmpfs). The test fstab and
    crypttab are written into it; in the namespace, a file that isn't given
    does not exist. Nothing reaches the host's ``/etc``. (A bind mount over
    ``/etc/crypttab`` alone is impossible when the host has no such file.)

``/dev/mapper`` and ``/dev/disk``
    Empty tmpfs mounts. ``/dev`` is a devtmpfs shared with the host, so a
    ``mkdir`` there would leak: when the host lacks either directory (as on
    the machines this project is tested on), ``/dev`` becomes an overlay as
    well and the missing ones are created in its upper layer first. Loop
    devices that the kernel creates later still show up (they appear in the
    lower layer). The fake ``cryptdisks_start`` of :func:`write_fake_cryptdisks`
    puts its symbolic links in ``/dev/mapper``; tests put the links that udev
    would make (``/dev/disk/by-uuid/...``) in ``/dev/disk``.

``/run/mount``
    An empty tmpfs, because libmount records userspace mount options in
    ``/run/mount/utab`` *even inside a private mount namespace*, which would
    otherwise write to the host. When the host has no ``/run/mount``, ``/run``
    is "shadowed": a tmpfs holding bind mounts of every entry of the real
    ``/run`` plus an empty ``mount`` directory is moved over it. (An overlay
    would do here too, except that a Unix socket can't be connected through
    an overlay.)

Mounts under the overlaid directories (``/dev/pts``, ``/dev/shm``, ...) are
moved on top of the overlay, and Unix sockets directly in an overlaid
directory (``/dev/log``) are bind mounted from the real one, so both keep
working. Mount point paths containing whitespace are not supported there.

The scratch tmpfs that holds the overlays' upper layers lives on a temporary
directory only until the overlays are mounted: it is then detached (the
overlays keep it alive) and the directory removed, so a namespace leaves
nothing behind on the host. The namespace, and with it every mount made in
it, disappears when its last process exits; a loop device attached by
``mount -o loop`` has the auto-clear flag and detaches itself at that moment.
:func:`assert_no_leaks` checks that this really happened.

Example::

    image = make_ext4_image(tmp_path / 'disk.img')
    mount_point = tmp_path / 'mnt'
    mount_point.mkdir()
    fstab = '%s %s ext4 loop,noauto 0 0\\n' % (image, mount_point)
    with leak_check([image], [tmp_path]):
        argv = namespace_commands(
            [['mount', str(mount_point)], mount_probe(mount_point)],
            fstab=fstab,
        )
        result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == 'MOUNTED %s' % mount_point

Everything here needs root, ``unshare`` (util-linux) and overlayfs; the
image helpers also need e2fsprogs (``mkfs.ext4``, ``debugfs``).
"""

import contextlib
import glob
import os
import shlex
import subprocess
import time

NAMESPACE_MARKER = '/etc/rsb-test-namespace'
"""
A file that exists only inside namespaces made by :func:`namespace_command`.

It lives in the overlay on ``/etc``, so it never exists on the host. The fake
``cryptdisks_*`` programs refuse to run without it.
"""

UNSHARE_COMMAND = ['unshare', '--mount', '--propagation', 'private']
"""The command line prefix that creates the private mount namespace."""

DEFAULT_LEAK_TIMEOUT = 10.0
"""How many seconds :func:`assert_no_leaks` waits for the kernel to release loop devices and mounts."""

SETUP_SCRIPT = r'''
set -eu
# Every mount/umount here uses -n: libmount would otherwise create the host's
# /run/mount/utab.lock (and /run/mount itself) before /run/mount is private.
rsb_scratch=$(mktemp -d "${TMPDIR:-/tmp}/rsb-namespace.$$.XXXXXX")
trap 'cd /; umount -n -l "$rsb_scratch" 2>/dev/null || :; rmdir "$rsb_scratch" 2>/dev/null || :' EXIT
mount -n -t tmpfs -o mode=0700 rsb-namespace "$rsb_scratch"

# rsb_submounts DIR: print the outermost mount points below DIR (one a line).
rsb_submounts() {
    awk -v dir="$1/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -u |
        awk 'outer == "" || index($0, outer "/") != 1 { print; outer = $0 }'
}

# rsb_overlay DIR NAME: turn DIR into an overlay whose upper layer lives in the
# scratch tmpfs; mounts below DIR and Unix sockets directly in DIR keep working.
rsb_overlay() {
    rsb_work=$rsb_scratch/$2
    mkdir "$rsb_work" "$rsb_work/upper" "$rsb_work/work" "$rsb_work/real" "$rsb_work/moved"
    mount -n --bind "$1" "$rsb_work/real"
    rsb_count=0
    for rsb_path in $(rsb_submounts "$1"); do
        rsb_count=$((rsb_count + 1))
        mkdir "$rsb_work/moved/$rsb_count"
        printf '%s\n' "$rsb_path" > "$rsb_work/moved/$rsb_count.path"
        mount -n --move "$rsb_path" "$rsb_work/moved/$rsb_count"
    done
    mount -n -t overlay rsb-overlay -o "lowerdir=$1,upperdir=$rsb_work/upper,workdir=$rsb_work/work" "$1"
    rsb_index=0
    while [ "$rsb_index" -lt "$rsb_count" ]; do
        rsb_index=$((rsb_index + 1))
        mount -n --move "$rsb_work/moved/$rsb_index" "$(cat "$rsb_work/moved/$rsb_index.path")"
    done
    for rsb_path in "$rsb_work/real"/* "$rsb_work/real"/.[!.]* "$rsb_work/real"/..?*; do
        if [ -S "$rsb_path" ]; then
            mount -n --bind "$rsb_path" "$1/${rsb_path##*/}"
        fi
    done
}

# rsb_shadow DIR NEW: move a tmpfs over DIR that holds bind mounts of DIR's
# entries (symbolic links are copied) plus an empty directory DIR/NEW.
rsb_shadow() {
    rsb_work=$rsb_scratch/$2.shadow
    mkdir "$rsb_work"
    mount -n -t tmpfs -o "mode=$(stat -c %a "$1")" rsb-shadow "$rsb_work"
    chown "$(stat -c %u:%g "$1")" "$rsb_work"
    for rsb_path in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        rsb_name=${rsb_path##*/}
        if [ -L "$rsb_path" ]; then
            cp -P "$rsb_path" "$rsb_work/$rsb_name"
        elif [ -d "$rsb_path" ]; then
            mkdir "$rsb_work/$rsb_name"
            mount -n --rbind "$rsb_path" "$rsb_work/$rsb_name"
        elif [ -e "$rsb_path" ]; then
            : > "$rsb_work/$rsb_name"
            mount -n --bind "$rsb_path" "$rsb_work/$rsb_name"
        fi
    done
    mkdir -m 0755 "$rsb_work/$2"
    mount -n --move "$rsb_work" "$1"
}

rsb_overlay /etc etc
if [ ! -d /dev/mapper ] || [ ! -d /dev/disk ]; then
    rsb_overlay /dev dev
    mkdir -p -m 0755 /dev/mapper /dev/disk
fi
mount -n -t tmpfs -o mode=0755 rsb-mapper /dev/mapper
mount -n -t tmpfs -o mode=0755 rsb-disk /dev/disk
if [ ! -d /run/mount ]; then
    rsb_shadow /run mount
fi
mount -n -t tmpfs -o mode=0755 rsb-utab /run/mount

umount -n -l "$rsb_scratch"
rmdir "$rsb_scratch"
trap - EXIT
rm -f /etc/fstab /etc/crypttab
'''
"""
The part of the namespace script that prepares the mounts (see the module docstring).

All its ``mount``/``umount`` calls use ``-n``, so that libmount doesn't touch
the host's ``/run/mount`` before the namespace has a private one.
It runs with ``set -eu``: when a step fails, the script exits with a
non-zero status before the command under test runs. Its variables and
functions all start with ``rsb_``.
"""


def namespace_script(fstab=None, crypttab=None, path=()):
    """
    Generate the shell script that prepares a test namespace.

    :param fstab: The text of ``/etc/fstab`` in the namespace, or
                  :data:`None` for no ``/etc/fstab`` at all.
    :param crypttab: The text of ``/etc/crypttab`` in the namespace, or
                     :data:`None` for no ``/etc/crypttab`` at all.
    :param path: Directories to put in front of ``$PATH`` (e.g. the one
                 holding the fake ``cryptdisks_*`` programs), first one first.
    :returns: The script (a string) that prepares the mounts, writes the
              files, exports ``PATH`` and leaves ``set -e`` off, so that
              commands can follow it.
    """
    lines = [SETUP_SCRIPT.strip(), ': > %s' % shlex.quote(NAMESPACE_MARKER)]
    for filename, text in (('/etc/fstab', fstab), ('/etc/crypttab', crypttab)):
        if text is not None:
            lines.append('printf %%s %s > %s' % (shlex.quote(text), filename))
    directories = [os.fspath(directory) for directory in path]
    if directories:
        lines.append('PATH=%s:$PATH' % shlex.quote(':'.join(directories)))
    lines.append('export PATH')
    lines.append('set +eu')
    return '\n'.join(lines) + '\n'


def namespace_command(command, fstab=None, crypttab=None, path=()):
    """
    Build the command line that runs one command in a test namespace.

    :param command: The command to run: a list of arguments (strings or
                    path-like objects). It is passed as positional
                    arguments, so no quoting is involved.
    :param fstab: See :func:`namespace_script`.
    :param crypttab: See :func:`namespace_script`.
    :param path: See :func:`namespace_script`.
    :returns: A list of arguments for :mod:`subprocess`, of the form
              ``['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
              SCRIPT, 'sh', *command]``.

    The script ends with ``exec "$@"``, so the exit status is the command's
    (or non-zero when preparing the namespace failed, with a message on
    standard error). Standard input, output and error and the environment
    are passed through unchanged.
    """
    script = namespace_script(fstab=fstab, crypttab=crypttab, path=path) + 'exec "$@"\n'
    return UNSHARE_COMMAND + ['sh', '-c', script, 'sh'] + [os.fspath(argument) for argument in command]


def namespace_commands(commands, fstab=None, crypttab=None, path=()):
    """
    Build the command line that runs several commands in one test namespace.

    :param commands: A non-empty list of commands, run one after the other
                     whatever their exit status. Each is either a list of
                     arguments (quoted with :func:`shlex.quote`) or a string
                     of shell code (inserted as is, e.g. from
                     :func:`mount_probe`).
    :param fstab: See :func:`namespace_script`.
    :param crypttab: See :func:`namespace_script`.
    :param path: See :func:`namespace_script`.
    :returns: A list of arguments for :mod:`subprocess`.
    :raises: :exc:`ValueError` when `commands` is empty.

    The exit status is that of the *first* command (the command under
    test); the later ones are meant to be probes that look at the state of
    the namespace afterwards and print what they find, which lands on
    standard output after the first command's output.
    """
    if not commands:
        raise ValueError('At least one command is required!')
    lines = [namespace_script(fstab=fstab, crypttab=crypttab, path=path)]
    for index, command in enumerate(commands):
        if not isinstance(command, str):
            command = ' '.join(shlex.quote(os.fspath(argument)) for argument in command)
        lines.append(command)
        if index == 0:
            lines.append('rsb_status=$?')
    lines.append('exit $rsb_status')
    return UNSHARE_COMMAND + ['sh', '-c', '\n'.join(lines) + '\n']


def run_in_namespace(command, fstab=None, crypttab=None, path=(), probes=(), **options):
    """
    Run a command (and optionally probes) in a test namespace and capture its output.

    :param command: The command to run (a list of arguments).
    :param fstab: See :func:`namespace_script`.
    :param crypttab: See :func:`namespace_script`.
    :param path: See :func:`namespace_script`.
    :param probes: Commands to run after `command` in the same namespace
                   (see :func:`namespace_commands`).
    :param options: Passed on to :func:`subprocess.run` (e.g. ``env``,
                    ``timeout``). By default output is captured as text and
                    a timeout of 120 seconds applies.
    :returns: A :class:`subprocess.CompletedProcess` whose ``returncode`` is
              the exit status of `command`.
    """
    if probes:
        argv = namespace_commands([command] + list(probes), fstab=fstab, crypttab=crypttab, path=path)
    else:
        argv = namespace_command(command, fstab=fstab, crypttab=crypttab, path=path)
    options.setdefault('capture_output', True)
    options.setdefault('text', True)
    options.setdefault('timeout', 120)
    return subprocess.run(argv, check=False, **options)


def mount_probe(mount_point):
    """
    Shell code that reports whether a directory is a mount point.

    :param mount_point: The directory (a string or path-like object).
    :returns: Shell code (for :func:`namespace_commands`) that prints
              ``MOUNTED <mount_point>`` or ``NOT-MOUNTED <mount_point>``.
    """
    quoted = shlex.quote(os.fspath(mount_point))
    return 'if mountpoint -q %s; then echo MOUNTED %s; else echo NOT-MOUNTED %s; fi' % (quoted, quoted, quoted)


def mapper_probe(name):
    """
    Shell code that reports whether ``/dev/mapper/NAME`` exists (i.e. whether it is "unlocked").

    :param name: The crypttab target name.
    :returns: Shell code (for :func:`namespace_commands`) that prints
              ``UNLOCKED <name>`` or ``LOCKED <name>``.
    """
    quoted = shlex.quote(name)
    return 'if [ -e /dev/mapper/%s ]; then echo UNLOCKED %s; else echo LOCKED %s; fi' % (quoted, quoted, quoted)


FAKE_CRYPTDISKS_START = r'''#!/bin/sh
# Fake cryptdisks_start written by tests/support/namespaces.py for the test suite.
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
# Fake cryptdisks_stop written by tests/support/namespaces.py for the test suite.
# It removes the symbolic link made by the fake cryptdisks_start and always
# exits 0 (like the real one). It only runs inside a test namespace.
log=@LOG@
if [ ! -e @MARKER@ ]; then
    echo "cryptdisks_stop (fake): refusing to run outside a test namespace" >&2
    exit 2
fi
name=${1-}
printf 'stop %s\n' "$name" >> "$log"
if [ -n "$name" ] && [ -L "/dev/mapper/$name" ]; then
    rm -f "/dev/mapper/$name"
fi
exit 0
'''
"""Template of the fake ``cryptdisks_stop`` (see :func:`write_fake_cryptdisks`)."""


def write_fake_cryptdisks(bin_dir, log_file, unlock=True):
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


def make_ext4_image(path, size_mb=64, label=None, uuid=None, contents=None):
    """
    Create a disk image file holding an ext4 filesystem.

    :param path: The pathname of the image (overwritten when it exists).
    :param size_mb: The size of the image in MiB (it is a sparse file).
    :param label: The filesystem label (``mkfs.ext4 -L``), optional.
    :param uuid: The filesystem UUID (``mkfs.ext4 -U``), optional.
    :param contents: A directory whose tree becomes the filesystem's
                     contents (``mkfs.ext4 -d``), optional; without it the
                     filesystem is empty (apart from ``lost+found``).
    :returns: The pathname of the image (a string).

    No loop device is involved: ``mkfs.ext4 -F`` works on a regular file.
    """
    path = os.fspath(path)
    with open(path, 'wb') as handle:
        handle.truncate(size_mb * 1024 * 1024)
    command = ['mkfs.ext4', '-q', '-F']
    if label is not None:
        command += ['-L', label]
    if uuid is not None:
        command += ['-U', uuid]
    if contents is not None:
        command += ['-d', os.fspath(contents)]
    subprocess.run(command + [path], check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return path


def list_image(image, directory='/'):
    """
    List a directory inside an ext4 image without mounting it (``debugfs``).

    :param image: The pathname of the image (which should not be mounted).
    :param directory: The directory inside the image.
    :returns: A sorted list of names (without ``.`` and ``..``).
    :raises: :exc:`FileNotFoundError` when `directory` doesn't exist in the
             image, :exc:`subprocess.CalledProcessError` when debugfs fails.
    """
    output = _debugfs(image, 'ls -p %s' % _debugfs_quote(directory))
    names = []
    for line in output.decode('utf-8', 'surrogateescape').splitlines():
        # Format: /inode/mode/uid/gid/name/size/
        fields = line.split('/')
        if len(fields) >= 7 and fields[5] not in ('.', '..'):
            names.append(fields[5])
    return sorted(names)


def read_image_file(image, pathname):
    """
    Read a file inside an ext4 image without mounting it (``debugfs``).

    :param image: The pathname of the image (which should not be mounted).
    :param pathname: The pathname of the file inside the image.
    :returns: The contents of the file (bytes).
    :raises: :exc:`FileNotFoundError` when the file doesn't exist in the
             image, :exc:`subprocess.CalledProcessError` when debugfs fails.
    """
    return _debugfs(image, 'cat %s' % _debugfs_quote(pathname))


def _debugfs(image, request):
    """
    Run one ``debugfs`` request on an image (opened read-only).

    :param image: The pathname of the image.
    :param request: The debugfs request (``ls -p /``).
    :returns: Standard output (bytes).
    :raises: :exc:`FileNotFoundError` when debugfs complains on standard
             error (it exits 0 even when a file doesn't exist).
    """
    result = subprocess.run(
        ['debugfs', '-R', request, os.fspath(image)],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
    )
    complaints = [
        line for line in result.stderr.decode('utf-8', 'replace').splitlines()
        if line.strip() and not line.startswith('debugfs ')
    ]
    if complaints:
        raise FileNotFoundError('debugfs %r on %s: %s' % (request, image, ' '.join(complaints)))
    return result.stdout


def _debugfs_quote(pathname):
    """
    Quote a pathname for a debugfs request.

    :param pathname: The pathname (without double quotes).
    :returns: The pathname in double quotes.
    """
    pathname = os.fspath(pathname)
    if '"' in pathname:
        raise ValueError('Pathnames with double quotes are not supported: %r' % pathname)
    return '"%s"' % pathname


def read_bytes(pathname):
    """
    Read a file of the host, if it exists.

    :param pathname: The pathname of the file.
    :returns: Its contents (bytes), or :data:`None` when it doesn't exist.
    """
    try:
        with open(pathname, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def host_state():
    """
    Capture the parts of the host that a test namespace must never change.

    :returns: A dictionary to compare before and after a test: the contents
              of ``/etc/fstab`` and ``/etc/crypttab``, whether
              :data:`NAMESPACE_MARKER` and ``/run/mount`` exist, the names in
              ``/dev/mapper`` and ``/dev/disk`` (:data:`None` when missing)
              and :func:`leftover_scratch_directories()`.
    """
    return {
        'fstab': read_bytes('/etc/fstab'),
        'crypttab': read_bytes('/etc/crypttab'),
        'marker': os.path.exists(NAMESPACE_MARKER),
        'dev_mapper': sorted(os.listdir('/dev/mapper')) if os.path.isdir('/dev/mapper') else None,
        'dev_disk': sorted(os.listdir('/dev/disk')) if os.path.isdir('/dev/disk') else None,
        'run_mount': os.path.isdir('/run/mount'),
        'scratch': leftover_scratch_directories(),
    }


def leftover_scratch_directories():
    """
    Find the scratch directories that namespace scripts left behind in ``/tmp``.

    :returns: A sorted list of pathnames. The directory of a script that is
              still running (in this or in a concurrent test run) doesn't
              count: its name holds the script's process id.
    """
    leftovers = []
    for pathname in glob.glob('/tmp/rsb-namespace.*'):
        parts = os.path.basename(pathname).split('.')
        if not (len(parts) == 3 and parts[1].isdigit() and os.path.exists('/proc/' + parts[1])):
            leftovers.append(pathname)
    return sorted(leftovers)


def leaked_loop_devices(image_paths):
    """
    Find loop devices that still refer to any of the given image files.

    :param image_paths: Pathnames of image files (existing or not).
    :returns: A sorted list of ``(loop_device, backing_file)`` tuples.

    Both ``/sys/block/loop*/loop/backing_file`` (which still names a deleted
    file) and ``losetup -j`` (which compares device and inode numbers) are
    consulted.
    """
    wanted = {os.path.realpath(os.fspath(path)) for path in image_paths}
    found = set()
    for filename in glob.glob('/sys/block/loop*/loop/backing_file'):
        try:
            with open(filename) as handle:
                backing_file = handle.read().strip()
        except OSError:
            continue  # The loop device was detached in the meantime.
        if backing_file.endswith(' (deleted)'):
            backing_file = backing_file[:-len(' (deleted)')]
        if backing_file in wanted:
            device = '/dev/' + filename.split('/')[3]
            found.add((device, backing_file))
    for path in sorted(wanted):
        if not os.path.exists(path):
            continue
        result = subprocess.run(['losetup', '-j', path], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        for line in result.stdout.splitlines():
            device, _, _ = line.partition(':')
            if device:
                found.add((device, path))
    return sorted(found)


def leaked_mounts(directories, devices=()):
    """
    Find mounts in the caller's mount namespace that refer to the given directories or devices.

    :param directories: Directories (existing or not): a mount whose mount
                        point is one of them or lies below one counts.
    :param devices: Device pathnames (e.g. leaked loop devices): a mount of
                    one of them counts too.
    :returns: A list of ``(source, mount_point)`` tuples, deepest mount
              point first (the order in which to unmount them).
    """
    roots = [os.path.realpath(os.fspath(directory)) for directory in directories]
    devices = set(devices)
    found = []
    with open('/proc/self/mounts', 'rb') as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 2:
                continue
            source = _decode_mount_field(fields[0])
            mount_point = _decode_mount_field(fields[1])
            if source in devices or any(mount_point == root or mount_point.startswith(root.rstrip('/') + '/')
                                        for root in roots):
                found.append((source, mount_point))
    found.sort(key=lambda mount: mount[1].count('/'), reverse=True)
    return found


def _decode_mount_field(field):
    """
    Decode a field of ``/proc/self/mounts`` (where e.g. a space is written as ``\\040``).

    :param field: The raw field (bytes).
    :returns: The decoded field (a string).
    """
    decoded = bytearray()
    index = 0
    while index < len(field):
        chunk = field[index + 1:index + 4]
        if field[index:index + 1] == b'\\' and len(chunk) == 3 and all(c in b'01234567' for c in chunk):
            decoded.append(int(chunk, 8))
            index += 4
        else:
            decoded.append(field[index])
            index += 1
    return bytes(decoded).decode('utf-8', 'surrogateescape')


def cleanup_leaks(image_paths, directories=()):
    """
    Unmount and detach whatever :func:`leaked_mounts` and :func:`leaked_loop_devices` find.

    :param image_paths: See :func:`leaked_loop_devices`.
    :param directories: See :func:`leaked_mounts`.
    :returns: A list of strings describing what was found (and cleaned up).

    Mounts are lazily unmounted (deepest first), then loop devices detached.
    Failures are ignored: this is a last resort for a failing test.
    """
    loops = leaked_loop_devices(image_paths)
    mounts = leaked_mounts(directories, devices=[device for device, _ in loops])
    descriptions = ['mount of %s on %s' % mount for mount in mounts]
    descriptions += ['loop device %s on %s' % loop for loop in loops]
    for _, mount_point in mounts:
        subprocess.run(['umount', '-l', mount_point], stdin=subprocess.DEVNULL, capture_output=True)
    for device, _ in loops:
        subprocess.run(['losetup', '-d', device], stdin=subprocess.DEVNULL, capture_output=True)
    return descriptions


def assert_no_leaks(image_paths, directories=(), timeout=DEFAULT_LEAK_TIMEOUT):
    """
    Assert that no loop device or mount is left behind on the host.

    :param image_paths: Pathnames of the image files used by a test: no loop
                        device may still refer to them.
    :param directories: Test directories (e.g. pytest's ``tmp_path``): no
                        mount in the host's (i.e. the caller's) namespace may
                        be at or below them.
    :param timeout: How many seconds to wait for the kernel to finish
                    releasing things (loop devices detach asynchronously
                    once the last mount is gone).
    :raises: :exc:`AssertionError` listing the leaks. Before raising, the
             leaks are cleaned up (:func:`cleanup_leaks`), so one failing
             test doesn't break the next ones.
    """
    image_paths = list(image_paths)
    directories = list(directories)
    deadline = time.monotonic() + timeout
    while True:
        loops = leaked_loop_devices(image_paths)
        mounts = leaked_mounts(directories, devices=[device for device, _ in loops])
        if not loops and not mounts:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    descriptions = cleanup_leaks(image_paths, directories)
    raise AssertionError('Leaked after the test (now cleaned up): %s' % '; '.join(descriptions))


@contextlib.contextmanager
def leak_check(image_paths, directories=(), timeout=DEFAULT_LEAK_TIMEOUT):
    """
    Run a block of code, then check (and clean up) leaks with :func:`assert_no_leaks`.

    :param image_paths: See :func:`assert_no_leaks`.
    :param directories: See :func:`assert_no_leaks`.
    :param timeout: See :func:`assert_no_leaks`.

    When the block raises, leaks are cleaned up without hiding its exception.
    """
    try:
        yield
    except BaseException:
        cleanup_leaks(image_paths, directories)
        raise
    assert_no_leaks(image_paths, directories, timeout=timeout)
