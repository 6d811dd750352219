"""
The protect step of a planned transfer: private copies of what the transfer will touch.

A snapshot made with hard links shares its files' inodes with ``latest``;
rsync changes a file's mode, owner, times, xattrs and ACLs on the inode
itself, and so in every snapshot that shares it. Before the apply (see
:mod:`.transfer.plan`), :func:`protect()` gives every planned entry of
``latest`` that shares its inode a new inode of its own: a copy with the
same content and attributes, renamed over the old name. The snapshots keep
the old inode, unchanged. The same step carries out the plan's deletions
(removing a name never changes an inode).

It is one command in the destination's execution context (so one command
over the shared SSH connection for remote destinations): ``python3`` runs
:data:`PROTECT_SCRIPT` with the plan on standard input.

Everything happens below file descriptors opened one directory at a time
without following symbolic links, so a symbolic link inside ``latest`` (which
belongs to whoever owns the backed-up files) can't lead anywhere else. The
copies are made in a private directory beside ``latest`` (see
:mod:`.private_directory`: a random name, mode 0700, created without following
anything; a run that dies leaves it to the next run to remove) and renamed
into place, so a name is never missing and no predictable name is written.
"""

import logging

from rsync_system_backup.exceptions import SnapshotMethodError
from rsync_system_backup.target.private_directory import PRIVATE_PREFIX

PYTHON = ('python3', '-I', '-S')
"""How the protect script's interpreter runs: isolated from the environment, without the site module."""

logger = logging.getLogger(__name__)

PROTECT_SCRIPT = r'''
import os, shutil, stat, subprocess, sys, tempfile
latest, prefix = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
records = [r for r in sys.stdin.buffer.read().split(b'\0') if r]
tagged = dict((tag, set(r[1:] for r in records if r[:1] == tag)) for tag in (b'D', b'C', b'L'))
root = os.open(latest, FLAGS)
directories = {b'': root}

def locate(path):
    """Give (directory fd, name) for a path below latest, or None when a component is missing or not a directory."""
    parts = path.split(b'/')
    if not path or path.startswith(b'/') or b'..' in parts or b'' in parts:
        return None
    head = b'/'.join(parts[:-1])
    if head not in directories:
        if len(directories) > 200:
            for number in directories.values():
                if number is not None and number != root:
                    os.close(number)
            directories.clear()
            directories[b''] = root
        fd, built = root, b''
        for part in parts[:-1]:
            built = built + b'/' + part if built else part
            if built not in directories:
                try:
                    directories[built] = os.open(part, FLAGS, dir_fd=fd)
                except OSError:
                    directories[built] = None
            fd = directories[built]
            if fd is None:
                directories[head] = None
                break
    fd = directories[head]
    return None if fd is None else (fd, parts[-1])

def lstat(path):
    where = locate(path)
    if where is None:
        return None, None
    try:
        return where, os.lstat(where[1], dir_fd=where[0])
    except OSError:
        return None, None

def copy_data(source, target, size):
    offset = 0
    while offset < size:
        try:
            start = os.lseek(source, offset, os.SEEK_DATA)
            end = os.lseek(source, start, os.SEEK_HOLE)
        except OSError as error:
            if error.errno == 6:   # ENXIO: only a hole is left
                break
            start, end = offset, size
        while start < end:
            chunk = os.pread(source, min(end - start, 1 << 20), start)
            if not chunk:
                break
            os.pwrite(target, chunk, start)
            start += len(chunk)
        offset = max(end, offset + 1)
    os.ftruncate(target, size)

def set_owner(function, target, info, **options):
    """Give a copy the owner of the original (a user without root may only keep their own)."""
    try:
        function(target, info.st_uid, info.st_gid, **options)
    except PermissionError:
        pass

def copy_entry(where, info, private, name):
    """Copy one entry (not a directory) into the private directory, with its content and attributes."""
    fd, entry = where
    times = (info.st_atime_ns, info.st_mtime_ns)
    if stat.S_ISREG(info.st_mode):
        source = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=fd)
        try:
            if os.fstat(source).st_ino != info.st_ino:
                raise OSError("%r changed while it was copied" % entry)
            target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=private)
            try:
                copy_data(source, target, info.st_size)
                set_owner(os.fchown, target, info)
                os.fchmod(target, stat.S_IMODE(info.st_mode))
                for attribute in os.listxattr(source):
                    try:
                        os.setxattr(target, attribute, os.getxattr(source, attribute))
                    except OSError:
                        pass
                os.utime(target, ns=times)
            finally:
                os.close(target)
        finally:
            os.close(source)
        return
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(entry, dir_fd=fd), name, dir_fd=private)
    else:
        os.mknod(name, info.st_mode, info.st_rdev, dir_fd=private)
    set_owner(os.chown, name, info, dir_fd=private, follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(name, stat.S_IMODE(info.st_mode), dir_fd=private)
    os.utime(name, ns=times, dir_fd=private, follow_symlinks=False)

undeleted = []
for path in sorted(tagged[b'D'], key=lambda p: (p.count(b'/'), p), reverse=True):
    where, info = lstat(path)
    if info is None:
        continue
    try:
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(where[1], dir_fd=where[0])
        else:
            os.unlink(where[1], dir_fd=where[0])
    except OSError as error:
        sys.stderr.write('Failed to delete %r from %s: %s\n' % (path, sys.argv[1], error.strerror))
        undeleted.append(path)

groups = {}
for path in tagged[b'C'] | tagged[b'L']:
    where, info = lstat(path)
    if info is not None and not stat.S_ISDIR(info.st_mode):
        groups.setdefault((info.st_dev, info.st_ino), (info, []))[1].append(path)
shared = [(key, info, paths) for key, (info, paths) in groups.items() if info.st_nlink > len(paths)]
# A hard link's leader may be unchanged: its other paths in latest aren't in the plan then, so find them.
searched = set(key for key, info, paths in shared if tagged[b'L'].intersection(paths) - tagged[b'C'])
extra = set()
if searched:
    os.fchdir(root)
    found = subprocess.run(['find', '.', '-xdev', '!', '-type', 'd', '-links', '+1', '-printf', '%D %i %P\\0'],
                           stdout=subprocess.PIPE, check=True).stdout
    for record in found.split(b'\0'):
        if record:
            device, inode, path = record.split(b' ', 2)
            key = (int(device), int(inode))
            if key in searched and path not in groups[key][1]:
                groups[key][1].append(path)
                extra.add(path)
if shared:
    private_path = tempfile.mkdtemp(prefix=prefix, dir=os.path.dirname(latest.rstrip(b'/')) or b'.')
    private = os.open(private_path, FLAGS)
    try:
        for key, info, paths in shared:
            # Every path gets an inode of its own; the apply (rsync -H) links those that the source links.
            for path in paths:
                where, current = lstat(path)
                if current is None or (current.st_dev, current.st_ino) != key:
                    continue
                copy_entry(where, current, private, b'copy')
                os.rename(b'copy', where[1], src_dir_fd=private, dst_dir_fd=where[0])
    finally:
        os.close(private)
        shutil.rmtree(private_path, ignore_errors=True)
sys.stdout.buffer.write(b''.join(tag + path + b'\0' for tag, paths in ((b'E', sorted(extra)), (b'U', undeleted))
                                 for path in paths))
sys.exit(3 if undeleted else 0)   # DELETIONS_FAILED
'''
"""
The protect step as one Python program (run as ``python3 -c PROTECT_SCRIPT
LATEST PREFIX``). Its standard input is the plan: NUL-terminated records,
each a tag byte and a path relative to ``latest``: ``D`` for a deletion,
``C`` for an entry the transfer creates or changes, ``L`` for the leader of
a hard link it makes. It carries out the deletions (deepest first), then
gives every planned entry that isn't a directory and shares its inode with a
path outside the plan (a snapshot, or an unlisted path of its hard-link
group) an inode of its own. The paths of ``latest`` it found that the plan
doesn't name (the other paths of an unchanged leader's group, found with one
``find``, which happens only when a new hard link joins an existing group)
go to standard output for the apply to transfer as well, each tagged ``E``,
and so do the planned deletions that failed (an immutable file, say), each
tagged ``U``; then it exits with :data:`DELETIONS_FAILED` if one did.
"""

