"""
A hard-link copy of ``latest`` made by several ``cp --archive --link`` processes at once, on the destination's side.

``cp --link`` spends its time in system calls, one directory entry after
another, on one processor. :func:`link_copy()` creates the copy's top
directory and a directory in it for every directory at the top of
``latest`` (closed to others, mode 0700), lists the entries one level down
(and the files at the top), and hands them out in small batches (see
:func:`make_batches()`) to ``cp --archive --link --parents`` processes that
work from inside ``latest`` (entered by its open file descriptor, so
nothing can swap it for another directory), as many at a time as it is told and as the
destination has processors to spare. When every batch is copied, the
directories it made get the owner, xattrs (ACLs among them), mode and times
of their originals. The result is the one ``cp --archive --link`` gives:
every file a hard link to its inode in ``latest`` (so hard-link groups stay
groups, whichever process linked them).

It opens ``latest`` and its first level without following symbolic links: a
symbolic link there is linked as it is, like any file. When a cp fails, no
more batches start and the copy fails (cp's messages, such as "Too many
links", in English whatever the locale, go where the program's messages go).

The program runs beside the work of the process that started it (see
:func:`.start_program()`), in a process of its own or in a thread of that
process, and never outlives it: it stops its cp processes and fails as soon
as its standard input ends, which happens when that process closes it, or
dies, or its SSH connection does. It changes neither the working directory
nor the environment of the process it runs in.
"""

import io
import os
import select
import stat
import subprocess
import threading

from rsync_system_backup.agent.tree import DIRECTORY_FLAGS, copy_directory_attributes, list_names

BATCH_BYTES = 65536
"""The most bytes of names that one cp gets."""

BATCHES_PER_WORKER = 2
"""
How many batches each cp process gets on average, so that the processes
finish at about the same time; a single cp process gets everything in as few
batches as :data:`BATCH_BYTES` allows. Each batch costs a cp process of its
own: two cp processes on 10,000 files copied in 33 ms with 2 batches each
against 48 ms with 8 (and 283 ms against 299 ms on 100,000 files).
"""


def make_batches(items, size):
    """
    Cut names into batches.

    :param items: The names (bytes).
    :param size: The most names in a batch.
    :returns: A list of lists of names, each with at most :data:`BATCH_BYTES` bytes of names (a NUL byte each).
    """
    batches, batch, length = [], [], 0
    for item in items:
        needed = len(item) + 1
        if batch and (len(batch) >= size or length + needed > BATCH_BYTES):
            batches.append(batch)
            batch, length = [], 0
        batch.append(item)
        length += needed
    return batches + [batch] if batch else batches


def start_cp(target, batch, alarm, top, messages):
    """
    Start a cp process for a batch, and a thread that says when it ends.

    :param target: The copy's absolute pathname (a string).
    :param batch: Names relative to ``latest`` (bytes).
    :param alarm: The writing end of a pipe: the thread writes a byte there when cp ends.
    :param top: The open directory ``latest``, cp's working directory.
    :param messages: The file descriptor for cp's messages, or :data:`None` for this process's standard error.
    :returns: A tuple of the :class:`subprocess.Popen` object and the thread.
    """
    process = subprocess.Popen(['cp', '--archive', '--link', '--parents', '--target-directory=' + target, '--'] +
                               batch, cwd='/proc/self/fd/%i' % top, stderr=messages,
                               env=dict(os.environ, LC_ALL='C'))
    watcher = threading.Thread(target=report_exit, args=(process, alarm), daemon=True)
    watcher.start()
    return process, watcher


def report_exit(process, alarm):
    """
    Wait for a process and write a byte to a pipe when it ends (in a thread of its own).

    :param process: A :class:`subprocess.Popen` object.
    :param alarm: The writing end of the pipe.
    """
    process.wait()
    os.write(alarm, b'.')


