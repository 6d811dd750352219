"""
What a run prints when nobody watches it, and how much ``-v`` and ``-q`` show.

Under cron or a systemd timer every line on standard error ends up in a mail
or the journal, every night. Without a terminal (and without ``-v``) a run
therefore lets through only its one-line summary and its warnings and
errors: :func:`keep_unattended_output_short()` puts a
:class:`SummaryAndProblems` filter on the handlers. The informational
messages of the steps, and those of the libraries the steps use
(rotate-backups' "Scanning ... for backups", say), stay out.
"""

import logging

VERBOSE = 15
"""The level between INFO and DEBUG that one ``-v`` shows (verboselogs' VERBOSE)."""

SPAM = 5
"""The level below DEBUG (verboselogs' SPAM)."""

LEVELS_BY_VERBOSITY = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, VERBOSE, logging.DEBUG, SPAM)
"""The log levels from ``-qqq`` to ``-vvv``; no option at all is INFO."""

SUMMARY = {'summary': True}
"""The ``extra`` argument of the log call that gives the run's summary line (it passes :class:`SummaryAndProblems`)."""


def find_log_level(verbosity):
    """
    Give the log level for a number of ``-v`` and ``-q`` options.

    :param verbosity: The number of ``-v`` options minus the number of ``-q`` options.
    :returns: One ``-v`` gives VERBOSE (15), two give DEBUG, three SPAM; one
              ``-q`` gives WARNING, and so on (an integer).
    """
    index = LEVELS_BY_VERBOSITY.index(logging.INFO) + verbosity
    level = LEVELS_BY_VERBOSITY[max(0, min(len(LEVELS_BY_VERBOSITY) - 1, index))]
    for number, name in ((VERBOSE, 'VERBOSE'), (SPAM, 'SPAM')):
        logging.addLevelName(number, name)
    return level


class SummaryAndProblems(logging.Filter):

    """A log filter that lets through warnings, errors and the summary line (logged with :data:`SUMMARY`)."""

    def filter(self, record):
        """
        Decide whether a record passes.

        :param record: A :class:`logging.LogRecord`.
        :returns: :data:`True` for warnings, errors and the summary.
        """
        return record.levelno >= logging.WARNING or getattr(record, 'summary', False)


def keep_unattended_output_short(handlers):
    """
    Let only the summary line, warnings and errors through some log handlers.

    :param handlers: The :class:`logging.Handler` objects (standard error's and the system log's).
    """
    for handler in handlers:
        handler.addFilter(SummaryAndProblems())