DELETIONS_FAILED = 3
"""The exit code of :data:`PROTECT_SCRIPT` when it did everything but some planned deletions."""


def has_python(context, sudo=False):
    """
    Check whether the destination can run the protect step.

    :param context: The destination's execution context.
    :param sudo: :data:`True` to check with superuser privileges.
    :returns: :data:`True` when ``python3`` runs there.
    """
    return context.execute(*(PYTHON + ('-c', 'pass')), check=False, sudo=sudo, shell=False, tty=False,
                           silent=True).succeeded


def plan_records(plan):
    """
    Encode a plan as :data:`PROTECT_SCRIPT` reads it.

    :param plan: A :class:`.TransferPlan`.
    :returns: Bytes.
    """
    parts = ((b'D', plan.deletions), (b'C', plan.changed), (b'L', plan.leaders))
    return b''.join(tag + name + b'\0' for tag, names in parts for name in sorted(names))


def protect(context, directory, plan, sudo=False, ionice=None):
    """
    Carry out a plan's deletions and give what it touches private inodes (see the module documentation).

    :param context: The destination's execution context.
    :param directory: ``latest`` (a string).
    :param plan: A :class:`.TransferPlan`.
    :param sudo: :data:`True` to work with superuser privileges.
    :param ionice: The I/O scheduling class for the copies.
    :returns: A tuple of two lists of names (bytes): more names that the
              apply must transfer, and the planned deletions that failed
              (their entries stay in ``latest``, so the run is incomplete,
              as after rsync's exit code 23).
    :raises: :exc:`.SnapshotMethodError` when the step fails; nothing has
             been transferred then (some planned deletions may have been
             carried out), and the earlier snapshots are intact.
    """
    if not (plan.deletions or plan.changed or plan.leaders):
        return [], []
    command = context.execute(*(PYTHON + ('-c', PROTECT_SCRIPT, directory, PRIVATE_PREFIX)), input=plan_records(plan),
                              capture=True, check=False, sudo=sudo, ionice=ionice, shell=False, tty=False)
    if command.returncode not in (0, DELETIONS_FAILED):
        raise SnapshotMethodError("Failed to give the files in %s that the transfer changes copies of their own "
                                  "(exit code %i, see the message above); nothing was transferred (planned "
                                  "deletions may have been carried out already) and the earlier snapshots are "
                                  "intact." % (directory, command.returncode))
    records = [record for record in command.stdout.split(b'\0') if record]
    undeleted = [record[1:] for record in records if record.startswith(b'U')]
    if undeleted:
        logger.warning("Failed to delete %i entry(s) from %s (see the messages above); they stay there and the "
                       "backup goes on.", len(undeleted), directory)
    return [record[1:] for record in records if record.startswith(b'E')], undeleted
