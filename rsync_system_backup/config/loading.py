"""
Loading a configuration file: every check of the whole file, before any job runs.

:func:`load_jobs()` reads the file (:mod:`.config.toml_file`), resolves and
checks its jobs (:mod:`.config.jobs`, :mod:`.config.arguments`), refuses two
jobs that write one backup set, and picks the jobs that ``--job`` names. A
file with any problem raises :exc:`.ConfigError` with all of them, so a
normal run and ``--check-config`` refuse the same files.
"""

import posixpath

from rsync_system_backup.command_line import expand_home
from rsync_system_backup.config.arguments import parse_job
from rsync_system_backup.config.jobs import resolve_jobs
from rsync_system_backup.config.toml_file import read_config_file
from rsync_system_backup.exceptions import ConfigError, RsyncSystemBackupError


def load_jobs(pathname, selected=()):
    """
    Read a configuration file, check all of it, and give the jobs to run.

    :param pathname: The file's pathname (a string).
    :param selected: The names of the jobs to run (strings, from ``--job``), or nothing for every job.
    :returns: The jobs (a list of :class:`.Job`, in the file's order), each with its ``arguments`` and
              ``program_options``.
    :raises: :exc:`.ConfigError` with every problem found.
    """
    config_file = read_config_file(pathname)
    jobs, problems = resolve_jobs(config_file)
    for job in jobs:
        problems.extend(parse_job(config_file, job))
    problems.extend(find_shared_sets(config_file, jobs))
    names = [job.name for job in jobs]
    for name in selected:
        if name not in names and jobs:
            problems.append("--job=%s: %s has no job %s; its jobs are %s." % (name, pathname, name, ', '.join(names)))
    if problems:
        # A key of [defaults] that is wrong is wrong for every job: say it once.
        raise ConfigError(list(dict.fromkeys(problems)))
    return [job for job in jobs if not selected or job.name in selected]


def find_shared_sets(config_file, jobs):
    """
    Find jobs that write the same backup set (the directory that holds a destination's ``latest`` and snapshots).

    :param config_file: The :class:`.ConfigFile` (for the lines in the messages).
    :param jobs: The jobs (a list of :class:`.Job`).
    :returns: The problems (a list of strings): one for each job whose set an earlier job writes.
    """
    problems = []
    writers = {}
    for job in jobs:
        identity = identify_backup_set(job.settings.get('destination'))
        if identity is None:
            continue
        if identity in writers:
            first = writers[identity]
            problems.append(
                "%s: %s writes the backup set %s, as %s does (%s): give each job a set of its own, such as "
                "%s/%s/latest (their snapshots and rotations would mix)."
                % (config_file.where(job.key_path('destination')), job.title, identity[-1], first.title,
                   config_file.where(first.key_path('destination')), identity[-1], job.name))
        else:
            writers[identity] = job
    return problems


def identify_backup_set(expression):
    """
    Tell which backup set a destination writes.

    :param expression: The destination (a string), or :data:`None`.
    :returns: A tuple of the host (lower case), the daemon's port and module,
              and the set's directory (normalized), or :data:`None` for a
              destination that isn't there or can't be parsed.
    """
    from rsync_system_backup.destinations import Destination
    if not isinstance(expression, str):
        return None
    try:
        destination = Destination(expression=expand_home(expression))
        directory = destination.parent_directory
    except RsyncSystemBackupError:
        return None
    return destination.ssh_alias.lower(), destination.port_number, destination.module, posixpath.normpath(directory)
