"""
Running the :mod:`.manifests.agent` where the snapshots are: in this process, or with ``python3`` over there.

A local destination that needs no privilege escalation is read in this
process. Elsewhere (an SSH destination, ``sudo``, or an I/O scheduling class
to apply) the agent runs as ``python3 -`` in the destination's execution
context, as one command: the script, fed on standard input, is the source of
the agent and of the standard-library-only modules it imports, loaded under
their own names, followed by a call of :func:`.agent.main()`. Its answer is
JSON on standard output. So the destination needs ``python3`` (any 3.x that
runs this package) and nothing of this package installed; without it the
command fails with a message that says so.
"""

import json
import sys

from executor.contexts import LocalContext

from rsync_system_backup.exceptions import RemoteCommandError, RsyncSystemBackupError
from rsync_system_backup.backup_set.operations import runs_in_process

AGENT_MODULES = (
    'rsync_system_backup.manifests.format',
    'rsync_system_backup.manifests.scan',
    'rsync_system_backup.manifests.compare',
    'rsync_system_backup.backup_set.exclusive_sizes',
    'rsync_system_backup.manifests.agent',
)
"""The modules that the agent needs, in the order they are loaded (each imports only those before it)."""

AGENT_PACKAGES = ('rsync_system_backup', 'rsync_system_backup.manifests', 'rsync_system_backup.backup_set')
"""The packages of :data:`AGENT_MODULES`, created empty so that their imports find the modules."""

LOADER = '''\
import sys, types
def load(name, source, package=False):
    module = types.ModuleType(name)
    if package:
        module.__path__ = []
    sys.modules[name] = module
    if source:
        exec(compile(source, name, 'exec'), module.__dict__)
'''
"""The start of the script: a function that creates a module from its name and source."""

EXIT_NOT_FOUND = 127
"""The shell's exit code for a program that isn't installed."""

EXIT_KNOWN_PROBLEM = 2
"""The agent's exit code after a known problem (see :func:`.agent.main()`)."""


class AgentFailedError(RsyncSystemBackupError):
    """Raised when the agent reports a known problem (its message says which)."""


def build_script():
    """
    Compose the script that runs the agent on another system.

    :returns: Python source code (a string) that reads the verb and its arguments from ``sys.argv``.
    """
    parts = [LOADER]
    parts.extend('load(%r, None, package=True)\n' % name for name in AGENT_PACKAGES)
    for name in AGENT_MODULES:
        __import__(name)
        with open(sys.modules[name].__file__, encoding='utf-8') as handle:
            parts.append('load(%r, %r)\n' % (name, handle.read()))
    parts.append('sys.exit(sys.modules[%r].main(sys.argv[1:]))\n' % AGENT_MODULES[-1])
    return ''.join(parts)


def run_agent(context, verb, *arguments, **options):
    """
    Run one verb of the agent on the destination.

    :param context: The destination's execution context.
    :param verb: A verb of :data:`.agent.VERBS` (a string).
    :param arguments: Its arguments (strings).
    :param options: ``sudo`` (:data:`True` to run it with superuser
                    privileges), ``ionice`` (an I/O scheduling class or
                    :data:`None`) and ``progress`` (:data:`True` to show
                    progress on standard error).
    :returns: The verb's result (a dict).
    :raises: :exc:`AgentFailedError` for the problems that the agent knows,
             :exc:`.RemoteCommandError` when ``python3`` is missing or fails.
    """
    sudo, ionice, progress = options.get('sudo', False), options.get('ionice'), options.get('progress', False)
    if runs_in_process(context, sudo) and not ionice:
        from rsync_system_backup.manifests import agent
        try:
            return agent.dispatch(verb, *arguments, **({'progress': True} if progress else {}))
        except agent.AgentError as e:
            raise AgentFailedError(str(e))
    interpreter = sys.executable if isinstance(context, LocalContext) else 'python3'
    command = [interpreter, '-', verb] + (['--progress'] if progress else []) + list(arguments)
    finished = context.execute(*command, input=build_script(), capture=True, check=False, sudo=sudo,
                               ionice=ionice, shell=False, tty=False)
    output = finished.output or ''
    if finished.returncode == EXIT_NOT_FOUND:
        raise RemoteCommandError("%s needs python3 on the system that holds the snapshots, and it isn't "
                                 "installed there: install python3 (python3-minimal on Debian)." % verb)
    if finished.returncode == EXIT_KNOWN_PROBLEM:
        raise AgentFailedError(json.loads(output)['error'])
    if finished.returncode != 0:
        raise RemoteCommandError("python3 failed with exit code %i while running %s on the destination "
                                 "(see its message above)." % (finished.returncode, verb))
    return json.loads(output)
