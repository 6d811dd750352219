#!/usr/bin/env python3
"""
Show when each command of one rsync-system-backup run starts and ends.

Usage: python benchmarks/timeline.py [--full FILE] ARGUMENTS...

Runs rsync-system-backup with ARGUMENTS (the build that this Python imports)
in this process, watching :class:`subprocess.Popen`, and prints at the end,
for every command the run started: when it started and ended (milliseconds
since this script began), how long it took, and its command line cut to one
line. Where the fixed cost of a run goes shows at a glance: the imports
before the first command, the commands on an SSH destination one after
another (each a round trip), the gaps in between (work in this process).
A command that is never waited for (one that outlives the run) isn't listed.

--full FILE appends every command line in full to FILE, one per line.
"""

import subprocess
import sys
import time

STARTED = time.monotonic()
"""When this script began (the moment the times are counted from)."""

WIDTH = 100
"""How many characters of each command line the table shows."""


class Timeline(object):

    """Records when the commands that :class:`subprocess.Popen` starts begin and end."""

    def __init__(self):
        """Start watching :class:`subprocess.Popen`."""
        self.events = []
        self.original_init = subprocess.Popen.__init__
        self.original_wait = subprocess.Popen.wait
        timeline = self

        def init(process, args, *positional, **options):
            process.timeline_start = time.monotonic()
            timeline.original_init(process, args, *positional, **options)

        def wait(process, *positional, **options):
            returncode = timeline.original_wait(process, *positional, **options)
            if not getattr(process, 'timeline_end', None):
                process.timeline_end = time.monotonic()
                timeline.events.append((process.timeline_start, process.timeline_end, process.args))
            return returncode

        subprocess.Popen.__init__ = init
        subprocess.Popen.wait = wait

    def stop(self):
        """Stop watching."""
        subprocess.Popen.__init__ = self.original_init
        subprocess.Popen.wait = self.original_wait

    def report(self, stream, full=None):
        """
        Print the table.

        :param stream: Where to print it (a text stream).
        :param full: A text stream for the full command lines, or :data:`None`.
        """
        stream.write('%8s %8s %8s  %s\n' % ('start', 'end', 'ms', 'command'))
        for start, end, args in sorted(self.events, key=lambda event: event[0]):
            text = args if isinstance(args, str) else ' '.join(map(str, args))
            times = ((start - STARTED) * 1000, (end - STARTED) * 1000, (end - start) * 1000)
            stream.write('%8.1f %8.1f %8.1f  %s\n' % (times + (' '.join(text.split())[:WIDTH],)))
            if full is not None:
                full.write(repr(args) + '\n')
        stream.write('total %.1f ms\n' % ((time.monotonic() - STARTED) * 1000))


def main(arguments):
    """
    Run rsync-system-backup under a :class:`Timeline` and print the table on standard error.

    :param arguments: This script's arguments (a list of strings).
    :returns: The run's exit code.
    """
    full = None
    if arguments[:1] == ['--full']:
        full = open(arguments[1], 'a')
        arguments = arguments[2:]
    timeline = Timeline()
    from rsync_system_backup.cli import main as run
    try:
        run(arguments)
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    finally:
        timeline.stop()
        timeline.report(sys.stderr, full)
        if full is not None:
            full.close()
    return code


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
