"""
Version 1.1's own test suite, run against this package.

The suite ships in the 1.1 wheel; :file:`tests/support/original_suite.sh`
fetches the wheel from the package index (hash checked) and runs the suite
against the package installed for this interpreter. It uses 1.1's command
line, its Python API (:class:`~rsync_system_backup.backup.RsyncSystemBackup`,
:class:`~rsync_system_backup.destinations.Destination`, the exceptions) and
its idea of a fake ``uname`` on ``$PATH``. The four tests that need a disk at
``/mnt/rsync-system-backup`` skip themselves.
"""

import os
import re
import subprocess
import sys

import pytest

from support.cli import command_environment

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'support', 'original_suite.sh')
"""The script that fetches and runs the 1.1 suite."""


def test_version_1_1_suite_passes():
    """Every test of 1.1's suite passes, apart from the four that skip for lack of a backup disk."""
    environment = command_environment()
    process = subprocess.run(['bash', SCRIPT, sys.executable, '-q'], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment, timeout=900)
    output = process.stdout.decode('utf-8', 'replace')
    assert process.returncode == 0, output
    summary = re.search(r'^(\d+) passed, (\d+) skipped', output, re.MULTILINE)
    assert summary, output
    assert (int(summary.group(1)), int(summary.group(2))) == (13, 4), output
    assert output.count("doesn't exist") >= 4, output


def test_relative_paths_are_resolved(tmp_path):
    """Relative SOURCE and DESTINATION work as in 1.1, and the output names the absolute paths used."""
    (tmp_path / 'src' / 'etc').mkdir(parents=True)
    (tmp_path / 'src' / 'etc' / 'hostname').write_text('box\n')
    environment = command_environment()
    process = subprocess.run([sys.executable, '-m', 'rsync_system_backup', '--disable-notifications',
                              'src', 'backups/latest'], cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment, timeout=120)
    output = process.stdout.decode('utf-8', 'replace')
    assert process.returncode == 0, output
    assert (tmp_path / 'backups' / 'latest' / 'etc' / 'hostname').read_text() == 'box\n'
    assert len([name for name in os.listdir(str(tmp_path / 'backups')) if name[:1].isdigit()]) == 1
    assert str(tmp_path / 'backups' / 'latest') in output, output


def test_destination_needs_an_expression():
    """``Destination()`` without an expression or parts raises TypeError, as the required argument did in 1.1."""
    from rsync_system_backup.destinations import Destination
    with pytest.raises(TypeError):
        Destination()
    assert Destination(expression='server:/backups/latest').hostname == 'server'


def test_failed_transfer_raises_executor_exception(tmp_path):
    """A transfer that can't connect raises executor's ExternalCommandFailed (as in 1.1) and TransferFailedError."""
    from executor import ExternalCommandFailed

    from rsync_system_backup import RsyncSystemBackup
    from rsync_system_backup.exceptions import TransferFailedError
    (tmp_path / 'src').mkdir()
    backup = RsyncSystemBackup(source=str(tmp_path / 'src'), destination='rsync://127.0.0.1:1/module',
                               notifications_enabled=False)
    with pytest.raises(ExternalCommandFailed) as info:
        backup.execute()
    assert isinstance(info.value, TransferFailedError)
    assert info.value.returncode == 10
    assert 'Connection refused' in str(info.value)
