"""Tests of the command line interface: options, usage text and error handling."""

import os
import shutil
import subprocess
import sys

import pytest

from rsync_system_backup.cli import LONG_OPTIONS, UsageError, parse_command_line
from rsync_system_backup.usage import USAGE_TEXT
from support.trees import list_names


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
    (['--ionice=IDLE', '/dst'], "Invalid --ionice class 'IDLE'"),
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


UNAME_OVERRIDE = """
import os
import sys

real_uname = os.uname


def uname():
    # Only the program's own modules see the replacement, so the libraries it imports start up as usual.
    if not sys._getframe(1).f_globals.get('__name__', '').startswith('rsync_system_backup'):
        return real_uname()
%s


os.uname = uname
"""
"""A ``sitecustomize`` module that replaces :func:`os.uname()` for the program's modules (the body is filled in)."""


def override_uname(directory, body):
    """
    Make :func:`os.uname()` answer differently in the command's process (which asks it instead of running uname).

    :param directory: An empty directory for the ``sitecustomize`` module (a path).
    :param body: The indented lines that end the replacement function (a string).
    :returns: The environment variables that load the module (a dict for ``run_cli(env=...)``).
    """
    (directory / 'sitecustomize.py').write_text(UNAME_OVERRIDE % body)
    return {'PYTHONPATH': str(directory)}


def test_non_linux_platform(run_cli, tmp_path):
    """A system whose uname isn't Linux is refused unless -f is given."""
    (tmp_path / 'site').mkdir()
    env = override_uname(tmp_path / 'site', "    return os.uname_result(('Darwin',) + tuple(real_uname())[1:])")
    (tmp_path / 'source').mkdir()
    (tmp_path / 'source' / 'file').write_text('x')
    result = run_cli('--disable-notifications', tmp_path / 'source', tmp_path / 'backups' / 'latest', env=env)
    assert result.returncode == 1, result
    assert 'Aborting due to error: This program was made for Linux, not Darwin' in result.output
    assert '--force' in result.output
    assert not (tmp_path / 'backups').exists()
    forced = run_cli('--force', '--disable-notifications', tmp_path / 'source', tmp_path / 'backups' / 'latest',
                     env=env)
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
    env = override_uname(tmp_path / 'site', "    raise RuntimeError('uname is broken')")
    result = run_cli('--disable-notifications', tmp_path, tmp_path / 'backups' / 'latest', env=env)
    assert result.returncode == 1
    assert 'Aborting due to an unexpected error' in result.output
    assert 'Traceback' in result.output and 'uname is broken' in result.output


def test_verbosity(run_cli, tmp_path):
    """-v shows debug messages and -q hides informational ones."""
    (tmp_path / 'source').mkdir()
    verbose = run_cli('-v', '--disable-notifications', tmp_path / 'source', tmp_path / 'b1' / 'latest')
    assert verbose.returncode == 0 and 'DEBUG' in verbose.output
    quiet = run_cli('-q', '--disable-notifications', tmp_path / 'source', tmp_path / 'b2' / 'latest')
    assert quiet.returncode == 0 and quiet.output == ''


@pytest.mark.parametrize('arguments, expected', [
    ([], {}),
    (['-b'], dict(backup_enabled=True, snapshot_enabled=False, rotate_enabled=False)),
    (['-s'], dict(backup_enabled=False, snapshot_enabled=True, rotate_enabled=False)),
    (['-r'], dict(backup_enabled=False, snapshot_enabled=False, rotate_enabled=True)),
    (['-b', '-r'], dict(backup_enabled=True, snapshot_enabled=False, rotate_enabled=True)),
    (['--snapshot', '--rotate'], dict(backup_enabled=False, snapshot_enabled=True, rotate_enabled=True)),
    (['-bsr'], dict(backup_enabled=True, snapshot_enabled=True, rotate_enabled=True)),
])
def test_explicit_actions(arguments, expected):
    """Naming any of -b, -s and -r runs only the steps named."""
    parsed = parse_command_line(arguments + ['/dst'], environment={})
    actions = dict((name, value) for name, value in parsed.program_options.items() if name.endswith('_enabled'))
    assert actions == expected


def test_option_values():
    """Every option with a value lands in the right keyword argument."""
    parsed = parse_command_line([
        '-m', '/mnt/backup', '-c', 'backup-disk', '-i', 'idle', '-u', '-n', '--multi-fs', '-x', 'a', '-x', 'b',
        '-f', '--disable-notifications', '-v', '-v', '-q', '/src', '/mnt/backup/latest',
    ], environment={})
    assert parsed.program_options == dict(
        mount_point='/mnt/backup', crypto_device='backup-disk', ionice='idle', sudo_enabled=False, dry_run=True,
        multi_fs=True, exclude_list=['a', 'b'], force=True, notifications_enabled=False,
        source='/src', destination='/mnt/backup/latest',
    )
    assert parsed.verbosity == 1


def test_parse_errors_are_usage_errors():
    """Parsing raises UsageError, which main() turns into a one-line message."""
    with pytest.raises(UsageError):
        parse_command_line(['--bogus'], environment={})
