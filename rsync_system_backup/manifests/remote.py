"""
Running the manifests' program (see :mod:`.agent.manifests`) where the snapshots are.

:func:`run_agent()` runs one verb of it through :func:`.run_program()`: in
this process for a local destination that needs no ``sudo`` and no I/O
scheduling class, otherwise with the destination's ``python3``, as one
command. Either way its answer is JSON on standard output. So the destination
needs ``python3`` (any 3.x that runs this package) and nothing of this
package installed; without it the command fails with a message that says so.
"""

import json

from rsync_system_backup.agent.manifests import KNOWN_PROBLEM
from rsync_system_backup.agent.shipping import run_program
from rsync_system_backup.exceptions import RemoteCommandError, RsyncSystemBackupError

PROGRAM_MODULES = (
    'rsync_system_backup.manifests.format',
    'rsync_system_backup.manifests.scan',
    'rsync_system_backup.manifests.incremental',
    'rsync_system_backup.manifests.compare',
    'rsync_system_backup.backup_set.exclusive_sizes',
    'rsync_system_backup.agent.manifests',
)
"""The modules of the manifests' program, each after those it imports, the program last."""


class AgentFailedError(RsyncSystemBackupError):
    """Raised when the manifests' program reports a known problem (its message says which)."""


def run_agent(context, verb, *arguments, **options):
    """
    Run one verb of the manifests' program on the destination.

    :param context: The destination's execution context.
    :param verb: A verb of :data:`.agent.manifests.VERBS` (a string).
    :param arguments: Its arguments (strings).
    :param options: ``sudo`` (:data:`True` to run it with superuser
                    privileges), ``ionice`` (an I/O scheduling class or
                    :data:`None`), ``progress`` (:data:`True` to show
                    progress on standard error) and ``changes`` (what the
                    transfer changed, for ``build``: the bytes of
                    :func:`.encode_changes()`, given on standard input).
    :returns: The verb's result (a dict).
    :raises: :exc:`AgentFailedError` for the problems that the program knows,
             :exc:`.RemoteCommandError` when ``python3`` is missing or the program fails.
    """
    progress, changes = options.get('progress', False), options.get('changes')
    flags = ['--progress'] if progress else ['--changes'] if changes is not None else []
    finished = run_program(context, "Looking at the snapshots", PROGRAM_MODULES, [verb] + flags + list(arguments),
                           changes or b'', sudo=options.get('sudo', False), ionice=options.get('ionice'),
                           capture_stderr=not progress)
    if finished.returncode == KNOWN_PROBLEM:
        raise AgentFailedError(json.loads(finished.stdout)['error'])
    if finished.returncode != 0:
        raise RemoteCommandError("The manifests' program failed on the destination while running %s (%s)."
                                 % (verb, finished.problem if finished.messages else
                                    "exit code %i, see the messages above" % finished.returncode))
    return json.loads(finished.stdout)
