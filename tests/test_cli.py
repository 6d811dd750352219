"""Tests of the command line interface: options, usage text and error handling."""

import os
import shutil
import subprocess
import sys

import pytest

from rsync_system_backup.command_line import LONG_OPTIONS
from rsync_system_backup.transfer.command import DEFAULT_EXCLUDED_ROOTS
from rsync_system_backup.usage import USAGE_TEXT
from support.stand_ins import log_arguments, real_program
from support.trees import list_names, read_tree


@pytest.mark.parametrize('arguments', [['-h'], ['--help'], [], ['-v', '--help', '/src', '/dst']])
def test_usage_text(run_cli, arguments):
    """-h, --help and a command line without DESTINATION show the usage text and exit 0."""
    result = run_cli(*arguments)
    assert result.returncode == 0, result
    assert result.stdout == USAGE_TEXT
    assert result.stderr == ''


def test_usage_text_lists_every_option():
    """Every option that getopt accepts is explained in the usage text."""
    for option in LONG_OPTIONS:
        assert '--' + option.rstrip('=') in USAGE_TEXT


def test_help_lists_the_default_excludes(run_cli):
    """--help names every path that a backup always leaves out, in the description of -x."""
    help_text = run_cli('--help').stdout
    exclude_section = help_text[help_text.index('  -x, --exclude=PATTERN'):help_text.index('  --show-excludes')]
    listed = exclude_section.split('\n\n')[1].split()
    assert listed == list(DEFAULT_EXCLUDED_ROOTS)
    assert {'/tmp/', '/var/cache/', '/home/*/.cache/'} <= set(listed)


def test_show_excludes_changes_nothing(run_cli, tmp_path, fake_bin):
    """
    --show-excludes prints the default excludes, the backup inside SOURCE and the -x patterns, one a line.

    It exits 0 without running rsync or creating anything, and the patterns are what a backup then leaves out.
    """
    rsync_calls = tmp_path / 'rsync-calls'
    log_arguments(fake_bin / 'rsync', rsync_calls, real_program('rsync'))
    source = tmp_path / 'source'
    (source / 'images').mkdir(parents=True)
    (source / 'notes.txt').write_text('kept')
    (source / 'images' / 'disk.iso').write_text('left out')
    destination = source / 'backups' / 'latest'
    arguments = ['-x', '*.iso', '--exclude=/scratch/', source, destination]
    result = run_cli('--show-excludes', *arguments)
    assert result.returncode == 0, result
    assert result.stderr == ''
    expected = list(DEFAULT_EXCLUDED_ROOTS) + ['%s/' % (source / 'backups'), '*.iso', '/scratch/']
    assert result.stdout.splitlines() == expected
    assert list(rsync_calls.iterdir()) == []
    assert read_tree(source) == {'notes.txt': 'kept', 'images/disk.iso': 'left out'}
    assert list_names(source) == ['images', 'notes.txt']
    (source / 'scratch').mkdir()
    (source / 'scratch' / 'temporary').write_text('left out')
    backup = run_cli('--disable-notifications', *arguments)
    assert backup.returncode == 0, backup
    assert read_tree(destination) == {'notes.txt': 'kept'}
    assert list_names(destination) == ['images', 'notes.txt']


