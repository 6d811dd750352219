"""
Tests of start-up cost: what the command imports before it answers.

``--help``, usage errors and option errors are answered by :mod:`getopt`
and a few small modules of this package; the libraries that a backup needs
(executor, coloredlogs, rotate-backups and what they import) load only when a
backup runs, or when the API's :class:`RsyncSystemBackup` is first used.
The imports are read from ``python -X importtime``, which lists every module
the process loads.
"""

import subprocess
import sys

import pytest

from rsync_system_backup.usage import USAGE_TEXT

HEAVY_PACKAGES = ('executor', 'coloredlogs', 'rotate_backups', 'humanfriendly', 'property_manager', 'proc',
                  'update_dotdee', 'dateutil', 'natsort', 'verboselogs')
"""Packages that a backup needs and that answering the command line must not load."""


def imported_modules(arguments, code=None):
    """
    Run the command (or some Python code) and list the modules it imported.

    :param arguments: Command line arguments for ``python -m rsync_system_backup`` (a list of strings).
    :param code: Python code to run instead of the command (a string), or :data:`None`.
    :returns: A tuple of the :class:`subprocess.CompletedProcess` (its stderr
              without the import lines) and the set of imported module names.
    """
    command = [sys.executable, '-X', 'importtime']
    command += ['-c', code] if code else ['-m', 'rsync_system_backup'] + arguments
    process = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
    modules = set()
    other_lines = []
    for line in process.stderr.splitlines():
        if line.startswith('import time:'):
            name = line.rpartition('|')[2].strip()
            if name != 'imported package':
                modules.add(name)
        else:
            other_lines.append(line)
    process.stderr = '\n'.join(other_lines)
    return process, modules


def heavy_modules(modules):
    """
    Pick the modules that belong to :data:`HEAVY_PACKAGES`.

    :param modules: Module names (strings).
    :returns: A sorted list of strings.
    """
    return sorted(name for name in modules if name.split('.')[0] in HEAVY_PACKAGES)


@pytest.mark.parametrize('arguments', [['--help'], ['-h'], [], ['-v', '--help', '/src', '/dst']])
def test_help_imports_nothing_heavy(arguments):
    """The usage text comes without loading the libraries a backup needs."""
    process, modules = imported_modules(arguments)
    assert process.returncode == 0, process.stderr
    assert process.stdout == USAGE_TEXT
    assert heavy_modules(modules) == []
    assert 'rsync_system_backup.backup' not in modules
    assert 'logging' not in modules, "logging is only needed for a run"


@pytest.mark.parametrize('arguments', [
    ['--no-such-option', '/dst'],
    ['--mount'],
    ['--ionice=sometimes', '/dst'],
    ['-m', '/a', '--mount=/b', '/dst'],
    ['--hourly=many', '/dst'],
    ['--daemon-port=0', '/dst'],
    ['/a', '/b', '/c'],
])
def test_errors_import_nothing_heavy(arguments):
    """Usage errors and invalid option values are reported without loading the libraries a backup needs."""
    process, modules = imported_modules(arguments)
    assert process.returncode == 1
    assert process.stderr.startswith('Error: ')
    assert heavy_modules(modules) == []


def test_package_import_is_light():
    """Importing the package (for its version, say) loads none of the libraries either."""
    process, modules = imported_modules([], code='import rsync_system_backup; print(rsync_system_backup.__version__)')
    assert process.returncode == 0, process.stderr
    assert heavy_modules(modules) == []


def test_api_still_works():
    """The API class is imported on first use, by attribute, ``from ... import`` and ``import *`` alike."""
    code = '\n'.join([
        'import rsync_system_backup',
        'from rsync_system_backup.backup import RsyncSystemBackup as Original',
        'assert rsync_system_backup.RsyncSystemBackup is Original',
        'from rsync_system_backup import RsyncSystemBackup',
        'assert RsyncSystemBackup is Original',
        'namespace = {}',
        'exec("from rsync_system_backup import *", namespace)',
        'assert namespace["RsyncSystemBackup"] is Original',
        'assert RsyncSystemBackup(destination="/mnt/backups/latest").destination.directory == "/mnt/backups/latest"',
        'print("ok")',
    ])
    process, modules = imported_modules([], code=code)
    assert process.returncode == 0, process.stderr
    assert process.stdout == 'ok\n'
    assert 'executor' in modules
