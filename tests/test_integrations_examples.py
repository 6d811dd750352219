"""Tests of the examples of docs/examples for configuration files, monitoring and the systemd template units."""

import os
import shutil
import subprocess
import sys

import pytest

from rsync_system_backup.command_line import LONG_OPTIONS
from rsync_system_backup.destinations import Destination
from rsync_system_backup.integrations.metrics import check_metrics_file
from rsync_system_backup.integrations.pings import check_ping_url
from support.examples import DOCUMENTED_PROGRAM, read_example, unit_settings

FILE_ONLY_KEYS = {'source', 'destination', 'exclude-from', 'before', 'after', 'on-error', 'hook-timeout', 'ping-url',
                  'metrics-file'}
"""The keys of a job that are not long options of version 1.1's command line (issue 24 adds them)."""

NAMESPACE_SETTINGS = ('ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables',
                      'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'ProtectHostname',
                      'ProtectClock', 'ReadOnlyPaths', 'InaccessiblePaths', 'TemporaryFileSystem', 'PrivateMounts',
                      'RestrictSUIDSGID', 'CapabilityBoundingSet', 'DevicePolicy')
"""Hardening settings that would hide files or devices from a root backup, or keep it from restoring them."""


def load_config(name):
    """Parse a TOML example with tomllib (or its backport tomli on Python < 3.11)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip('tomli', reason="the tomli backport is needed to read TOML on Python < 3.11")
    return tomllib.loads(read_example(name))


def resolved_jobs(config):
    """Each job's settings with the defaults it inherits (a dict from job names to dicts)."""
    return {name: dict(config.get('defaults', {}), **settings) for name, settings in config['jobs'].items()}


@pytest.mark.parametrize('name', ['laptop.toml', 'server.toml'])
def test_config_examples_use_the_options_names(name):
    """The examples parse, and every key is a long option of the command line or a key that the file adds."""
    config = load_config(name)
    assert set(config) == {'defaults', 'jobs'}
    options = {option.rstrip('=') for option in LONG_OPTIONS}
    for table in [config['defaults']] + list(config['jobs'].values()):
        assert set(table) <= options | FILE_ONLY_KEYS, set(table) - options - FILE_ONLY_KEYS
    for job, settings in resolved_jobs(config).items():
        assert settings['source'].startswith('/'), job
        Destination(expression=settings['destination'])
        for pattern in settings.get('exclude', []):
            assert '\n' not in pattern
        if 'ping-url' in settings:
            check_ping_url(settings['ping-url'])
        if 'metrics-file' in settings:
            check_metrics_file(settings['metrics-file'])


def test_laptop_example():
    """The laptop's jobs back up / and /home to the encrypted disk that each unlocks and mounts."""
    jobs = resolved_jobs(load_config('laptop.toml'))
    assert sorted(settings['source'] for settings in jobs.values()) == ['/', '/home']
    for settings in jobs.values():
        assert settings['crypto'] and settings['mount'] == '/mnt/backups'
        assert settings['destination'].startswith(settings['mount'] + '/')
        assert settings['exclude']
    # The system's job leaves /home to the other job.
    assert '/home/' in [settings for settings in jobs.values() if settings['source'] == '/'][0]['exclude']
    assert any('exclude-from' in settings for settings in jobs.values())


def test_server_example():
    """The server's jobs go over SSH, ping their checks, share one metrics file; the dump hook is valid bash."""
    jobs = resolved_jobs(load_config('server.toml'))
    for settings in jobs.values():
        assert Destination(expression=settings['destination']).is_remote_shell
        assert settings['metrics-file'].endswith('.prom')
    assert len({settings['ping-url'] for settings in jobs.values()}) == len(jobs)
    hooks = [settings['before'] for settings in jobs.values() if 'before' in settings]
    assert len(hooks) == 1 and 'pg_dumpall' in hooks[0]
    for hook in hooks + [settings['on-error'] for settings in jobs.values() if 'on-error' in settings]:
        subprocess.run(['bash', '-n', '-c', hook], check=True)


@pytest.mark.skipif(shutil.which('systemd-analyze') is None,
                    reason="systemd-analyze is not installed, so the unit files can't be verified here")
def test_template_units_verify(tmp_path):
    """systemd-analyze verify accepts an instance of the template service and timer without a complaint."""
    program = shutil.which('rsync-system-backup', path=os.path.dirname(sys.executable))
    assert program, "rsync-system-backup is not installed next to %s" % sys.executable
    units = []
    for kind in ('service', 'timer'):
        text = read_example('rsync-system-backup@.%s' % kind).replace(DOCUMENTED_PROGRAM, program)
        for name in ('rsync-system-backup@.%s' % kind, 'rsync-system-backup@laptop.%s' % kind):
            (tmp_path / name).write_text(text)
        units.append(str(tmp_path / ('rsync-system-backup@laptop.%s' % kind)))
    process = subprocess.run(['systemd-analyze', 'verify'] + units, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=60)
    output = process.stdout.decode('utf-8', 'replace')
    assert process.returncode == 0, output
    assert [line for line in output.splitlines() if 'rsync-system-backup' in line] == []


def test_template_settings():
    """The template runs one configuration file per instance, at the lowest priority, hardened but able to read all."""
    service = unit_settings('rsync-system-backup@.service')
    assert service['Type'] == 'oneshot'
    assert service['ExecStart'] == DOCUMENTED_PROGRAM + ' --config=/etc/rsync-system-backup/%i.toml'
    assert (service['Nice'], service['IOSchedulingClass']) == ('19', 'idle')
    assert service['KillMode'] == 'mixed'
    assert service['SuccessExitStatus'].split() == ['75']
    assert service['NoNewPrivileges'] == 'yes' and service['UMask'] == '0077'
    assert [setting for setting in NAMESPACE_SETTINGS if setting in service] == []
    assert 'User' not in service
    timer = unit_settings('rsync-system-backup@.timer')
    assert timer['Persistent'] == 'true'
    assert timer['OnCalendar']
    assert timer['WantedBy'] == 'timers.target'