@pytest.mark.parametrize('arguments, extra', [
    ([], []),
    (['-x', 'cache/'], ['cache/']),
    (['--list', '-x', 'a', '-x', 'b', '/nonexistent/latest'], ['/nonexistent/', 'a', 'b']),
    (['rsync://server/module'], []),
])
def test_show_excludes_needs_no_destination(run_cli, tmp_path, arguments, extra):
    """
    Without DESTINATION the defaults and the -x patterns are shown; an action given along isn't run.

    A local DESTINATION lies inside the default SOURCE, /, so it is left out; a remote one isn't.
    """
    result = run_cli('--show-excludes', *arguments, env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert result.stderr == ''
    assert result.stdout == ''.join(pattern + '\n' for pattern in list(DEFAULT_EXCLUDED_ROOTS) + extra)
    assert list_names(tmp_path) == ['fake-bin']


def test_show_excludes_refuses_bad_input(run_cli):
    """--show-excludes checks what it is given, with one line and exit code 1."""
    for arguments, message in [
        (['-x', 'a\nb'], "Error: The exclude pattern 'a\\nb' contains a line break"),
        (['-x', '!'], "Error: Invalid --exclude: the exclude pattern '!' makes rsync forget every exclude before it"),
        (['--', '/src', '-bad:/x'], "Error: The destination '-bad:/x' names the host '-bad', which starts with '-'"),
    ]:
        result = run_cli('--show-excludes', *arguments)
        assert result.returncode == 1, result
        assert result.stdout == ''
        assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result


def test_readme_shows_usage_text():
    """README.rst quotes the usage text as it is, so they never drift apart."""
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.rst')
    with open(readme) as handle:
        text = handle.read()
    indented = '\n'.join(('   ' + line) if line else '' for line in USAGE_TEXT.splitlines())
    assert indented in text


def test_console_script(tmp_path):
    """The installed rsync-system-backup command answers --help."""
    program = shutil.which('rsync-system-backup', path=os.path.dirname(sys.executable))
    assert program, "rsync-system-backup is not installed next to %s" % sys.executable
    output = subprocess.check_output([program, '--help'])
    assert output.decode() == USAGE_TEXT


@pytest.mark.parametrize('arguments, message', [
    (['--no-such-option', '/dst'], 'option --no-such-option not recognized'),
    (['-Z', '/dst'], 'option -Z not recognized'),
    (['--mount'], 'option --mount requires argument'),
    (['-i', 'sometimes', '/dst'], "Invalid --ionice class 'sometimes'"),
    (['--ionice=never', '/dst'], "Invalid --ionice class 'never'"),
    (['-m', '/a', '--mount=/b', '/dst'], 'The option --mount was given twice'),
    (['-n', '--dry-run', '/dst'], 'The option --dry-run was given twice'),
    (['-c', '', '/dst'], '--crypto is empty'),
    (['-x', 'a\nb', '/src', '/dst'], 'contains a line break'),
    (['-x', '', '/src', '/dst'], '--exclude is empty'),
    (['/a', '/b', '/c'], 'Expected [SOURCE] DESTINATION, got 3 arguments'),
    (['/src', ''], 'DESTINATION is empty'),
])
def test_usage_errors(run_cli, tmp_path, arguments, message):
    """Bad command lines get one line starting with 'Error:', exit code 1 and no traceback."""
    result = run_cli(*arguments)
    assert result.returncode == 1, result
    assert result.stdout == ''
    assert result.stderr.startswith('Error: ')
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('make_source, message', [
    (lambda tmp: tmp / 'missing', "doesn't exist"),
    (lambda tmp: tmp / 'a-file', 'is not a directory'),
])
def test_invalid_source(run_cli, tmp_path, make_source, message):
    """A SOURCE that isn't a directory is refused before rsync runs or anything is written."""
    (tmp_path / 'a-file').write_text('x')
    source = make_source(tmp_path)
    result = run_cli('--disable-notifications', source, tmp_path / 'backups' / 'latest')
    assert result.returncode == 1, result
    assert 'Aborting due to error: The source %s %s' % (source, message) in result.output
    assert 'Traceback' not in result.output
    assert not (tmp_path / 'backups').exists()


def test_unparsable_destination(run_cli, tmp_path):
    """An unparsable DESTINATION is an error without a traceback."""
    result = run_cli('--disable-notifications', tmp_path, 'rsync://server:port/module')
    assert result.returncode == 1, result
    assert "Aborting due to error: The port 'port'" in result.output
    assert 'Traceback' not in result.output


BROKEN_REALPATH = """
import os.path
import sys

real_realpath = os.path.realpath


def realpath(*args, **kw):
    # Only the program's own modules see the failure, so the libraries it imports start up as usual.
    if sys._getframe(1).f_globals.get('__name__', '').startswith('rsync_system_backup'):
        raise RuntimeError('realpath is broken')
    return real_realpath(*args, **kw)


os.path.realpath = realpath
"""
"""A ``sitecustomize`` module that makes :func:`os.path.realpath()` fail in the program's own modules."""


def test_non_linux_platform(run_cli, tmp_path, fake_bin):
    """A system whose ``uname`` (the first on ``$PATH``, as in 1.1) isn't Linux is refused unless -f is given."""
    uname = fake_bin / 'uname'
    uname.write_text('#!/bin/sh\necho Darwin\n')
    uname.chmod(0o755)
    (tmp_path / 'source').mkdir()
    (tmp_path / 'source' / 'file').write_text('x')
    result = run_cli('--disable-notifications', tmp_path / 'source', tmp_path / 'backups' / 'latest')
    assert result.returncode == 1, result
    assert 'Aborting due to error: This program was made for Linux, not Darwin' in result.output
    assert '--force' in result.output
    assert not (tmp_path / 'backups').exists()
    forced = run_cli('--force', '--disable-notifications', tmp_path / 'source', tmp_path / 'backups' / 'latest')
    assert forced.returncode == 0, forced
    assert 'Running on Darwin, which is not supported (forced)' in forced.output
    assert (tmp_path / 'backups' / 'latest' / 'file').exists()


def test_destination_from_module_path(run_cli, tmp_path):
    """Without DESTINATION, $RSYNC_MODULE_PATH is snapshotted (as in an rsync daemon's post-xfer exec)."""
    module = tmp_path / 'module' / 'latest'
    module.mkdir(parents=True)
    (module / 'file').write_text('x')
    result = run_cli('--disable-notifications', '--snapshot', '--rotate', env={'RSYNC_MODULE_PATH': str(module)})
    assert result.returncode == 0, result
    names = list_names(tmp_path / 'module')
    assert len(names) == 2 and names[1] == 'latest'
    assert (tmp_path / 'module' / names[0] / 'file').exists()


def test_unexpected_error_has_traceback(run_cli, tmp_path):
    """An error that isn't a known problem shows a traceback, so it can be reported."""
    (tmp_path / 'site').mkdir()
    (tmp_path / 'site' / 'sitecustomize.py').write_text(BROKEN_REALPATH)
    result = run_cli('--disable-notifications', tmp_path, tmp_path / 'backups' / 'latest',
                     env={'PYTHONPATH': str(tmp_path / 'site')})
    assert result.returncode == 1
    assert 'Aborting due to an unexpected error' in result.output
    assert 'Traceback' in result.output and 'realpath is broken' in result.output


def test_verbosity(run_cli, tmp_path):
    """-v shows verbose messages (not debug ones, which -vv adds) and -q hides informational ones."""
    (tmp_path / 'source').mkdir()
    verbose = run_cli('-v', '--disable-notifications', tmp_path / 'source', tmp_path / 'b1' / 'latest')
    assert verbose.returncode == 0, verbose
    assert ' VERBOSE ' in verbose.output and ' INFO ' in verbose.output
    assert ' DEBUG ' not in verbose.output and 'Popen' not in verbose.output
    debug = run_cli('-vv', '--disable-notifications', tmp_path / 'source', tmp_path / 'b1' / 'latest')
    assert debug.returncode == 0 and ' DEBUG ' in debug.output
    quiet = run_cli('-q', '--disable-notifications', tmp_path / 'source', tmp_path / 'b2' / 'latest')
    assert quiet.returncode == 0 and quiet.output == ''


@pytest.mark.parametrize('arguments', [['-r'], ['-v'], ['--dry-run', '--disable-notifications']])
def test_missing_destination_is_an_error(run_cli, arguments):
    """Options without DESTINATION (an empty variable in a cron line) fail with one line, not the help and 0."""
    result = run_cli(*arguments)
    assert result.returncode == 1, result
    assert result.stdout == ''
    assert result.stderr == ("Error: No DESTINATION given (and $RSYNC_MODULE_PATH is not set): give the directory "
                             "that receives the backup, for example /mnt/backups/latest (see --help).\n")


def test_version(run_cli):
    """--version shows the version and exits 0."""
    from rsync_system_backup import __version__
    result = run_cli('--version')
    assert result.returncode == 0, result
    assert result.stdout == 'rsync-system-backup %s\n' % __version__


def test_home_directory_is_expanded(run_cli, tmp_path):
    """~ in SOURCE, DESTINATION and after --log-file= (where the shell leaves it alone) is the home directory."""
    (tmp_path / 'source').mkdir()
    (tmp_path / 'source' / 'file').write_text('x')
    result = run_cli('--disable-notifications', '--log-file=~/backup.log', '~/source', '~/backups/latest',
                     env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert (tmp_path / 'backups' / 'latest' / 'file').exists()
    assert 'INFO Backup to %s done' % (tmp_path / 'backups' / 'latest') in (tmp_path / 'backup.log').read_text()


def test_ionice_class_in_any_case(run_cli, tmp_path):
    """-i/--ionice takes the class in any case and with blanks around it, as 1.1 did."""
    (tmp_path / 'source').mkdir()
    result = run_cli('--ionice= IDLE', '--disable-notifications', tmp_path / 'source', tmp_path / 'backups' / 'latest')
    assert result.returncode == 0, result
