"""
The protect step of a planned transfer, from this process's side.

:func:`protect()` turns a checked :class:`.TransferPlan` into the orders of
:mod:`.agent.protect` (deletions, names whose kind may change, names whose
inodes the apply may change, new hard links to unchanged entries) and runs
it on the destination: in this process for a local destination that needs
no ``sudo`` and no I/O scheduling class, otherwise as one command in the
destination's execution context (see :mod:`.agent.shipping`). Its answer
says which entries it couldn't prepare (the apply leaves them out) and which
deletions failed.
"""

import logging
import os

from rsync_system_backup.agent import protect as program
from rsync_system_backup.agent.shipping import PYTHON_OPTIONS, run_program
from rsync_system_backup.exceptions import SnapshotMethodError
from rsync_system_backup.processes.signals import cleanup
from rsync_system_backup.backup_set.operations import runs_in_process
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX

PYTHON = ('python3',) + PYTHON_OPTIONS
"""How the destination's programs run: ``python3``, isolated from the environment, without the site module."""

PROGRAM_MODULES = ('rsync_system_backup.agent.tree', 'rsync_system_backup.agent.kinds',
                   'rsync_system_backup.agent.protect')
"""The modules of the protect step's program, the program last."""

logger = logging.getLogger(__name__)


def has_python(context, sudo=False):
    """
    Check whether the destination can run the protect step.

    :param context: The destination's execution context.
    :param sudo: :data:`True` to check with superuser privileges.
    :returns: :data:`True` when ``python3`` runs there.
    """
    return context.execute(*(PYTHON + ('-c', 'pass')), check=False, sudo=sudo, shell=False, tty=False,
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
    if runs_in_process(context, sudo) and not ionice:
        exit_code, messages, answer = protect_here(directory, orders)
    else:
        command = run_program(context, "The safe-hardlink snapshot method", PROGRAM_MODULES,
                              [directory, PRIVATE_PREFIX], program.encode_orders(orders), sudo=sudo, ionice=ionice)
        exit_code, answer = command.returncode, command.stdout or b''
        messages = (command.stderr or b'').decode('utf-8', 'replace').splitlines()
    if exit_code not in (program.DONE, program.INCOMPLETE):
        problem = messages[-1].rstrip('.') if messages else "exit code %i" % exit_code
        raise SnapshotMethodError("Failed to protect the earlier snapshots from the transfer into %s (%s); nothing "
                                  "was transferred, and %s and the earlier snapshots are as they were."
                                  % (directory, problem, directory))
    for message in messages:
        logger.warning("%s", message)
    records = [record for record in answer.split(b'\0') if record]
    failed = [record[1:] for record in records if record.startswith(b'F')]
    undeleted = [record[1:] for record in records if record.startswith(b'U')]
    if failed:
        logger.warning("Leaving %i entry(s) of %s as they were (see the messages above); the backup goes on and "
                       "will be incomplete.", len(failed), directory)
    if undeleted:
        logger.warning("Failed to delete %i entry(s) from %s (see the messages above); they stay there and the "
                       "backup goes on.", len(undeleted), directory)
    return failed, undeleted


def protect_here(directory, orders):
    """
    Run the protect step in this process.

    :param directory: ``latest`` (a string).
    :param orders: An :class:`.agent.protect.Orders` object.
    :returns: A tuple of the exit code, the messages (strings) and the answer (bytes).

    The changes run as a :func:`.cleanup()`, so that a signal waits until they are done.
    """
    try:
        protection = program.Protection(os.fsencode(directory), os.fsencode(PRIVATE_PREFIX))
        exit_code = protection.run(orders, shield=cleanup)
    except program.Failure as failure:
        return failure.exit_code, [str(failure)], b''
    except OSError as error:
        return program.FAILED, ["%s: %s" % (directory, error)], b''
    return exit_code, protection.messages, protection.answer()
