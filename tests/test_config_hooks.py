"""
Tests of running a hook (``config/hooks.py``, issue 24) with real processes: output, environment, timeouts.

A hook runs in a session of its own; its output goes to the log (warnings
when it fails); a hook that runs longer than its timeout is stopped with
every process it started, also one that ignores SIGTERM, and fails.
"""

import logging
import time

import pytest

from rsync_system_backup.config.hooks import group_members, run_hook
from rsync_system_backup.exceptions import HookFailedError
from support.processes import process_exists


def test_output_goes_to_the_log(caplog, tmp_path):
    """Each line the hook writes (on either stream) is logged; the environment reaches it; argv runs without a shell."""
    caplog.set_level(logging.INFO, logger='rsync_system_backup.config.hooks')
    run_hook('the before hook of job home', ['sh', '-c', 'echo "job $RSB_JOB"; echo oops >&2; echo "$1"', 'sh',
                                             '$HOME; touch %s' % (tmp_path / 'pwned')],
             dict(RSB_JOB='home'), timeout=30)
    lines = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert lines == [('INFO', "Running the before hook of job home: sh -c 'echo \"job $RSB_JOB\"; echo oops >&2; "
                              "echo \"$1\"' sh '$HOME; touch %s'" % (tmp_path / 'pwned')),
                     ('INFO', "Output of the before hook of job home: job home"),
                     ('INFO', "Output of the before hook of job home: oops"),
                     ('INFO', "Output of the before hook of job home: $HOME; touch %s" % (tmp_path / 'pwned'))]
    assert not (tmp_path / 'pwned').exists()


def test_failure_names_the_exit_code_and_last_line(caplog, tmp_path):
    """A hook that exits with another status than 0, or can't start, fails; its output is logged as warnings."""
    with pytest.raises(HookFailedError) as error:
        run_hook('the after hook of job home', 'echo first; echo "disk full"; exit 3', {}, timeout=30)
    assert str(error.value) == "The after hook of job home failed with exit code 3: disk full"
    assert [record.levelname for record in caplog.records if record.getMessage().startswith('Output')] == \
        ['WARNING', 'WARNING']
    with pytest.raises(HookFailedError) as error:
        run_hook('the after hook of job home', ['/nonexistent/dump-database'], {}, timeout=30)
    assert str(error.value).startswith("The after hook of job home can't run: ")
    assert str(error.value) == ("The after hook of job home can't run: /nonexistent/dump-database: No such file or "
                                "directory.")
    script = tmp_path / 'not-executable'
    script.write_text('#!/bin/sh\n')
    with pytest.raises(HookFailedError) as error:
        run_hook('the after hook of job home', [str(script)], {}, timeout=30)
    assert str(error.value) == "The after hook of job home can't run: %s: Permission denied." % script
    with pytest.raises(HookFailedError) as error:
        run_hook('the after hook of job home', ['no-such-program-here'], {}, timeout=30)
    assert str(error.value).startswith("The after hook of job home can't run: no-such-program-here not found "
                                       "(looked in ")


@pytest.mark.parametrize('command', [
    'echo started; sleep 600; echo never',
    "trap '' TERM; echo started; sleep 600 & wait $!; sleep 600",
])
def test_hanging_hook_is_stopped(tmp_path, caplog, command):
    """After its timeout the hook and its children are stopped (SIGKILL when SIGTERM is ignored), and it fails."""
    caplog.set_level(logging.INFO, logger='rsync_system_backup.config.hooks')
    pid_file = tmp_path / 'pid'
    started = time.monotonic()
    with pytest.raises(HookFailedError) as error:
        run_hook('the before hook of job home', 'echo $$ > %s; %s' % (pid_file, command), {}, timeout=1,
                 grace_period=1)
    assert time.monotonic() - started < 10
    assert str(error.value) == "The before hook of job home ran longer than its hook-timeout of 1 second and was " \
                               "stopped."
    group = int(pid_file.read_text())
    assert group_members(group) == [] and not process_exists(group)
    assert ('WARNING', "Output of the before hook of job home: started") in \
        [(record.levelname, record.getMessage()) for record in caplog.records]
