"""
Reading rsync's standard output: overall progress and transfer statistics.

With ``--info=progress2`` rsync keeps rewriting one line (ending in a
carriage return) that describes the whole transfer so far; with ``--stats``
it ends with a block of statistics. :func:`parse_progress_line()` reads the
first kind of line and :class:`TransferStatistics` collects the second.

rsync groups the digits of large numbers with the thousands separator of the
locale (``1,234,567`` or ``1.234.567``), so numbers are read digit by digit.
"""

import re

PROGRESS_PATTERN = re.compile(r'''
    ^ \s* (?P<bytes> \d[\d,.']* ) \s+ (?P<percentage> \d+ ) % \s+
    (?P<rate> \d[\d,.']* ) (?P<unit> [kMGT]? ) B/s \s+
    (?P<time> [\d?]+ : [\d?]{2} : [\d?]{2} )
    (?: \s+ \( xfr\#(?P<transfers> \d+ ) , \s* (?P<check> ir|to ) -chk= (?P<to_check> \d+ ) / (?P<files> \d+ ) \) )?
    \s* $
''', re.VERBOSE)
"""Matches one update of ``--info=progress2`` (without the carriage return)."""

PARTIAL_TRANSFER = 23
"""rsync's exit code when some files could not be transferred ("partial transfer due to error")."""

VANISHED_FILES = 24
"""rsync's exit code when some files vanished during the transfer and nothing else went wrong."""

