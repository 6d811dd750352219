"""
Hard-link snapshots made by several ``cp --archive --link`` processes at once.

``cp --link`` spends its time in system calls, one directory entry after
another, on one processor. :func:`link_copy()` splits the tree at its second
level and lets up to :data:`MAX_WORKERS` cp processes (no more than the
destination has processors) link the parts at the same time: on two
processors a snapshot takes little more than half the time of one ``cp``.
The result is the one ``cp --archive --link`` gives: every file of the copy
is a hard link to the file in ``latest`` (so hard-link groups stay groups,
whichever process linked them), and every directory has the mode, owner,
xattrs, ACLs and times of its original.

It is one command in the destination's execution context: ``python3`` runs
:data:`LINK_COPY_SCRIPT`, which starts the cp processes. On a destination
without ``python3`` the same command runs one ``cp --archive --link``.

The copy is made under the name it is given (the snapshot's temporary name
beside ``latest``, which only the run's user can enter); the directories the
script makes itself (the top and the first level) are closed to others
(mode 0700) until the cp processes are done, and then get their own
attributes. It opens ``latest`` and its first level without following
symbolic links: a symbolic link there is linked as it is, like any file.
"""

from rsync_system_backup.snapshots.protection import PYTHON

MAX_WORKERS = 4
"""The most cp processes that link at the same time."""

DIRECTORY_CODE = r'''
import os, stat, sys
FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

def copy_attributes(original, made):
    # Give a directory this program made the owner, xattrs, ACLs, mode and times of its original (and no others).
    info = os.fstat(original)
    try:
        os.fchown(made, info.st_uid, info.st_gid)
    except PermissionError:
        pass
    wanted = os.listxattr(original)
    for name in os.listxattr(made):
        if name not in wanted:
            try:
                os.removexattr(made, name)
            except OSError:
                pass
    for name in wanted:
        try:
            os.setxattr(made, name, os.getxattr(original, name))
        except OSError:
            pass
    os.fchmod(made, stat.S_IMODE(info.st_mode))
    os.utime(made, ns=(info.st_atime_ns, info.st_mtime_ns))
'''
"""
Python code that the programs of this module and :mod:`.early_copy` share:
``copy_attributes(original, made)`` gives a directory (an open file
descriptor) the owner, xattrs, ACLs, mode and times of another, and takes
away the xattrs and ACLs that the other lacks (such as ACLs inherited from
a default ACL of the directory above).
"""

