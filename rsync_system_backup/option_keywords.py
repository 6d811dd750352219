"""
The command line's options and the keyword arguments of :class:`.RsyncSystemBackup` they set: one table, two readers.

:data:`OPTION_KEYWORDS` is the table. :func:`document_option_keywords()`
ends the class's docstring with it, so ``help(RsyncSystemBackup)`` shows it,
and the ``.. option-keywords::`` directive of ``docs/conf.py`` puts it on the
API page; ``tests/test_docs.py`` checks it against the parser of the
command line and the class's properties.
"""

import inspect
import textwrap

OPTION_KEYWORDS = (
    ('SOURCE', 'source', "The directory to back up (a string, '/' by default)."),
    ('DESTINATION', 'destination',
     "The rsync location (a string or a Destination; $RSYNC_MODULE_PATH by default)."),
    ('-b, --backup', 'backup_enabled',
     "True. The command line turns off the steps that -b, -s and -r don't name; from Python give False to the "
     "steps to skip (all three are True by default)."),
    ('-s, --snapshot', 'snapshot_enabled', "True (see -b)."),
    ('-r, --rotate', 'rotate_enabled', "True (see -b)."),
    ('--snapshot-method=METHOD', 'snapshot_method',
     "'auto' (the default), 'btrfs', 'reflink', 'safe-hardlink', 'link-dest' or 'hardlink'."),
    ('--source-snapshot=MODE', 'source_snapshot',
     "'auto' (the default: rsync reads a read-only snapshot of a SOURCE that is a btrfs subvolume) or 'never'."),
    ('--full-check', 'full_check', "True."),
    ('--minutely=N, --hourly=N, --daily=N, --weekly=N, --monthly=N, --yearly=N', 'rotation_scheme',
     "A dict from frequency to N, such as ``dict(daily=30, yearly='always')``: the options change the default "
     "scheme (``DEFAULT_ROTATION_SCHEME``), the keyword replaces it, so a frequency it leaves out keeps nothing."),
    ('--prefer-recent', 'prefer_recent', "True."),
    ('--relaxed', 'strict', "False."),
    ('-m, --mount=DIRECTORY', 'mount_point', "The directory (a string)."),
    ('-c, --crypto=NAME', 'crypto_device', "The name in /etc/crypttab (a string)."),
    ('-t, --tunnel=[USER@]HOST[:PORT]', 'tunnel', "The same string, or an executor ``SecureTunnel``."),
    ('--daemon-port=PORT', 'daemon_port', "The port (an integer)."),
    ('--password-file=FILE', 'password_file', "The pathname (a string)."),
    ('--log-file=FILE', None, "No keyword: add a ``logging.FileHandler`` to the ``rsync_system_backup`` logger."),
    ('-i, --ionice=CLASS', 'ionice', "'idle', 'best-effort' or 'realtime'."),
    ('-u, --no-sudo', 'sudo_enabled', "False."),
    ('-n, --dry-run', 'dry_run', "True."),
    ('--multi-fs', 'multi_fs', "True."),
    ('-x, --exclude=PATTERN, --exclude-from=FILE', 'exclude_list',
     "The patterns (a list of strings); --exclude-from adds the patterns of FILE (one per line) in its place."),
    ('(no option)', 'excluded_roots',
     "The absolute paths that every backup leaves out (a list of strings, ``DEFAULT_EXCLUDED_ROOTS`` by default)."),
    ('--show-excludes', None,
     "No keyword: the method ``excluded_paths()`` gives ``excluded_roots``, the backup's own directory "
     "inside SOURCE and the directory of SOURCE's snapshots; ``exclude_list`` follows them."),
    ('--accept-existing', 'accept_existing', "True."),
    ('--create-set', 'create_set', "True."),
    ('--wait', 'wait_for_lock', "True."),
    ('-f, --force', 'force', "True."),
    ('--disable-notifications', 'notifications_enabled', "False."),
    ('--no-manifest, --manifest', 'manifests_enabled', "False (--no-manifest); True (--manifest, the default)."),
    ('-v, --verbose, -q, --quiet', None, "No keyword: set the level of the ``rsync_system_backup`` logger."),
    ('(-v with -n)', 'list_changes',
     "True (the default) to let a dry run list every change, as version 1.1 did; the command line does so with "
     "-v and otherwise has a dry run sum the changes up."),
    ('(a terminal)', 'show_progress',
     "True to show rsync's progress on standard error (the command line does so on a terminal, unless -q)."),
    ('($RSYNC_EXIT_STATUS)', 'daemon_exit_status',
     "The exit status of an rsync daemon's transfer (an integer; $RSYNC_EXIT_STATUS by default)."),
    ('(no option)', 'source_context', "The execution context that rsync runs in (this system by default)."),
    ('--keep=NAME[:SNAPSHOT]', 'keep_as',
     "The name (a string) under which rotation keeps the run's snapshot for good; --keep=NAME:SNAPSHOT (an "
     "existing snapshot) is an action, see the row of --list."),
    ('--release=NAME', None, "No keyword: an action (see the row of --list), which lets a kept snapshot go again."),
    ('--list, --json, --verify, --verify-all, --diff=OLD[:NEW], --max-age=DURATION', None,
     "No keyword: ``rsync_system_backup.actions.dispatch.run_action(OPTION, VALUE, KEYWORDS)`` runs them "
     "(KEYWORDS is a dict of these keyword arguments; see its description for VALUE)."),
    ('--config=FILE, --job=NAME, --check-config', None,
     "No keyword: ``rsync_system_backup.config.loading.load_jobs(FILE, NAMES)`` gives the jobs of FILE, each with "
     "its keyword arguments as ``program_options``."),
    ('(the after key of a job)', 'after_snapshot',
     "A function that gets the RsyncSystemBackup object after the snapshot step, before rotation."),
    ('--version', None, "No keyword: ``rsync_system_backup.__version__``."),
    ('-h, --help', None, "No keyword: ``help(RsyncSystemBackup)`` shows this table."),
)
"""
Each option of the command line with the keyword argument of :class:`.RsyncSystemBackup` it sets.

Tuples of three strings: the options (or, in parentheses, where the value
comes from when no option sets it), the keyword (:data:`None` when there is
none), and the value that the option stands for.
"""

