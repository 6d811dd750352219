"""
A program of this package in a process of its own (the destination's ``python3``).

:mod:`.agent.shipping` runs a program either in this process or as a
command, whose bootstrap loads the program's modules and hands over to
:func:`run()`. There the program gets the process's standard streams, and
the process's signals are its own: SIGINT, SIGTERM and SIGHUP raise
:exc:`Stopped` wherever the program is, so that its ``finally`` clauses run
(a private directory is removed, cp processes are stopped) and it exits with
128 plus the signal's number; :func:`held_signals()` is the program's shield,
which holds them back while a block must not be cut short.

In this process neither happens: its own handlers (see
:mod:`.processes.signals`) stay in place, and the shield is its
:func:`.cleanup()`.
"""

import contextlib
import importlib
import signal
import sys

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a program in its own process: held back by :func:`held_signals()`."""


class Stopped(BaseException):

    """Raised in a program that runs in its own process when one of :data:`HANDLED_SIGNALS` arrives."""


def stop(signal_number, frame):
    """
    Stop the program (the handler of :data:`HANDLED_SIGNALS`).

    :param signal_number: The signal's number.
    :param frame: The frame it interrupted.
    :raises: :exc:`Stopped` with the signal's number.
    """
    raise Stopped(signal_number)


@contextlib.contextmanager
def held_signals():
    """Hold back :data:`HANDLED_SIGNALS` for the duration of a ``with`` block (they take effect afterwards)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run(name, arguments):
    """
    Run a program as the whole process.

    :param name: The program's module (a string; already loaded, or importable).
    :param arguments: Its command line's arguments (strings).
    :returns: Its exit code, or 128 plus the number of the signal that stopped it.
    """
    for number in HANDLED_SIGNALS:
        signal.signal(number, stop)
    try:
        return importlib.import_module(name).main(arguments, sys.stdin.buffer, sys.stdout.buffer, sys.stderr,
                                                  held_signals)
    except Stopped as stopped:
        return 128 + stopped.args[0]
