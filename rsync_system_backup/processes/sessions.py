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
"""

from executor import ExternalCommand
from executor.contexts import LocalContext
from property_manager import mutable_property

from rsync_system_backup.processes.signals import cleanups_running


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


class SessionCommand(OwnSessionOption, ExternalCommand):

    """A local command with the ``own_session`` option."""


class SessionLocalContext(LocalContext):

    """The execution context of this system, whose commands have the ``own_session`` option."""

    @property
    def command_type(self):
        """The type of command objects created by this context (:class:`SessionCommand`)."""
        return SessionCommand


def create_local_context():
    """
    Create the execution context of this system.

    :returns: A :class:`SessionLocalContext`.
    """
    return SessionLocalContext()
