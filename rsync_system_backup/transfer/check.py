"""
The check after a planned transfer: does ``latest`` hold what the plan said, name by name?

A planned transfer (see :mod:`.transfer.plan`) touches only the names of its
plan, so a mistake in reading or carrying out the plan would go unnoticed
by rsync. :func:`check_transfer()` looks at every name the transfer
carried out, in ``latest`` and in the source, and lists what differs: an
entry of another kind than the source's (a directory where the source has a
file, say), a deleted entry that is still there, a new hard link that isn't
one. It costs one look per planned name on each side (and one
command on a remote destination), so its cost grows with the changes, not
with the tree. The look on the destination's side is the program
:mod:`.agent.kinds` (in this process, or as one command, see
:func:`.run_program()`).
"""

import os

from rsync_system_backup.agent import kinds
from rsync_system_backup.agent.shipping import run_program
from rsync_system_backup.exceptions import SnapshotMethodError

PROGRAM_MODULES = ('rsync_system_backup.agent.tree', 'rsync_system_backup.agent.kinds')
"""The modules of the check's program on the destination, the program last."""

KIND_NAMES = {b'f': 'a file', b'd': 'a directory', b'L': 'a symbolic link', b'D': 'a device', b'S': 'a special file',
              b'-': 'nothing'}
"""How a message names each kind letter of :mod:`.agent.kinds`."""


def check_transfer(context, directory, plan, source, carried_out, sudo=False, ionice=None):
    """
    Check the names that a planned transfer carried out.

    :param context: The destination's execution context.
    :param directory: ``latest`` (a string).
    :param plan: The checked :class:`.TransferPlan`.
    :param source: The :class:`.SourceView` of the source.
    :param carried_out: The names that were transferred, linked or deleted
                        (a set of bytes; what was left out isn't checked).
    :param sudo: :data:`True` to look with superuser privileges.
    :param ionice: The I/O scheduling class to look with.
    :returns: A list of the differences found (strings), empty when there are none.

    An entry passes when ``latest`` has the kind that the plan saw, or that
    the source has now (it may change while the run goes on).
    """
    names = sorted(name for name in plan.entries if name in carried_out)
    deletions = sorted(name for name in plan.deletions if name in carried_out)
    links = sorted((name, leader) for name, leader in plan.links.items() if name in carried_out)
    if not (names or deletions or links):
        return []
    finished = run_program(context, "The check of a planned transfer", PROGRAM_MODULES, [directory],
                           kinds.encode_questions(names + deletions, links), sudo=sudo, ionice=ionice)
    answers = finished.stdout
    if finished.returncode != 0 or len(answers) != len(names) + len(deletions) + len(links):
        raise SnapshotMethodError("Failed to check %s after the transfer (exit code %i): %s"
                                  % (directory, finished.returncode, finished.problem))
    source.forget()
    problems = []
    for index, name in enumerate(names + deletions):
        answer, info = answers[index:index + 1], source.lstat(name)
        now = kinds.kind_of(None if info is source.UNSEARCHABLE else info)
        if answer not in ((plan.entries[name], now) if name in plan.entries else (b'-',)):
            problems.append("%r is %s in %s and %s in the source"
                            % (os.fsdecode(name), KIND_NAMES[answer], directory, KIND_NAMES[now]))
    for index, (name, leader) in enumerate(links, len(names) + len(deletions)):
        if answers[index:index + 1] != b'=':
            problems.append("%r isn't a hard link to %r in %s" % (os.fsdecode(name), os.fsdecode(leader), directory))
    return problems
