"""
Commands that the terminal's signals can't reach.

Control-C and the hang-up of a closing terminal go to every process of the
terminal's foreground job: to this program, and to every command it runs at
that moment. :mod:`.processes.signals` wants to decide itself what each signal does,
so that a second Control-C can't kill ``umount`` or ``rm`` halfway through a
cleanup. The execution contexts of a run therefore create commands that
start in a session of their own (:func:`os.setsid`, through
:class:`subprocess.Popen`'s ``start_new_session``) when asked to with the
``own_session`` option, and by default while cleanups run (see
:func:`.cleanups_running()`).

The same local commands also find the system programs when ``$PATH`` lacks
their directories (see :mod:`.processes.search_path`), and their sudo never
asks for a password (see :mod:`.processes.sudo`).
"""

from executor import ExternalCommand
from executor.contexts import LocalContext
from property_manager import mutable_property

from rsync_system_backup.processes.search_path import SearchPathOption, find_on_search_path, require_program
from rsync_system_backup.processes.signals import cleanups_running
from rsync_system_backup.processes.sudo import NoPasswordPrompt


class OwnSessionOption(object):

    """Mixin for :class:`~executor.ExternalCommand` classes that adds the ``own_session`` option."""

    @mutable_property
    def own_session(self):
        """
        :data:`True` to start the command in a session of its own, out of the terminal's reach.

        It defaults to :func:`.cleanups_running()` at the moment the command starts.
        """
        return cleanups_running()

    def start_once(self, check=None, **kw):
        """
        Start the command, in a session of its own when :attr:`own_session` is set.

        :param check: See :meth:`executor.ExternalCommand.start_once()`.
        :param kw: The keyword arguments for :class:`subprocess.Popen`.
        """
        if self.own_session:
            kw['start_new_session'] = True
        return super(OwnSessionOption, self).start_once(check=check, **kw)


class SessionCommand(OwnSessionOption, SearchPathOption, NoPasswordPrompt, ExternalCommand):

    """A local command with the ``own_session`` option, the system directories on its search path and ``sudo -n``."""


class SessionLocalContext(LocalContext):

    """
    The execution context of this system, whose commands are :class:`SessionCommand` objects.

    A command whose program isn't installed is refused before it starts (see
    :func:`.require_program()`), and programs are found in this process, on
    the same search path as the commands' (executor would run ``which``).
    """

    @property
    def command_type(self):
        """The type of command objects created by this context (:class:`SessionCommand`)."""
        return SessionCommand

    def prepare_command(self, command, options):
        """
        Create a command object, once its program is known to be installed.

        :param command: The program and its arguments (a tuple of strings).
        :param options: The command's options (a dictionary).
        :returns: A :class:`SessionCommand` that hasn't been started yet.
        :raises: :exc:`.ProgramNotFoundError` when the program isn't on the search path.
        """
        cmd = super(SessionLocalContext, self).prepare_command(command, options)
        if cmd.command and not cmd.shell:
            require_program(cmd.command[0])
        return cmd

    def find_program(self, program_name, *args):
        """
        Find programs on the search path (executor uses this to decide whether ``ionice`` is there).

        :param program_name: A program's name (a string); more may follow.
        :returns: The pathnames of the programs that are there (a list of strings).
        """
        return [pathname for pathname in map(find_on_search_path, (program_name,) + args) if pathname]


def create_local_context():
    """
    Create the execution context of this system.

    :returns: A :class:`SessionLocalContext`.
    """
    return SessionLocalContext()
