"""
Hard-link snapshots made by several ``cp --archive --link`` processes at once.

``cp --link`` spends its time in system calls, one directory entry after
another, on one processor. :func:`link_copy()` lets up to
:data:`MAX_WORKERS` cp processes (no more than the destination has
processors) link parts of the tree at the same time: on two processors a
snapshot takes little more than half the time of one ``cp``. The result is
the one ``cp --archive --link`` gives: every file of the copy is a hard link
to the file in ``latest``, and every directory has the mode, owner, xattrs,
ACLs and times of its original.

It is started through :func:`.start_program()`: the program
:mod:`.agent.link_copy`, which starts the cp processes, in a thread of this
process for a local destination that needs no ``sudo`` or ``ionice``,
otherwise as one command in the destination's execution context, or on a
destination without ``python3`` one ``cp --archive --link`` (see
:data:`WITHOUT_PYTHON`). The copy is made under the
name it is given (the snapshot's temporary name beside ``latest``, which
only the run's user can enter).
"""

from rsync_system_backup.agent.shipping import start_program

MAX_WORKERS = 4
"""The most cp processes that link at the same time."""

PROGRAM_MODULES = ('rsync_system_backup.agent.tree', 'rsync_system_backup.agent.link_copy')
"""The modules of the copy's program, the program last."""

WITHOUT_PYTHON = 'LC_ALL=C exec cp --archive --link --no-target-directory -- "$1" "$2"'
"""
Shell code that makes the copy without ``python3``: one ``cp --archive
--link`` of ``"$1"`` to ``"$2"``, whose messages are in English (the caller
looks for "Too many links").
"""


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
    :returns: The :class:`.Finished` copy (its ``returncode``, and cp's
              messages as bytes in its ``stderr``); with `asynchronous` the
              :class:`.StartedProgram`, which stops the copy when it is
              stopped, and gives that once it is waited for.
    """
    started = start_program(context, PROGRAM_MODULES, [directory, target, str(MAX_WORKERS), str(spare)],
                            WITHOUT_PYTHON, sudo=sudo, ionice=ionice)
    return started if asynchronous else started.wait()
