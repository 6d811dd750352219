"""
Tests of the helper processes that a run starts on this system.

On a local destination (with the privileges it needs), the small checks and
changes of a run are Python calls, apart from the platform check, which
runs ``uname`` once as version 1.1 did (so a ``uname`` on ``$PATH`` decides):
listing directories (no ``test -d`` or ``find``), creating directories (no
``mkdir``), renaming snapshots (no ``mv``) and measuring free space (no
``df``). Rotation removes all expired snapshots with a single ``rm``. Each
test puts logging stand-ins for those programs first on ``$PATH`` (they run
the real program after writing their name to a file) and checks which ones
ran.
"""

import os
import shutil

from support.trees import list_names

LOGGED_PROGRAMS = ('uname', 'test', 'find', 'mkdir', 'mv', 'df', 'rm', 'cp', 'rsync', 'stat')
"""The programs whose runs are recorded."""

IN_PROCESS_PROGRAMS = {'test', 'find', 'mkdir', 'mv', 'df'}
"""The programs that a local run replaces with Python calls."""


def log_programs(fake_bin, log):
    """
    Put logging stand-ins for :data:`LOGGED_PROGRAMS` on the command's ``$PATH``.

    :param fake_bin: The directory that the command's ``$PATH`` searches first (a path).
    :param log: The file that each stand-in appends its program's name to (a path).
    """
    for name in LOGGED_PROGRAMS:
        real = shutil.which(name)
        assert real, "%s is not installed" % name
        script = fake_bin / name
        script.write_text('#!/bin/sh\necho %s >> %s\nexec %s "$@"\n' % (name, log, real))
        script.chmod(0o755)


def programs_run(log):
    """
    Read which programs ran.

    :param log: The file that the stand-ins wrote (a path).
    :returns: A list of program names, in the order they ran.
    """
    return log.read_text().split() if log.exists() else []


def test_backup_runs_no_local_helpers(run_cli, tmp_path, fake_bin):
    """A local backup starts rsync and cp, and nothing for its checks and bookkeeping."""
    log = tmp_path / 'programs.log'
    (tmp_path / 'source').mkdir()
    (tmp_path / 'source' / 'file').write_text('x')
    destination = tmp_path / 'backups' / 'latest'
    first = run_cli('--disable-notifications', '--snapshot-method=hardlink', tmp_path / 'source', destination)
    assert first.returncode == 0, first
    log_programs(fake_bin, log)
    second = run_cli('--disable-notifications', '--snapshot-method=hardlink', tmp_path / 'source', destination)
    assert second.returncode == 0, second
    programs = programs_run(log)
    assert programs.count('rsync') == 1 and programs.count('cp') == 1, programs
    assert programs.count('uname') == 1, programs
    # find may search latest for files near the filesystem's hard link limit (see hard_links.py).
    assert not (IN_PROCESS_PROGRAMS - {'find'}) & set(programs), programs


def test_rotation_removes_with_one_rm(run_cli, tmp_path, fake_bin):
    """Rotation lists and plans in Python and removes every expired snapshot with a single rm."""
    backups = tmp_path / 'backups'
    (backups / 'latest').mkdir(parents=True)
    names = ['2024-05-01_10-%02d-00' % minute for minute in range(20)] + ['2024-05-01_11-00-00']
    for name in names:
        (backups / name / 'etc').mkdir(parents=True)
        (backups / name / 'etc' / 'hostname').write_text(name)
    log = tmp_path / 'programs.log'
    log_programs(fake_bin, log)
    result = run_cli('--disable-notifications', '--rotate', backups / 'latest')
    assert result.returncode == 0, result
    assert list_names(backups) == [names[0], names[-1], 'latest']
    programs = programs_run(log)
    assert programs.count('rm') == 1 and programs.count('uname') == 1, programs
    assert not IN_PROCESS_PROGRAMS & set(programs), programs
    assert not [name for name in os.listdir(str(backups)) if name.endswith('.removing')]
