"""
Waiting for a command that runs in the background, without executor's polling.

:meth:`executor.ExternalCommand.wait()` looks at a running command every 0.2
seconds (and shows a spinner on terminals), so a command that ends a moment
after the wait begins costs up to 0.2 seconds more. :func:`wait_for_exit()`
waits for the process itself, so the wait ends when the command does.
"""


def wait_for_exit(command):
    """
    Wait for a command that was started in the background to exit.

    :param command: An :class:`~executor.ExternalCommand` started with ``asynchronous=True``.

    The process is waited for directly: executor's own wait polls it, 0.2
    seconds at a time (and shows a spinner on terminals, which isn't wanted).
    """
    if command.subprocess is not None:
        command.subprocess.wait()
    command.wait(use_spinner=False)
