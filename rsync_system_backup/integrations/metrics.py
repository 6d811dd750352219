"""
The Prometheus textfile of a machine's backup jobs, for node_exporter's textfile collector.

After each job, :func:`write_job_metrics()` puts the job's samples into one
file in the Prometheus text format (for example
``/var/lib/prometheus/node-exporter/rsync-system-backup.prom``): every
series of :data:`SERIES`, a gauge labelled ``job="NAME"``. The samples of
the other jobs in the file stay as they were, so one file holds every job
of the machine across runs.

What a run didn't measure (:data:`None` in its :class:`JobMetrics`: no
transfer because the job failed early, no rotation, no free space because
the disk wasn't there) keeps the job's previous sample, or has none yet; so
does ``last_success`` after a run that failed, and it is 0 for a job that
never succeeded, so that an alert on its age fires.

The file is the program's own: lines other than its samples are not kept.
Writing it never changes a backup's outcome, and readers never see half a
file:

- The new text is written to a temporary file with an unpredictable name in
  the same directory (created with ``O_EXCL`` and ``O_NOFOLLOW``, mode 0644
  whatever the umask, a name that doesn't end in ``.prom``), flushed to the
  disk and renamed over the file. A symbolic link at the file's name is
  never followed, neither to read the previous samples nor to write: the
  rename replaces it.
- Two runs that write at once take turns: each holds an exclusive
  :func:`fcntl.flock` on the directory while it reads and replaces the file,
  so neither loses the other's samples.
- A failure (the directory is missing or read-only, the lock stays taken for
  :data:`LOCK_TIMEOUT` seconds, a directory has the file's name) is logged as
  one warning.
"""

import errno
import fcntl
import logging
import math
import os
import re
import secrets
import stat
import time

from rsync_system_backup.exceptions import InvalidOptionError

PREFIX = 'rsync_system_backup_'
"""The start of every series' name."""

SERIES = (
    ('last_run_timestamp_seconds', 'last_run', "When the job's last run ended, in seconds since the epoch."),
    ('last_success_timestamp_seconds', 'last_success',
     "When the job's last successful run ended, in seconds since the epoch (0 until it first succeeds)."),
    ('exit_code', 'exit_code',
     "The exit code of the job's last run (0 success, 1 failure, 2 completed with errors, 75 destination busy)."),
    ('duration_seconds', 'duration', "How long the job's last run took, in seconds."),
    ('transferred_bytes', 'transferred_bytes', "The bytes that rsync sent in the job's last transfer."),
    ('snapshots', 'snapshots', "The snapshots in the job's backup set after its last rotation."),
    ('free_bytes', 'free_bytes', "The free space on the job's destination when it was last measured, in bytes."),
)
"""The series of the file: each name (after :data:`PREFIX`), the :class:`JobMetrics` attribute and the help text."""

SAMPLE_PATTERN = re.compile(r'^%s(?P<series>[a-z_]+)\{job="(?P<job>(?:[^"\\\n]|\\.)*)"\} '
                            r'(?P<value>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$' % PREFIX)
"""Matches a sample line as :func:`format_samples()` writes it."""

LABEL_ESCAPES = {'\\': '\\\\', '"': '\\"', '\n': '\\n'}
"""The characters that the text format escapes in a label's value, and their escapes."""

LOCK_TIMEOUT = 10
"""How many seconds a writer waits for another to finish with the file."""

MAX_READ_BYTES = 1024 * 1024
"""The most bytes of the previous file that are read (a file of the program's holds a few hundred per job)."""

EXAMPLE_PATHNAME = '/var/lib/prometheus/node-exporter/rsync-system-backup.prom'
"""The metrics file that messages give as an example."""

logger = logging.getLogger(__name__)


