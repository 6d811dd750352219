"""Tests of :mod:`rsync_system_backup.checks.values`: every property of the Python API checks its value when set."""

import pathlib

import pytest
from executor.contexts import LocalContext

from rsync_system_backup import RsyncSystemBackup
from rsync_system_backup.destinations import Destination
from rsync_system_backup.exceptions import InvalidOptionError, RsyncSystemBackupError
from rsync_system_backup.checks.values import PROPERTY_CHECKS
from support.trees import write_file


def test_string_exclude_list_is_refused(tmp_path):
    """The issue's call: a string as exclude_list fails at once, with nothing written, instead of an empty backup."""
    write_file(tmp_path / 'source' / 'data.dat', b'x')
    with pytest.raises(InvalidOptionError) as raised:
        RsyncSystemBackup(source=str(tmp_path / 'source'), destination=str(tmp_path / 'backups' / 'latest'),
                          exclude_list='*.dat').execute()
    assert "exclude_list must be a list of strings (write ['*.dat'] for one pattern)" in str(raised.value)
    assert not (tmp_path / 'backups').exists()


@pytest.mark.parametrize('name, value, message', [
    ('exclude_list', ['ok', 3], 'exclude_list must be a list of non-empty strings'),
    ('exclude_list', ['*.iso', '!'], "exclude_list: the exclude pattern '!' makes rsync forget every exclude"),
    ('excluded_roots', '/proc', 'excluded_roots must be a list of strings'),
    ('dry_run', 'no', "dry_run must be True or False, not 'no' (str)"),
    ('backup_enabled', 2, 'backup_enabled must be True or False'),
    ('ionice', 'sometimes', 'ionice must be None or one of idle, best-effort, realtime'),
    ('rotation_scheme', [('daily', 7)], 'rotation_scheme must be a dict'),
    ('rotation_scheme', {'daily': -1}, 'Invalid number of daily snapshots -1'),
    ('rotation_scheme', {'fortnightly': 2}, "Unknown rotation frequency 'fortnightly'"),
    ('destination', 42, 'destination must be a string or a Destination, not 42 (int)'),
    ('source', '', "source must be a non-empty string, not ''"),
    ('source', None, 'source must be a non-empty string, not None'),
    ('mount_point', 5, 'mount_point must be a non-empty string'),
    ('crypto_device', b'disk', 'crypto_device must be a non-empty string'),
    ('daemon_port', 70000, 'daemon_port must be None or a whole number from 1 to 65535'),
    ('daemon_port', '873', 'daemon_port must be None or a whole number'),
    ('source_context', 'localhost', 'source_context must be an executor execution context'),
    ('tunnel', 22, 'tunnel must be a non-empty string'),
    ('snapshot_method', None, 'snapshot_method must be a non-empty string'),
])
def test_bad_values_are_refused(tmp_path, name, value, message):
    """Each property refuses values of the wrong type or out of range, in the constructor and on assignment."""
    with pytest.raises(InvalidOptionError) as raised:
        RsyncSystemBackup(**dict({'destination': str(tmp_path / 'latest')}, **{name: value}))
    assert message in str(raised.value)
    assert isinstance(raised.value, RsyncSystemBackupError)
    program = RsyncSystemBackup(destination=str(tmp_path / 'latest'))
    with pytest.raises(InvalidOptionError):
        setattr(program, name, value)


def test_types_of_version_1_1_are_accepted(tmp_path):
    """Lists and tuples, dicts, booleans, ionice's names, strings, paths and Destination objects all still work."""
    program = RsyncSystemBackup(
        source=pathlib.Path(tmp_path), destination=Destination(expression=str(tmp_path / 'latest')),
        exclude_list=('*.tmp', '/var/cache/'), excluded_roots=['/proc/'], rotation_scheme={'daily': 7},
        dry_run=True, multi_fs=False, ionice='idle', crypto_device=None, mount_point='/mnt', daemon_port=None,
        source_context=LocalContext(),
    )
    assert program.source == str(tmp_path)
    assert program.exclude_list == ['*.tmp', '/var/cache/']
    assert program.destination.directory == str(tmp_path / 'latest')
    program.destination = str(tmp_path / 'other')
    assert program.destination.directory == str(tmp_path / 'other')
    program.ionice = '3'
    program.rotation_scheme = dict(hourly=24, monthly='always')


def test_loose_values_of_version_1_1_are_normalised(tmp_path):
    """1 and 0 for booleans, '' for an unset mount point or crypttab target, any collection of patterns, 'Idle '."""
    program = RsyncSystemBackup(destination=str(tmp_path / 'latest'), dry_run=1, multi_fs=0, mount_point='',
                                crypto_device='', exclude_list={'*.tmp'}, ionice=' Idle ')
    assert program.dry_run is True and program.multi_fs is False
    assert program.mount_point is None and program.crypto_device is None
    assert program.exclude_list == ['*.tmp']
    assert program.ionice == 'idle'


def test_every_setting_is_checked():
    """Every writable setting of RsyncSystemBackup has a check (the summary aside): add new ones to PROPERTY_CHECKS."""
    settings = set(name for name in dir(RsyncSystemBackup)
                   if getattr(getattr(RsyncSystemBackup, name, None), 'writable', False)
                   or type(getattr(RsyncSystemBackup, name, None)).__name__ == 'mutable_property')
    assert settings - set(PROPERTY_CHECKS) <= {'summary'}
