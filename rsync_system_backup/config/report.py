"""
What ``--check-config`` prints: each job's resolved settings, as TOML, and the command line that runs it.

Each job's table shows every key it has, the ones that it inherits from
``[defaults]`` marked so, ``hook-timeout`` with its default when the job
has hooks, and the command line that the job's keys make.
"""

import json

from rsync_system_backup.config.arguments import format_command_line
from rsync_system_backup.config.jobs import DEFAULTS_TABLE
from rsync_system_backup.config.keys import HOOK_KEYS, HOOK_TIMEOUT_KEY, JOB_KEYS


def format_jobs(pathname, jobs):
    """
    Describe the jobs of a configuration file that passed every check.

    :param pathname: The file's pathname (a string).
    :param jobs: The jobs to show (a list of :class:`.Job`).
    :returns: The text (a string that ends in a newline).
    """
    lines = ["# %s: no problems found; %s." % (pathname, count_jobs(len(jobs)))]
    for job in jobs:
        lines.extend(['', job.title] + format_settings(job))
        lines.append("# runs: %s" % format_command_line(job.arguments))
    return '\n'.join(lines) + '\n'


def count_jobs(count):
    """Say how many jobs run (``1 job``, ``2 jobs``; a string)."""
    return "%i job%s" % (count, '' if count == 1 else 's')


def format_settings(job):
    """
    Give a job's keys as TOML lines, in the order of :data:`.JOB_KEYS`.

    :param job: A :class:`.Job`.
    :returns: A list of strings.
    """
    settings = dict(job.settings)
    if any(key in settings for key in HOOK_KEYS):
        settings.setdefault(HOOK_TIMEOUT_KEY, job.hook_timeout)
    lines = []
    for key in JOB_KEYS:
        if key in settings:
            line = '%s = %s' % (key, format_value(settings[key]))
            if key not in job.settings:
                line += '  # the default'
            elif job.origins[key] == (DEFAULTS_TABLE,):
                line += '  # from [defaults]'
            lines.append(line)
    return lines


def format_value(value):
    """
    Write a value in TOML's syntax.

    :param value: A string, boolean, number or list of strings.
    :returns: A string.
    """
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list):
        return '[%s]' % ', '.join(map(format_value, value))
    # TOML's basic strings take JSON's escapes; numbers are written alike.
    return json.dumps(value, ensure_ascii=False)