class JobMetrics(object):

    """
    What one run of a job measured, for the metrics file.

    Every attribute but :attr:`job` is a number, or :data:`None` for a
    value the run didn't measure (the job's previous sample stays):

    - :attr:`job`: the job's name (a string, the ``job`` label);
    - :attr:`last_run`: when the run ended (seconds since the epoch);
    - :attr:`last_success`: the same when the run succeeded, :data:`None` when it didn't;
    - :attr:`exit_code`: the run's exit code;
    - :attr:`duration`: the seconds the run took;
    - :attr:`transferred_bytes`: the bytes that rsync sent;
    - :attr:`snapshots`: the snapshots in the backup set after the rotation;
    - :attr:`free_bytes`: the free space on the destination, in bytes.
    """

    def __init__(self, job, last_run=None, last_success=None, exit_code=None, duration=None, transferred_bytes=None,
                 snapshots=None, free_bytes=None):
        """Record the values (see the class's documentation)."""
        self.job = job
        self.last_run = last_run
        self.last_success = last_success
        self.exit_code = exit_code
        self.duration = duration
        self.transferred_bytes = transferred_bytes
        self.snapshots = snapshots
        self.free_bytes = free_bytes


def metrics_from_summary(job, started, ended, exit_code, summary):
    """
    Collect what a run of a job measured.

    A run succeeded when it exited with 0 and did at least one step of a real
    backup: a run that skipped its backup because the disk isn't connected
    exits with 0 too, and a dry run changes nothing, so neither counts. A
    dry run's transfer and rotation are only plans, so they measure nothing
    either.

    :param job: The job's name (a string).
    :param started: When the run started (seconds since the epoch, as :func:`time.time()` gives).
    :param ended: When it ended (the same).
    :param exit_code: Its exit code (an integer).
    :param summary: Its :class:`~rsync_system_backup.reporting.summary.BackupSummary`, or
                    :data:`None` when it ended before it had one.
    :returns: A :class:`JobMetrics`.
    """
    metrics = JobMetrics(job, last_run=ended, exit_code=exit_code, duration=max(0, ended - started))
    if summary is None:
        return metrics
    real = not summary.dry_run
    if exit_code == 0 and real and summary.durations:
        metrics.last_success = ended
    statistics = summary.transfer_statistics
    if real and 'transfer' in summary.durations and statistics is not None:
        metrics.transferred_bytes = statistics.bytes_sent
    if real and 'rotation' in summary.durations:
        metrics.snapshots = len(summary.rotation_plan.kept)
    if summary.disk_space is not None:
        metrics.free_bytes = summary.disk_space.free
    return metrics


def check_metrics_file(pathname):
    """
    Check the pathname of a metrics file: absolute, and named so that node_exporter reads it.

    :param pathname: The pathname (a string).
    :raises: :exc:`~rsync_system_backup.exceptions.InvalidOptionError` with a
             one-line message that names the problem and the fix.
    """
    if not isinstance(pathname, str):
        raise InvalidOptionError("The metrics file must be a pathname (a string), not %s: give one such as %s."
                                 % (type(pathname).__name__, EXAMPLE_PATHNAME))
    if not os.path.isabs(pathname):
        raise InvalidOptionError("The metrics file %r is a relative pathname: give an absolute one, such as %s."
                                 % (pathname, EXAMPLE_PATHNAME))
    if not os.path.basename(pathname).endswith('.prom') or os.path.basename(pathname) == '.prom':
        raise InvalidOptionError("The metrics file %s doesn't end in NAME.prom, so node_exporter's textfile collector "
                                 "would never read it: name it like %s." % (pathname, EXAMPLE_PATHNAME))


def write_job_metrics(pathname, metrics, lock_timeout=LOCK_TIMEOUT):
    """
    Put a job's samples into the metrics file, keeping the other jobs' (see the module's documentation).

    :param pathname: The metrics file (a string).
    :param metrics: A :class:`JobMetrics`.
    :param lock_timeout: How many seconds to wait for another writer (a number).
    :returns: :data:`True` when the file was written, :data:`False` after a
              failure, which is logged as one warning (nothing raises).
    """
    directory, name = os.path.split(os.path.abspath(pathname))
    try:
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            lock_directory(directory_fd, lock_timeout)
            samples = read_samples(directory_fd, name)
            samples[metrics.job] = merge_samples(samples.get(metrics.job, {}), metrics)
            replace_file(directory_fd, name, format_samples(samples))
        finally:
            os.close(directory_fd)
    except OSError as e:
        logger.warning("Couldn't update the metrics file %s: %s (the backup doesn't depend on it).", pathname,
                       e.strerror or e)
        return False
    logger.debug("Updated the metrics of job %s in %s.", metrics.job, pathname)
    return True


