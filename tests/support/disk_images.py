"""
Disk images for the tests: ext4 filesystems in sparse files, read without mounting them (``debugfs``).

Everything here needs e2fsprogs (``mkfs.ext4``, ``debugfs``); nothing needs root or a loop device.
"""

import os
import subprocess


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
