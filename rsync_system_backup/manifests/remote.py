"""
Running the manifests' program (see :mod:`.agent.manifests`) where the snapshots are.

:func:`run_agent()` runs one verb of it through :func:`.run_program()`: in
this process for a local destination that needs no ``sudo`` and no I/O
scheduling class, otherwise with the destination's ``python3``, as one
command; :class:`StartedAgent` starts one the same ways (see
:func:`.start_program()`) and gives it its input later. Either way its
answer is JSON on standard output. So the destination
needs ``python3`` (any 3.x that runs this package) and nothing of this
package installed; without it the command fails with a message that says so.
"""

import json

from rsync_system_backup.agent.manifests import KNOWN_PROBLEM
from rsync_system_backup.agent.shipping import EXIT_NOT_FOUND, MISSING_PYTHON, run_program, start_program
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

PURPOSE = "Looking at the snapshots"
"""What needs the program, for the message when ``python3`` is missing."""

NO_PYTHON = 'exit %i' % EXIT_NOT_FOUND
"""The shell code that a started program runs where there is no ``python3`` (see :func:`.start_program()`)."""


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
                    progress on standard error) and ``data`` (its standard
                    input, bytes: the instructions of ``build``, see
                    :func:`.encode_instructions()`).
    :returns: The verb's result (a dict).
    :raises: :exc:`AgentFailedError` for the problems that the program knows,
             :exc:`.RemoteCommandError` when ``python3`` is missing or the program fails.
    """
    progress = options.get('progress', False)
    finished = run_program(context, PURPOSE, PROGRAM_MODULES, [verb] + (['--progress'] if progress else [])
                           + list(arguments), options.get('data', b''), sudo=options.get('sudo', False),
                           ionice=options.get('ionice'), capture_stderr=not progress)
    return read_answer(verb, finished)


class StartedAgent(object):

    """One verb of the manifests' program, started to run alongside this process's work and given its input later."""

    def __init__(self, context, verb, *arguments, **options):
        """
        Start the program (see :func:`.start_program()`).

        :param context: The destination's execution context.
        :param verb: A verb of :data:`.agent.manifests.VERBS` (a string).
        :param arguments: Its arguments (strings).
        :param options: ``sudo`` and ``ionice`` (see :func:`run_agent()`).
        """
        self.verb = verb
        self.program = start_program(context, PROGRAM_MODULES, [verb] + list(arguments), NO_PYTHON,
                                     sudo=options.get('sudo', False), ionice=options.get('ionice'))

    def feed(self, data):
        """
        Give the program a part of its input; the rest comes later.

        :param data: Bytes.
        """
        self.program.feed(data)

    def finish(self, data):
        """
        Give the program the rest of its input and wait for its answer.

        :param data: Its standard input (bytes).
        :returns: The verb's result (a dict).
        :raises: As :func:`run_agent()`.
        """
        self.program.feed(data)
        self.program.stop()
        return read_answer(self.verb, self.program.wait())

    def stop(self):
        """End the program's input (a program that wasn't given all of it ends without writing) and wait for it."""
        self.program.stop()
        self.program.wait()


def read_answer(verb, finished):
    """
    Read the answer of the manifests' program.

    :param verb: The verb it ran (a string).
    :param finished: The program's :class:`.Finished` outcome.
    :returns: The verb's result (a dict).
    :raises: As :func:`run_agent()`.
    """
    if finished.returncode == KNOWN_PROBLEM:
        raise AgentFailedError(json.loads(finished.stdout)['error'])
    if finished.returncode == EXIT_NOT_FOUND and not finished.stdout:
        raise RemoteCommandError(MISSING_PYTHON % PURPOSE)
    if finished.returncode != 0:
        raise RemoteCommandError("The manifests' program failed on the destination while running %s (%s)."
                                 % (verb, finished.problem if finished.messages else
                                    "exit code %i, see the messages above" % finished.returncode))
    return json.loads(finished.stdout)