def lock_directory(directory_fd, timeout):
    """
    Take the exclusive lock of the metrics file's directory (released when the descriptor is closed).

    :param directory_fd: A descriptor of the directory (an integer).
    :param timeout: How many seconds to wait for another holder (a number).
    :raises: :exc:`OSError` when the lock stays taken that long.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(directory_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise OSError(errno.EAGAIN, "another run held the lock of its directory for %s seconds" % timeout)
            time.sleep(0.05)


def read_samples(directory_fd, name):
    """
    Read the samples of the previous metrics file, without following a symbolic link.

    :param directory_fd: A descriptor of the file's directory (an integer).
    :param name: The file's name (a string).
    :returns: A dict from job names to dicts from the :class:`JobMetrics`
              attributes to values (numbers); empty when there is no regular
              file by that name.
    :raises: :exc:`OSError` when the file exists but can't be read.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=directory_fd)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP):
            return {}
        raise
    with os.fdopen(fd, 'rb') as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        text = handle.read(MAX_READ_BYTES).decode('utf-8', 'replace')
    attributes = {series: attribute for series, attribute, _ in SERIES}
    samples = {}
    for line in text.splitlines():
        match = SAMPLE_PATTERN.match(line)
        if match and match.group('series') in attributes:
            value = float(match.group('value'))
            if math.isfinite(value):
                job = re.sub(r'\\(.)', lambda escape: '\n' if escape.group(1) == 'n' else escape.group(1),
                             match.group('job'))
                samples.setdefault(job, {})[attributes[match.group('series')]] = value
    return samples


def merge_samples(previous, metrics):
    """
    Combine a job's previous samples with what its last run measured.

    :param previous: A dict from :class:`JobMetrics` attributes to values (the job's previous samples).
    :param metrics: A :class:`JobMetrics`.
    :returns: A dict like `previous`: its values, replaced by the ones the run measured.
    """
    samples = dict(previous)
    for _, attribute, _ in SERIES:
        value = getattr(metrics, attribute)
        if value is not None:
            samples[attribute] = value
    samples.setdefault('last_success', 0)
    return samples


def format_samples(samples):
    """
    Write samples in the Prometheus text format.

    :param samples: A dict from job names to dicts from :class:`JobMetrics` attributes to values.
    :returns: The text (a string): for each series that has samples, its
              ``# HELP`` and ``# TYPE`` lines, then one sample per job, in the
              order of the jobs' names.
    """
    lines = []
    for series, attribute, help_text in SERIES:
        jobs = sorted(job for job in samples if attribute in samples[job])
        if jobs:
            lines.append('# HELP %s%s %s' % (PREFIX, series, help_text))
            lines.append('# TYPE %s%s gauge' % (PREFIX, series))
        for job in jobs:
            lines.append('%s%s{job="%s"} %s' % (PREFIX, series, escape_label_value(job),
                                                format_value(samples[job][attribute])))
    return ''.join(line + '\n' for line in lines)


def escape_label_value(text):
    """
    Escape a label's value for the text format: backslash, double quote and line feed.

    :param text: The value (a string).
    :returns: The escaped value, without the quotes around it (a string).
    """
    return ''.join(LABEL_ESCAPES.get(character, character) for character in text)


def format_value(value):
    """
    Write a sample's value: a whole number without a fraction, others in full precision.

    :param value: A finite number.
    :returns: The text (a string).
    """
    if float(value).is_integer() and abs(value) < 2 ** 53:
        return '%d' % value
    return repr(float(value))


def replace_file(directory_fd, name, text):
    """
    Replace a file atomically with new text, through a temporary file beside it.

    :param directory_fd: A descriptor of the file's directory (an integer).
    :param name: The file's name (a string).
    :param text: The new content (a string).
    :raises: :exc:`OSError` when it can't be done; the temporary file is removed then.
    """
    temporary = '.%s.%s.tmp' % (name, secrets.token_hex(8))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o644, dir_fd=directory_fd)
    try:
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(fd, 0o644)
            handle.write(text.encode('utf-8'))
            handle.flush()
            os.fsync(fd)
        os.rename(temporary, name, src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=directory_fd)
        except OSError:
            pass
        raise
    os.fsync(directory_fd)