def run_batches(target, batches, workers, watched, top, messages):
    """
    Run cp for each batch, `workers` at a time.

    :param target: The copy's absolute pathname (a string).
    :param batches: What :func:`make_batches()` gave.
    :param workers: How many cp processes run at most.
    :param watched: A file descriptor (standard input) whose end stops every cp.
    :param top: See :func:`start_cp()`.
    :param messages: See :func:`start_cp()`.
    :returns: :data:`True` when every cp succeeded, :data:`False` after a
              failed one (no more start) or when `watched` ended.

    Whatever ends it (a signal too), no cp outlives it.
    """
    wakeup, alarm = os.pipe()
    running, watchers, failed = [], [], False
    try:
        while running or (batches and not failed):
            while batches and not failed and len(running) < workers:
                process, watcher = start_cp(target, batches.pop(0), alarm, top, messages)
                running.append(process)
                watchers.append(watcher)
            ready = select.select([wakeup, watched], [], [])[0]
            if watched in ready and not os.read(watched, 4096):
                return False
            if wakeup in ready:
                os.read(wakeup, 4096)
            for process in [process for process in running if process.poll() is not None]:
                running.remove(process)
                failed = failed or process.returncode != 0
        return not failed
    finally:
        for process in running:
            process.terminate()
        for watcher in watchers:
            watcher.join()
        os.close(wakeup)
        os.close(alarm)


def link_copy(source, target, most, spare, watched, messages=None):
    """
    Copy a directory with hard links, with up to `most` cp processes at once (see the module documentation).

    :param source: The directory's absolute pathname (``latest``, a string).
    :param target: The copy's absolute pathname (a string; it must not exist).
    :param most: The most cp processes at once.
    :param spare: How many of the processors to leave to other work (one cp runs in any case).
    :param watched: See :func:`run_batches()`.
    :param messages: See :func:`start_cp()`.
    :returns: :data:`True` when the copy is complete.
    :raises: :exc:`OSError` when ``latest`` can't be read or the copy can't be created.
    """
    top = os.open(source, DIRECTORY_FLAGS)
    try:
        os.mkdir(target, 0o700)
        copy = os.open(target, DIRECTORY_FLAGS)
        try:
            items, levels = [], []
            for name in sorted(list_names(top)):
                if stat.S_ISDIR(os.lstat(name, dir_fd=top).st_mode):
                    below = os.open(name, DIRECTORY_FLAGS, dir_fd=top)
                    try:
                        items.extend(name + b'/' + entry for entry in sorted(list_names(below)))
                    finally:
                        os.close(below)
                    os.mkdir(name, 0o700, dir_fd=copy)
                    levels.append(name)
                else:
                    items.append(name)
            workers = max(1, min(most, (os.cpu_count() or 1) - spare))
            size = len(items) if workers == 1 else len(items) // (workers * BATCHES_PER_WORKER)
            if not run_batches(target, make_batches(items, max(1, size)), workers, watched, top, messages):
                return False
            for name in levels:
                copy_level_attributes(top, copy, name)
            copy_directory_attributes(top, copy)
            return True
        finally:
            os.close(copy)
    finally:
        os.close(top)


def copy_level_attributes(top, copy, name):
    """
    Give a directory at the top of the copy the attributes of its original.

    :param top: The open top directory of ``latest``.
    :param copy: The open top directory of the copy.
    :param name: The directory's name (bytes).
    """
    original = os.open(name, DIRECTORY_FLAGS, dir_fd=top)
    try:
        made = os.open(name, DIRECTORY_FLAGS, dir_fd=copy)
        try:
            copy_directory_attributes(original, made)
        finally:
            os.close(made)
    finally:
        os.close(original)


def main(arguments, stdin, stdout, stderr, shield):
    """
    Run as a program: ``link_copy LATEST TARGET MOST SPARE``.

    :param arguments: The command line's arguments (strings).
    :param stdin: Watched: its end stops the copy (a binary stream with a file descriptor).
    :param stdout: Unused (the program answers with its exit code).
    :param stderr: For a message (a text stream; cp writes its own
                   messages to its file descriptor, or to the process's
                   standard error when it has none).
    :param shield: Unused: a copy that is stopped halfway is removed by the caller.
    :returns: The exit code: 0 when the copy is complete, 1 otherwise.
    """
    source, target = arguments[0], arguments[1]
    try:
        messages = stderr.fileno()
    except (AttributeError, io.UnsupportedOperation):
        messages = None
    stderr.flush()
    try:
        copied = link_copy(os.path.abspath(source), os.path.abspath(target), int(arguments[2]), int(arguments[3]),
                           stdin.fileno(), messages)
    except OSError as error:
        stderr.write("Failed to copy %s to %s: %s\n" % (source, target, error))
        return 1
    return 0 if copied else 1
