"""Tests of ``checks/configuration.py``: settings that would reach a command as an option are refused up front."""

import pytest

from support.cli import assert_failed


@pytest.mark.parametrize('options, message', [
    (['-b', '-m', '--all'], "The mount point '--all' is a relative path"),
    (['-b', '-m', 'relative/mnt'], "The mount point 'relative/mnt' is a relative path"),
    (['-b', '-c', '-x'], "The crypttab target '-x' starts with '-'"),
])
def test_disk_names_that_would_be_options(run_cli, fake_bin, source, options, message):
    """-m and -c values are refused before mount or cryptdisks_start runs, also for daemon destinations."""
    for program in ('mount', 'cryptdisks_start'):
        stand_in = fake_bin / program
        stand_in.write_text('#!/bin/sh\ntouch %s\n' % (fake_bin / (program + '.ran')))
        stand_in.chmod(0o755)
    result = run_cli(*(options + [source, 'rsync://127.0.0.1:1/module']))
    assert_failed(result, message)
    assert not list(fake_bin.glob('*.ran'))
