"""
The protect step of a planned transfer, from this process's side.

:func:`protect()` turns a checked :class:`.TransferPlan` into the orders of
:mod:`.agent.protect` (deletions, names whose kind may change, names whose
inodes the apply may change, new hard links to unchanged entries) and runs
it on the destination (in this process, or as one command, see
:func:`.run_program()`). Its answer says which entries it couldn't prepare
(the apply leaves them out) and which deletions failed.
"""

import logging

from executor.contexts import LocalContext

from rsync_system_backup.agent import protect as program
from rsync_system_backup.agent.shipping import PYTHON_OPTIONS, run_program
from rsync_system_backup.exceptions import SnapshotMethodError
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX

PYTHON = ('python3',) + PYTHON_OPTIONS
"""How :func:`has_python()` runs the destination's ``python3``: as its programs run (see :mod:`.agent.shipping`)."""

PROGRAM_MODULES = ('rsync_system_backup.agent.tree', 'rsync_system_backup.agent.kinds',
                   'rsync_system_backup.agent.protect')
"""The modules of the protect step's program, the program last."""

logger = logging.getLogger(__name__)


def has_python(context, sudo=False):
    """
    Check whether the destination can run the programs of the safe-hardlink method.

    :param context: The destination's execution context.
    :param sudo: :data:`True` to check with superuser privileges.
    :returns: :data:`True` when ``python3`` runs there. A local destination
              needs no command to find out: its programs run in this
              process or with this process's interpreter (see
              :mod:`.agent.shipping`).
    """
    if isinstance(context, LocalContext):
        return True
    return context.execute(*(PYTHON + ('--version',)), check=False, sudo=sudo, shell=False, tty=False,
                           silent=True).succeeded


def build_orders(plan):
    """
    Turn a checked plan into the protect step's orders.

    :param plan: A :class:`.TransferPlan` (see :meth:`.TransferPlan.check_names()`).
    :returns: An :class:`.agent.protect.Orders` object: the plan's
              deletions, every entry the apply transfers with its kind, and
              the new hard links to entries that the transfer leaves alone.
    """
    orders = program.Orders()
    orders.deletions = sorted(plan.deletions)
    orders.kinds = dict(plan.entries)
    orders.links = sorted(plan.links.items())
    return orders


def protect(context, directory, plan, sudo=False, ionice=None):
    """
    Prepare ``latest`` for the apply (see :mod:`.agent.protect`).

    :param context: The destination's execution context.
    :param directory: ``latest`` (a string).
    :param plan: A checked :class:`.TransferPlan`.
    :param sudo: :data:`True` to work with superuser privileges.
    :param ionice: The I/O scheduling class for the copies.
    :returns: A tuple of two lists of names (bytes): the entries that the
              apply must leave out, and the planned deletions that failed
              (their entries stay in ``latest``); either makes the run
              incomplete, as after rsync's exit code 23.
    :raises: :exc:`.SnapshotMethodError` when the step fails; ``latest`` is
             as it was then, and the earlier snapshots are intact.
    """
    orders = build_orders(plan)
    if not (orders.deletions or orders.kinds or orders.links):
        return [], []
    finished = run_program(context, "The safe-hardlink snapshot method", PROGRAM_MODULES, [directory, PRIVATE_PREFIX],
                           program.encode_orders(orders), sudo=sudo, ionice=ionice)
    if finished.returncode not in (program.DONE, program.INCOMPLETE):
        raise SnapshotMethodError("Failed to protect the earlier snapshots from the transfer into %s (%s); nothing "
                                  "was transferred, and %s and the earlier snapshots are as they were."
                                  % (directory, finished.problem.rstrip('.'), directory))
    for message in finished.messages:
        logger.warning("%s", message)
    records = [record for record in finished.stdout.split(b'\0') if record]
    failed = [record[1:] for record in records if record.startswith(b'F')]
    undeleted = [record[1:] for record in records if record.startswith(b'U')]
    if failed:
        logger.warning("Leaving %i entry(s) of %s as they were (see the messages above); the backup goes on and "
                       "will be incomplete.", len(failed), directory)
    if undeleted:
        logger.warning("Failed to delete %i entry(s) from %s (see the messages above); they stay there and the "
                       "backup goes on.", len(undeleted), directory)
    return failed, undeleted
