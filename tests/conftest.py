"""Fixtures shared by the test suite: running the real command and inspecting trees on disk."""

import os
import subprocess
import sys

import pytest

TESTS_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS_DIRECTORY)

from treeutils import CommandResult  # noqa: E402


@pytest.fixture
def fake_bin(tmp_path):
    """A directory that the command's ``$PATH`` searches first, for stand-ins of system programs."""
    directory = tmp_path / 'fake-bin'
    directory.mkdir()
    return directory


@pytest.fixture
def notifications_log(tmp_path, fake_bin):
    """A stand-in ``notify-send`` on ``$PATH`` that records each notification in a file."""
    log = tmp_path / 'notifications.log'
    script = fake_bin / 'notify-send'
    script.write_text('#!/bin/sh\necho "$*" >> %s\n' % log)
    script.chmod(0o755)
    return log


@pytest.fixture
def run_cli(fake_bin):
    """
    Run ``python -m rsync_system_backup`` as a real process.

    Returns a function that takes the command line arguments (and optional
    ``env`` overrides and a ``timeout``) and returns a :class:`CommandResult`.
    Standard input is ``/dev/null``, so the command sees no terminal.
    """
    def run(*arguments, env=None, timeout=120, stdin=subprocess.DEVNULL):
        environment = dict(os.environ)
        environment.pop('RSYNC_MODULE_PATH', None)
        environment['COLOREDLOGS_SYSLOG'] = 'false'
        environment['PATH'] = '%s:%s' % (fake_bin, environment['PATH'])
        environment.update(env or {})
        process = subprocess.run(
            [sys.executable, '-m', 'rsync_system_backup'] + [str(a) for a in arguments],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, timeout=timeout,
        )
        return CommandResult(process.returncode, process.stdout.decode('utf-8', 'replace'),
                             process.stderr.decode('utf-8', 'replace'))
    return run