TABLE_HEADINGS = ('Command line', 'Keyword argument', 'Value')
"""The headings of the table's columns."""

OPTIONS_WIDTH = 32
"""The width of the table's first column (an option longer than this gets a line of its own, as wide as it)."""

VALUE_WIDTH = 56
"""The width of the table's last column."""

NO_KEYWORD = '(none)'
"""What the keyword column shows for an option without a keyword."""


def format_option_table():
    """
    Render :data:`OPTION_KEYWORDS` as a reStructuredText grid table, which reads as plain text too.

    :returns: The table (a string of lines that end in newlines).
    """
    cells = [(wrap_options(options), [keyword or NO_KEYWORD], textwrap.wrap(value, VALUE_WIDTH, break_on_hyphens=False))
             for options, keyword, value in OPTION_KEYWORDS]
    headings = [[heading] for heading in TABLE_HEADINGS]
    widths = [max(len(line) for row in [headings] + cells for line in row[column]) for column in range(3)]
    lines = [grid_border(widths, '-')] + grid_row(widths, headings)
    lines.append(grid_border(widths, '='))
    for row in cells:
        lines.extend(grid_row(widths, row))
        lines.append(grid_border(widths, '-'))
    return ''.join(line + '\n' for line in lines)


def wrap_options(options):
    """
    Wrap a cell of the first column after its commas, keeping each short option with its long form.

    :param options: The cell (a string such as ``'-m, --mount=DIRECTORY'``).
    :returns: A list of lines (strings) no longer than :data:`OPTIONS_WIDTH`, but for a single long option.
    """
    pieces = []
    for part in options.split(', '):
        if pieces and pieces[-1].startswith('-') and not pieces[-1].startswith('--'):
            pieces[-1] += ', ' + part
        else:
            pieces.append(part)
    lines = [pieces[0]]
    for piece in pieces[1:]:
        if len(lines[-1]) + len(', ') + len(piece) <= OPTIONS_WIDTH:
            lines[-1] += ', ' + piece
        else:
            lines[-1] += ','
            lines.append(piece)
    return lines


def grid_border(widths, character):
    """
    Draw a border line of a grid table.

    :param widths: The widths of the columns (integers).
    :param character: ``-`` between rows, ``=`` below the headings.
    :returns: The line (a string).
    """
    return '+' + '+'.join(character * (width + 2) for width in widths) + '+'


def grid_row(widths, cells):
    """
    Draw the lines of one row of a grid table.

    :param widths: The widths of the columns (integers).
    :param cells: The lines of text of each column (lists of strings).
    :returns: A list of lines (strings).
    """
    height = max(len(lines) for lines in cells)
    return ['| ' + ' | '.join((lines[number] if number < len(lines) else '').ljust(width)
                              for lines, width in zip(cells, widths)) + ' |'
            for number in range(height)]


def document_option_keywords(cls):
    """
    Class decorator that ends a class's docstring with the table (under ``python -OO`` there is none to end).

    :param cls: The class (:class:`.RsyncSystemBackup`).
    :returns: The same class.
    """
    if cls.__doc__:
        cls.__doc__ = '%s\n\n%s' % (inspect.cleandoc(cls.__doc__), format_option_table())
    return cls
