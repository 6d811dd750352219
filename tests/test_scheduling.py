"""Tests of the scheduling examples in docs/examples: the systemd units and the cron line."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from rsync_system_backup.command_line import parse_command_line
from support.cli import command_environment
from support.examples import read_example, unit_settings

DOCUMENTED_PROGRAM = '/opt/rsync-system-backup/bin/rsync-system-backup'
"""Where the examples expect the program (the installation steps in README.rst put it there)."""


def installed_program():
    """The rsync-system-backup console script next to the running interpreter."""
    program = shutil.which('rsync-system-backup', path=os.path.dirname(sys.executable))
    assert program, "rsync-system-backup is not installed next to %s" % sys.executable
    return program


@pytest.mark.skipif(shutil.which('systemd-analyze') is None,
                    reason="systemd-analyze is not installed, so the unit files can't be verified here")
def test_systemd_analyze_verify(tmp_path):
    """systemd-analyze verify accepts the service and timer, without a single complaint about them."""
    for name in ('rsync-system-backup.service', 'rsync-system-backup.timer'):
        text = read_example(name).replace(DOCUMENTED_PROGRAM, installed_program())
        (tmp_path / name).write_text(text)
    process = subprocess.run(
        ['systemd-analyze', 'verify', str(tmp_path / 'rsync-system-backup.service'),
         str(tmp_path / 'rsync-system-backup.timer')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
    )
    output = process.stdout.decode('utf-8', 'replace')
    assert process.returncode == 0, output
    complaints = [line for line in output.splitlines() if 'rsync-system-backup' in line]
    assert complaints == []


def test_service_settings():
    """The service is a oneshot run at the lowest CPU and I/O priority; the timer catches up missed runs."""
    service = unit_settings('rsync-system-backup.service')
    assert service['Type'] == 'oneshot'
    assert service['Nice'] == '19'
    assert service['IOSchedulingClass'] == 'idle'
    assert service['ExecStart'].startswith(DOCUMENTED_PROGRAM + ' ')
    # Stopping the service signals the program alone, which runs its cleanups (see docs/guarantees.rst).
    assert service['KillMode'] == 'mixed'
    # 75 (busy) is not a failure, 2 (completed with errors) is.
    assert service['SuccessExitStatus'].split() == ['75']
    timer = unit_settings('rsync-system-backup.timer')
    assert timer['Persistent'] == 'true'
    assert timer['OnCalendar']
    assert timer['WantedBy'] == 'timers.target'


def example_arguments(command_line):
    """The arguments that a command line in an example gives to the program."""
    words = shlex.split(command_line)
    return words[words.index(DOCUMENTED_PROGRAM) + 1:]


def test_examples_use_valid_options():
    """The command lines of the service and the cron line are accepted by the program's own parser."""
    cron_lines = [line for line in read_example('rsync-system-backup.cron').splitlines()
                  if line.strip() and not line.startswith('#')]
    assert len(cron_lines) == 1
    fields = cron_lines[0].split(None, 6)
    assert fields[:6] == ['0', '3', '*', '*', '*', 'root']
    for command_line in (unit_settings('rsync-system-backup.service')['ExecStart'], fields[6]):
        parsed = parse_command_line(example_arguments(command_line), environment={})
        assert not parsed.show_help
        assert parsed.program_options['destination'] == '/mnt/backups/latest'
    assert parse_command_line(example_arguments(fields[6]), environment={}).program_options['ionice'] == 'idle'


def test_cron_line_runs(tmp_path):
    """The cron line's command works (with the program and the directories swapped for test ones)."""
    source = tmp_path / 'source'
    source.mkdir()
    (source / 'file').write_text('x')
    command_line = [line for line in read_example('rsync-system-backup.cron').splitlines()
                    if line.startswith('0 3 ')][0].split(None, 6)[6]
    command_line = command_line.replace(DOCUMENTED_PROGRAM, installed_program())
    command_line = command_line.replace(' / /mnt/backups/latest', ' %s %s' % (source, tmp_path / 'backups' / 'latest'))
    environment = command_environment(HOME=str(tmp_path))
    process = subprocess.run(command_line, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=environment, timeout=120)
    assert process.returncode == 0, process
    assert b' INFO Backup to ' in process.stderr
    assert (tmp_path / 'backups' / 'latest' / 'file').exists()
