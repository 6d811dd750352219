"""
How each job of a configuration file ended, and the exit code of a run of several jobs.

A :class:`JobOutcome` holds what is known when a job ends: its exit code,
the one line that says how it went, the :class:`.BackupSummary` of its
backup, and when it started and ended. :func:`worst_exit_code()` picks
the exit code of the whole run from the jobs' codes.
"""

import time

EXIT_CODE_SEVERITY = {0: 0, 2: 1, 75: 2, 1: 3}
"""
How bad each exit code of a job is, from 0 (success) over 2 (completed with
errors, or a read-only action's finding) and 75 (another run held the lock)
to 1 (an error). A code of 128 and more (a signal) is worse than all of them.
"""


class JobOutcome(object):

    """What a job did: filled in as it runs (see :class:`.JobRunner`)."""

    def __init__(self, job):
        """
        Start the outcome of a job that starts now.

        :param job: The :class:`.Job`.
        """
        self.job = job
        self.started = time.time()
        self.finished = None
        self.exit_code = None
        self.summary = None
        self.message = None

    @property
    def duration(self):
        """The seconds from the job's start to its end (a float), or :data:`None` while it runs."""
        return None if self.finished is None else self.finished - self.started

    @property
    def succeeded(self):
        """:data:`True` when the job ended with exit code 0 (a backup skipped for a missing disk included)."""
        return self.exit_code == 0

    def finish(self, exit_code):
        """
        Record the end of the job.

        :param exit_code: Its exit code (an integer).
        """
        self.exit_code = exit_code
        self.finished = time.time()


def worst_exit_code(exit_codes):
    """
    Pick the exit code of a run of several jobs: the worst of the jobs' codes.

    :param exit_codes: The jobs' exit codes (integers).
    :returns: The worst of them (see :data:`EXIT_CODE_SEVERITY`), 0 for none.
    """
    return max(exit_codes, key=lambda code: 4 if code >= 128 else EXIT_CODE_SEVERITY.get(code, 3), default=0)