RATE_UNITS = {'': 1, 'k': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
"""The multipliers of the units in rsync's transfer rates (which count in powers of 1024)."""

STATISTICS_PATTERN = re.compile(r'^(?P<label>[A-Z][a-z]+(?: [a-z]+)*): (?P<value>.*)$')
"""Matches one line of the ``--stats`` block: a label, a colon and a value."""

STATISTICS_FIELDS = {
    'Number of files': 'files',
    'Number of created files': 'created_files',
    'Number of deleted files': 'deleted_files',
    'Number of regular files transferred': 'transferred_files',
    'Number of files transferred': 'transferred_files',
    'Total file size': 'total_size',
    'Total transferred file size': 'transferred_size',
    'Total bytes sent': 'bytes_sent',
    'Total bytes received': 'bytes_received',
}
"""The ``--stats`` labels that :class:`TransferStatistics` records, and the attribute each goes to."""

IGNORED_STATISTICS = ('Literal data', 'Matched data', 'File list size', 'File list generation time',
                      'File list transfer time')
"""``--stats`` labels that belong to the block but aren't recorded."""

TOTALS_PATTERN = re.compile(r'^(?:sent \d[\d,.\']* bytes\s+received \d|total size is \d)')
"""Matches the two closing lines of rsync's statistics (``sent ... received ...`` and ``total size is ...``)."""


def parse_number(text):
    """
    Read a whole number written with or without thousands separators.

    :param text: For example ``1,234,567`` (a string).
    :returns: The number (an integer).
    """
    return int(re.sub(r'\D', '', text))


def parse_regular_files(value):
    """
    Find the number of regular files in the value of rsync's "Number of files" statistic.

    :param value: For example ``1,234 (reg: 1,000, dir: 234)`` (a string).
    :returns: The number of regular files (an integer; 0 when the breakdown
              in parentheses leaves them out), or :data:`None` when there is
              no breakdown (rsync before 3.1).
    """
    regular = re.search(r'\breg: (\d[\d,.\']*)', value)
    if regular:
        return parse_number(regular.group(1))
    return 0 if '(' in value else None


class ProgressUpdate(object):

    """One update of rsync's overall progress (from ``--info=progress2``)."""

    def __init__(self, transferred_bytes, percentage, rate, time_left=None, elapsed=None, transfers=None,
                 scanning=False, files_to_check=None, files=None):
        """
        Record the numbers of one progress update.

        :param transferred_bytes: The bytes of file data transferred so far (an integer).
        :param percentage: How far along the transfer is (an integer from 0 to 100).
        :param rate: The current transfer rate in bytes per second (a number).
        :param time_left: An estimate of the seconds left (a number), or
                          :data:`None` when there is none.
        :param elapsed: The seconds since the transfer started (an integer),
                        or :data:`None` when the line didn't say.
        :param transfers: The number of files transferred so far (an integer
                          or :data:`None` before the first one).
        :param scanning: :data:`True` while rsync is still building its file
                         list (so the percentage and the time left will grow).
        :param files_to_check: The files left to check (an integer or :data:`None`).
        :param files: The files rsync knows about so far (an integer or :data:`None`).
        """
        self.transferred_bytes = transferred_bytes
        self.percentage = percentage
        self.rate = rate
        self.time_left = time_left
        self.elapsed = elapsed
        self.transfers = transfers
        self.scanning = scanning
        self.files_to_check = files_to_check
        self.files = files


def parse_progress_line(line):
    """
    Parse one line of ``--info=progress2`` output.

    rsync writes two kinds of update: while a file is being transferred, the
    time field is its estimate of the time left; when a file is done, the
    line ends in ``(xfr#N, to-chk=N/N)`` and the time field is the time since
    the start, from which the time left is estimated here.

    :param line: A line of rsync's output, without its line ending (a string).
    :returns: A :class:`ProgressUpdate`, or :data:`None` when the line isn't
              a progress update.
    """
    match = PROGRESS_PATTERN.match(line)
    if not match:
        return None
    rate_digits = parse_number(match.group('rate'))
    # rsync prints rates with two decimals, so the digits count hundredths.
    rate = rate_digits / 100.0 * RATE_UNITS[match.group('unit')]
    percentage = int(match.group('percentage'))
    seconds = None
    if '?' not in match.group('time'):
        hours, minutes, seconds = (int(part) for part in match.group('time').split(':'))
        seconds += hours * 3600 + minutes * 60
    transfers = match.group('transfers')
    if not transfers:
        time_left, elapsed = seconds, None
    else:
        elapsed = seconds
        estimable = elapsed is not None and 0 < percentage < 100
        time_left = elapsed * (100 - percentage) / float(percentage) if estimable else None
    return ProgressUpdate(
        transferred_bytes=parse_number(match.group('bytes')),
        percentage=percentage,
        rate=rate,
        time_left=time_left,
        elapsed=elapsed,
        transfers=int(transfers) if transfers else None,
        scanning=match.group('check') == 'ir',
        files_to_check=int(match.group('to_check')) if transfers else None,
        files=int(match.group('files')) if transfers else None,
    )


class TransferStatistics(object):

    """
    The statistics that rsync prints at the end of a transfer (``--stats``).

    Every attribute is an integer, or :data:`None` when rsync didn't report it
    (older versions leave some out):

    - :attr:`files`: the files, directories, links and so on in the source;
    - :attr:`regular_files`: the regular files among them;
    - :attr:`created_files`: the entries created on the destination;
    - :attr:`deleted_files`: the entries deleted from the destination;
    - :attr:`transferred_files`: the regular files whose data was transferred;
    - :attr:`total_size`: the size of all files in the source, in bytes;
    - :attr:`transferred_size`: the size of the transferred files, in bytes;
    - :attr:`bytes_sent` and :attr:`bytes_received`: the network traffic.

    After the transfer, :func:`.transfer_changes()` adds what rsync's exit
    code and error messages said: :attr:`exit_code` (an integer),
    :attr:`failed_files` (the files rsync reported it couldn't transfer, for
    exit code 23) and :attr:`vanished_files` (the files that vanished during
    the transfer, for exit code 24).
    """

    def __init__(self):
        """Start with every statistic unknown."""
        for attribute in set(STATISTICS_FIELDS.values()):
            setattr(self, attribute, None)
        self.regular_files = None
        self.exit_code = None
        self.failed_files = 0
        self.vanished_files = 0

    @property
    def incomplete(self):
        """:data:`True` when rsync left out files because of errors (exit code 23), so the backup lacks them."""
        return self.exit_code == PARTIAL_TRANSFER

    @property
    def complete(self):
        """
        :data:`True` when rsync reported the numbers that the summary needs.

        :attr:`files` may be unknown: a transfer planned from the source's
        snapshots never walks the whole source (see :func:`.count_send_plan()`).
        """
        return self.transferred_files is not None and self.bytes_sent is not None

    def parse_line(self, line):
        """
        Record the statistic in one line of rsync's output.

        A file name in the output of a dry run can look like a statistic, but
        the real statistics come last, so their values are the ones that stay.

        :param line: A line of rsync's output, without its line ending (a string).
        :returns: :data:`True` when the line belongs to the statistics block
                  (recorded or not), :data:`False` otherwise.
        """
        match = STATISTICS_PATTERN.match(line)
        if match:
            label, value = match.group('label', 'value')
            if label in STATISTICS_FIELDS:
                number = re.match(r'\s*(\d[\d,.\']*)', value)
                if number:
                    setattr(self, STATISTICS_FIELDS[label], parse_number(number.group(1)))
                    if label == 'Number of files':
                        self.regular_files = parse_regular_files(value)
                    return True
            return label in IGNORED_STATISTICS
        return TOTALS_PATTERN.match(line) is not None
