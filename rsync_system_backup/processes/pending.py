"""
Questions to the destination that are asked early and answered when needed.

On an SSH destination every command costs a round trip, and the checks of a
run ask several small questions one after another. A read-only question whose
answer isn't needed at once is asked with :func:`ask()`: its command runs
while the run asks the next one, and :meth:`PendingAnswer.result()` waits
for it when the answer is needed. A local destination's answer, found with
Python calls, is at hand at once (:class:`PendingAnswer` with a value).

Used as a context manager, a :class:`PendingAnswer` whose answer nobody took
(because an error ended the ``with`` block) waits for its command quietly,
so no question outlives the block.
"""

from rsync_system_backup.processes.waiting import wait_for_exit


class PendingAnswer(object):

    """The answer to a question: the output of a command that runs in the background, or a value at hand."""

    def __init__(self, command=None, value=None):
        """
        Initialize a :class:`PendingAnswer`.

        :param command: An :class:`~executor.ExternalCommand` started with
                        ``asynchronous=True`` and ``capture=True``, or :data:`None`.
        :param value: The answer, when there is no command.
        """
        self.command = command
        self.value = value

    def result(self):
        """
        Give the answer, waiting for the command the first time.

        :returns: The command's output (see :attr:`executor.ExternalCommand.output`), or the value.
        :raises: :exc:`executor.ExternalCommandFailed` when the command failed
                 (translated into the program's own errors by
                 :func:`.explain_failures()`, as for any command).
        """
        if self.command is not None:
            command, self.command = self.command, None
            wait_for_exit(command)
            self.value = command.output
        return self.value

    def __enter__(self):
        """Give the pending answer itself."""
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Wait for a command whose answer nobody took, ignoring how it ended."""
        if self.command is not None:
            command, self.command = self.command, None
            command.check = False
            wait_for_exit(command)


def ask(context, *command, **options):
    """
    Start a read-only command whose output is needed later.

    :param context: An execution context.
    :param command: The command (strings).
    :param options: More options for the command, such as ``sudo``.
    :returns: A :class:`PendingAnswer`.
    """
    return PendingAnswer(context.execute(*command, asynchronous=True, capture=True, shell=False, tty=False,
                                         **options))
