"""Tests of parsing the command line (``command_line.py``) into the program's options, without running anything."""

import pytest

from rsync_system_backup.command_line import UsageError, parse_command_line


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


@pytest.mark.parametrize('option, keyword', [('--create-set', 'create_set'), ('--full-check', 'full_check')])
def test_flags_of_newer_options(option, keyword):
    """--create-set (issue 22) and --full-check (issue 23) set keywords that the Python API takes and checks."""
    from rsync_system_backup import RsyncSystemBackup
    from rsync_system_backup.exceptions import InvalidOptionError
    parsed = parse_command_line([option, '/src', '/mnt/backups/latest'], environment={})
    assert parsed.program_options[keyword] is True
    assert getattr(RsyncSystemBackup(**parsed.program_options), keyword) is True
    assert getattr(RsyncSystemBackup(destination='/mnt/backups/latest'), keyword) is False
    with pytest.raises(InvalidOptionError):
        RsyncSystemBackup(destination='/mnt/backups/latest', **{keyword: 'yes'})


def test_parse_errors_are_usage_errors():
    """Parsing raises UsageError, which main() turns into a one-line message."""
    with pytest.raises(UsageError):
        parse_command_line(['--bogus'], environment={})


@pytest.mark.parametrize('arguments, environment, value, destination', [
    (['--diff=A', '/b/latest'], {}, ('A', None), '/b/latest'),
    (['--diff', 'A', '/b/latest'], {}, ('A', None), '/b/latest'),
    (['/b/latest', '--diff', 'A'], {}, ('A', None), '/b/latest'),
    (['--diff=A:2024-05-01 13:45:00', '/b/latest'], {}, ('A', '2024-05-01 13:45:00'), '/b/latest'),
    (['--diff', 'A', 'B', '/b/latest'], {}, ('A', 'B'), '/b/latest'),
    (['--diff', '/b/latest'], {}, (None, None), '/b/latest'),
    (['--diff=/b'], {}, (None, None), '/b'),
    (['--diff=A'], dict(RSYNC_MODULE_PATH='/m/latest'), ('A', None), None),
])
def test_diff_forms(arguments, environment, value, destination):
    """--diff reads OLD[:NEW], OLD NEW and DESTINATION alone, whether its value follows '=' or a space (issue 22)."""
    parsed = parse_command_line(arguments, environment=environment)
    assert (parsed.action, parsed.action_value, parsed.program_options.get('destination')) == (
        '--diff', value, destination)


def test_diff_with_source_is_refused():
    """OLD:NEW leaves no room for NEW as a positional argument: SOURCE DESTINATION is refused as before."""
    with pytest.raises(UsageError, match='--diff takes DESTINATION alone'):
        parse_command_line(['--diff=A:2024-05-01_00-00-00', '/src', '/b/latest'], environment={})


def test_keep_forms():
    """--keep=NAME is a backup's keep_as; --keep=NAME:SNAPSHOT and --release=NAME are actions (issue 22)."""
    from rsync_system_backup import RsyncSystemBackup
    from rsync_system_backup.exceptions import InvalidOptionError
    parsed = parse_command_line(['--keep=before-upgrade', '/src', '/b/latest'], environment={})
    assert parsed.action is None and parsed.program_options['keep_as'] == 'before-upgrade'
    assert RsyncSystemBackup(**parsed.program_options).keep_as == 'before-upgrade'
    parsed = parse_command_line(['--keep=old:2024-05-01 13:45:00', '/b/latest'], environment={})
    assert (parsed.action, parsed.action_value) == ('--keep', ('old', '2024-05-01 13:45:00'))
    parsed = parse_command_line(['--release', 'old', '/b/latest'], environment={})
    assert (parsed.action, parsed.action_value) == ('--release', 'old')
    with pytest.raises(InvalidOptionError, match="keep_as must be None or a name of letters"):
        RsyncSystemBackup(destination='/b/latest', keep_as='../x')
