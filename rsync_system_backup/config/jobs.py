"""
The jobs of a configuration file: each ``[jobs.NAME]`` table over the ``[defaults]`` table, with its keys checked.

:func:`resolve_jobs()` checks the file's layout (only ``[defaults]`` and
``[jobs.NAME]`` tables), the job names, each key's name and TOML type (see
:mod:`.config.keys`) and that every job names its destination; a
:class:`Job` holds the resolved keys of one job and where each was set.
"""

import re

from rsync_system_backup.config.keys import (
    EXPECTED,
    HOOK_TIMEOUT_KEY,
    JOB_KEYS,
    describe_value,
    has_kind,
    hint_for_unknown_key,
)

DEFAULTS_TABLE = 'defaults'
"""The table whose keys every job inherits."""

JOBS_TABLE = 'jobs'
"""The table that holds a table per job."""

JOB_NAME_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z')
"""
The names of jobs: letters, digits, ``_`` and ``-``, starting with a letter
or a digit, at most 64 characters (a bare key of TOML, so ``[jobs.NAME]``
needs no quotes, and a safe word in the environment of hooks and in metrics).
"""

DEFAULT_HOOK_TIMEOUT = 3600
"""The seconds that a hook may run when ``hook-timeout`` isn't set: one hour."""


class Job(object):

    """One job of a configuration file: its name and its keys, resolved over ``[defaults]``."""

    def __init__(self, name, settings, origins):
        """
        Record a resolved job.

        :param name: The job's name (a string).
        :param settings: The job's keys and their values (a dict, in the file's order).
        :param origins: For each key, the path of the table it was set in
                        (``('defaults',)`` or ``('jobs', NAME)``, a dict of tuples).
        """
        self.name = name
        self.settings = settings
        self.origins = origins
        self.arguments = None
        self.program_options = None

    @property
    def path(self):
        """The key path of the job's table (a tuple of strings)."""
        return (JOBS_TABLE, self.name)

    @property
    def title(self):
        """The job's table as the file writes its header (``[jobs.NAME]``)."""
        return '[%s.%s]' % self.path

    def key_path(self, key):
        """
        Give the key path of one of the job's keys, in the table that set it.

        :param key: The key (a string).
        :returns: A tuple of strings (``('defaults', KEY)`` for an inherited key).
        """
        return self.origins.get(key, self.path) + (key,)

    def hook(self, key):
        """
        Give one of the job's hooks.

        :param key: ``before``, ``after`` or ``on-error``.
        :returns: The command (a string for bash, a list of strings), or :data:`None` when the job has none.
        """
        return self.settings.get(key)

    @property
    def hook_timeout(self):
        """The seconds that each hook of the job may run (a number, :data:`DEFAULT_HOOK_TIMEOUT` by default)."""
        return self.settings.get(HOOK_TIMEOUT_KEY, DEFAULT_HOOK_TIMEOUT)

    @property
    def ping_url(self):
        """The healthchecks-style URL that the job's start and end are reported to (a string or :data:`None`)."""
        return self.settings.get('ping-url')

    @property
    def metrics_file(self):
        """The Prometheus textfile that the job's metrics are written to (a string or :data:`None`)."""
        return self.settings.get('metrics-file')


def resolve_jobs(config_file):
    """
    Resolve the jobs of a configuration file and check their keys' names and types.

    :param config_file: A :class:`.ConfigFile`.
    :returns: A tuple of the jobs (a list of :class:`Job`, in the file's
              order) and the problems found (a list of strings, one line each).
    """
    data = config_file.data
    problems = []
    for key in data:
        if key not in (DEFAULTS_TABLE, JOBS_TABLE):
            problems.append("%s: unknown table or key '%s'; the file holds a [defaults] table and a [jobs.NAME] "
                            "table per job." % (config_file.where((key,)), key))
    raw_defaults = data.get(DEFAULTS_TABLE, {})
    defaults = check_table(config_file, (DEFAULTS_TABLE,), raw_defaults, problems)
    # Keys given with a wrong type are reported as such, not as missing.
    given_defaults = set(raw_defaults) if isinstance(raw_defaults, dict) else set()
    tables = data.get(JOBS_TABLE, {})
    if not isinstance(tables, dict):
        problems.append("%s: jobs is %s: write a table [jobs.NAME] for each job."
                        % (config_file.where((JOBS_TABLE,)), describe_value(tables)))
        tables = {}
    jobs = []
    for name, table in tables.items():
        path = (JOBS_TABLE, name)
        if not isinstance(table, dict):
            problems.append("%s: jobs.%s is %s, not a table: write the job as a table [jobs.%s]."
                            % (config_file.where(path), name, describe_value(table), name))
            continue
        if not JOB_NAME_PATTERN.match(name):
            problems.append("%s: the job name %r doesn't fit: use letters, digits, '_' and '-', starting with a "
                            "letter or a digit (at most 64 characters)." % (config_file.where(path), name))
        settings = dict(defaults)
        origins = dict.fromkeys(defaults, (DEFAULTS_TABLE,))
        own = check_table(config_file, path, table, problems)
        settings.update(own)
        origins.update(dict.fromkeys(own, path))
        job = Job(name, settings, origins)
        if 'destination' not in given_defaults | set(table):
            problems.append("%s: %s has no destination: add destination = \"/mnt/backups/%s/latest\" (the "
                            "directory that receives the backup)." % (config_file.where(path), job.title, name))
        jobs.append(job)
    if not jobs and not problems:
        problems.append("%s: there are no jobs: add a table [jobs.NAME] with at least a destination (see "
                        "docs/configuration.rst)." % config_file.pathname)
    return jobs, problems


def check_table(config_file, path, table, problems):
    """
    Check the names and types of the keys of ``[defaults]`` or of a job's table.

    :param config_file: A :class:`.ConfigFile`.
    :param path: The table's key path (a tuple of strings).
    :param table: The table (a dict; anything else is a problem).
    :param problems: The list to add a line to for each problem.
    :returns: The keys that are right (a dict).
    """
    title = '[%s]' % '.'.join(path)
    if not isinstance(table, dict):
        problems.append("%s: %s is %s, not a table: write it as a table %s."
                        % (config_file.where(path), path[-1], describe_value(table), title))
        return {}
    valid = {}
    for key, value in table.items():
        where = config_file.where(path + (key,))
        if key not in JOB_KEYS:
            problems.append("%s: unknown key '%s' in %s; %s" % (where, key, title, hint_for_unknown_key(key)))
        elif not has_kind(JOB_KEYS[key], value):
            expected = EXPECTED[JOB_KEYS[key]]
            problems.append("%s: %s in %s is %s: give %s." % (where, key, title, describe_value(value), expected))
        else:
            valid[key] = value
    return valid