LINK_COPY_SCRIPT = DIRECTORY_CODE + r'''
import select, signal, subprocess

BATCH_BYTES = 65536

def make_batches(items, size):
    # Cut the names into batches of at most `size` names and BATCH_BYTES bytes of arguments.
    batches, batch, length = [], [], 0
    for item in items:
        needed = len(os.fsencode(item)) + 1
        if batch and (len(batch) >= size or length + needed > BATCH_BYTES):
            batches.append(batch)
            batch, length = [], 0
        batch.append(item)
        length += needed
    return batches + [batch] if batch else batches

def run_batches(target, batches, workers, watch):
    # Run cp for each batch, `workers` at a time; give True when every cp succeeded. With `watch`,
    # stop every cp and give False when standard input ends (the caller is gone or gave up).
    wakeup, alarm = os.pipe()
    os.set_blocking(alarm, False)
    signal.set_wakeup_fd(alarm)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    running, failed = {}, False
    while (batches and not failed) or running:
        while batches and not failed and len(running) < workers:
            process = subprocess.Popen(['cp', '--archive', '--link', '--parents', '--target-directory=' + target,
                                        '--'] + batches.pop(0))
            running[process.pid] = process
        for pid in list(running):
            if running[pid].poll() is not None:
                failed = running.pop(pid).returncode != 0 or failed
        if running and not (batches and not failed and len(running) < workers):
            ready = select.select([wakeup] + ([0] if watch else []), [], [])[0]
            if wakeup in ready:
                os.read(wakeup, 4096)
            if 0 in ready and not os.read(0, 4096):
                for process in running.values():
                    process.terminate()
                for process in running.values():
                    process.wait()
                return False
    return not failed

def link_copy(source, target, most, spare, watch):
    # Copy source to target with up to `most` cp processes, leaving `spare` processors to others.
    top = os.open(source, FLAGS)
    os.mkdir(target, 0o700)
    copy = os.open(target, FLAGS)
    items, levels = [], []
    for name in sorted(os.listdir(top)):
        if stat.S_ISDIR(os.lstat(name, dir_fd=top).st_mode):
            below = os.open(name, FLAGS, dir_fd=top)
            try:
                items.extend(name + '/' + entry for entry in sorted(os.listdir(below)))
            finally:
                os.close(below)
            os.mkdir(name, 0o700, dir_fd=copy)
            levels.append(name)
        else:
            items.append(name)
    workers = max(1, min(most, (os.cpu_count() or 1) - spare))
    os.fchdir(top)
    if not run_batches(target, make_batches(items, max(1, len(items) // (workers * 8))), workers, watch):
        return False
    for name in levels:
        original, made = os.open(name, FLAGS, dir_fd=top), os.open(name, FLAGS, dir_fd=copy)
        try:
            copy_attributes(original, made)
        finally:
            os.close(original)
            os.close(made)
    copy_attributes(top, copy)
    return True

try:
    copied = link_copy(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), int(sys.argv[3]),
                       int(sys.argv[4]), sys.argv[5] == 'watch')
except OSError as error:
    sys.stderr.write('Failed to copy %s to %s: %s\n' % (sys.argv[1], sys.argv[2], error))
    copied = False
sys.exit(0 if copied else 1)
'''
"""
The parallel copy as one Python program (run as ``python3 -c LINK_COPY_SCRIPT
LATEST TARGET MOST SPARE WATCH``). It creates TARGET and a directory in it
for every directory at the top of LATEST, lists the entries one level down
(and the files at the top), and hands them out in small batches (a limited
number of names and bytes) to up to MOST ``cp --archive --link --parents``
processes (and no more than the processors less SPARE, at least one) that
work from inside LATEST. When every batch is copied, the directories it made
get their attributes; when a cp fails, no more batches start and it exits
with 1 (cp's messages, such as "Too many links", are on standard error).
With WATCH ``watch`` it also stops its cp processes and exits with 1 as soon
as its standard input ends, so that it never outlives the run that started
it (over SSH too, where ending the connection ends its input).
"""

FALLBACK_SCRIPT = '''
if command -v python3 > /dev/null 2>&1; then
    exec %s -c "$0" "$@"
fi
exec cp --archive --link --no-target-directory -- "$1" "$2"
''' % ' '.join(PYTHON)
"""Shell code that runs :data:`LINK_COPY_SCRIPT` with ``python3``, or one ``cp --archive --link`` without it."""


def link_copy(context, directory, target, sudo=False, ionice=None, spare=0, asynchronous=False):
    """
    Make a hard-link copy of a directory with several cp processes (see the module documentation).

    :param context: The execution context of the directory.
    :param directory: The directory to copy (``latest``, a string).
    :param target: The pathname of the copy (a string; it must not exist).
    :param sudo: :data:`True` to copy with superuser privileges.
    :param ionice: The I/O scheduling class for the copy.
    :param spare: How many of the destination's processors to leave to
                  other work (an integer; one cp runs in any case).
    :param asynchronous: :data:`True` to start the copy and return at once.
                         The copy then reads its standard input from a pipe
                         and stops when that is closed (see :data:`LINK_COPY_SCRIPT`):
                         close ``command.subprocess.stdin`` once the copy is
                         done, or to stop it.
    :returns: The command (once finished: its ``returncode`` and, as bytes, its ``stderr``).
    """
    return context.execute('sh', '-c', FALLBACK_SCRIPT, LINK_COPY_SCRIPT, directory, target, str(MAX_WORKERS),
                           str(spare), 'watch' if asynchronous else 'wait', check=False, sudo=sudo, ionice=ionice,
                           shell=False, tty=False, capture_stderr=True, environment=dict(LC_ALL='C'),
                           asynchronous=asynchronous, input=True if asynchronous else None)
