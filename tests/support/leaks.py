"""
Leak checks: nothing that a test namespace made (loop devices, mounts, scratch directories) may outlive it on the host.

:func:`host_state()` captures what a namespace must never change (compared
before and after every test by ``conftest.py``); :func:`leak_check()` and
:func:`assert_no_leaks()` find loop devices and mounts left behind by a
test and clean them up.
"""

import contextlib
import glob
import os
import subprocess
import time

from support.namespaces import NAMESPACE_MARKER

DEFAULT_LEAK_TIMEOUT = 10.0
"""How many seconds :func:`assert_no_leaks` waits for the kernel to release loop devices and mounts."""


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
