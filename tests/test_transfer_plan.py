"""Tests of reading rsync's dry run into a plan (``transfer/plan.py``), with the real rsync's output."""

import os
import subprocess
import sys

from rsync_system_backup.transfer.output import TransferStatistics
from rsync_system_backup.transfer.plan import (
    PLAN_ENVIRONMENT,
    PLAN_OPTIONS,
    TransferPlan,
    drop_redirected_names,
    read_plan,
    unescape,
)
from support.trees import ODD_NAME, write_file


def dry_run(source, latest):
    """Run rsync's dry run as the planned transfer does and read it; returns the plan and the statistics."""
    rsync = subprocess.Popen(['rsync', '-aH', '--delete'] + list(PLAN_OPTIONS) + ['%s/' % source, '%s/' % latest],
                             env=dict(os.environ, **PLAN_ENVIRONMENT), stdout=subprocess.PIPE)
    statistics = TransferStatistics()
    plan = read_plan(rsync.stdout, statistics)
    assert rsync.wait() == 0
    return plan, statistics


def test_plan_names_every_change(tmp_path):
    """Created, changed, deleted and hard-linked entries come out as exact names; unchanged ones don't."""
    source, latest = tmp_path / 'source', tmp_path / 'latest'
    for name in ('same', 'mode', 'gone', 'leader', 'dir/inside'):
        write_file(source / name, name.encode(), mtime=1500000000)
    with open(os.fsencode(str(source)) + b'/' + ODD_NAME, 'wb') as handle:
        handle.write(b'odd')
    subprocess.run(['rsync', '-aH', '%s/' % source, '%s/' % latest], check=True)
    (source / 'mode').chmod(0o600)
    (source / 'gone').unlink()
    os.link(str(source / 'leader'), str(source / 'dir' / 'follower'))
    os.symlink('same', str(source / 'new-link'))
    os.chmod(os.fsencode(str(source)) + b'/' + ODD_NAME, 0o600)
    plan, statistics = dry_run(source, latest)
    assert {b'mode', b'dir/follower', b'new-link', ODD_NAME} <= plan.changed
    assert b'same' not in plan.changed and b'leader' not in plan.changed
    assert b'leader' in plan.leaders  # (and the readings of ODD_NAME's arrows, which are harmless)
    assert plan.deletions == {b'gone'}
    assert statistics.files is not None
    names = plan.apply_names()
    assert b'dir' in names and b'leader' in names
    assert all(not name.endswith(b'/') and name != b'.' for name in names)
    assert plan.touches_root()


def test_unescape():
    """rsync's escapes turn back into the bytes they stand for."""
    assert unescape(b'a\\#012b\\#351') == b'a\nb\xe9'


def test_lines_that_are_not_changes_are_ignored():
    """Statistics and messages don't become names."""
    plan = TransferPlan()
    for line in (b'Total bytes sent: 123', b'sent 1,234 bytes  received 56 bytes', b'Number of files: 3'):
        assert not plan.add_line(line)
    assert not (plan.changed or plan.deletions or plan.root_changed)
    assert plan.add_line(b'.d..t...... ./')
    assert plan.root_changed and not plan.changed
    assert plan.add_line(b'*deleting   old/dir/')
    assert plan.deletions == {b'old/dir'}
    assert plan.apply_names() == [b'old']


def test_names_below_redirected_directories_are_dropped(tmp_path, caplog):
    """Names below a directory that became a symbolic link (or vanished) are left out, and so is that directory."""
    source = tmp_path / 'source'
    write_file(source / 'kept' / 'file', b'')
    write_file(source / 'elsewhere' / 'inner' / 'file', b'')
    os.symlink('elsewhere', str(source / 'swapped'))
    names = [b'gone', b'gone/file', b'kept', b'kept/file', b'swapped', b'swapped/inner', b'swapped/inner/file', b'top']
    with caplog.at_level('INFO'):
        assert drop_redirected_names(str(source), names) == ([b'kept', b'kept/file', b'top'], [])
    assert "Leaving 2 planned name(s) to the next run: %s/swapped in the source" % source in caplog.text


def test_names_below_directories_that_cannot_be_examined(tmp_path):
    """Names below a directory that this process can't search are reported, so that the run is incomplete."""
    write_file(tmp_path / 'closed' / 'inner' / 'file', b'')
    os.chown(str(tmp_path / 'closed'), 65534, 65534)
    (tmp_path / 'closed').chmod(0o700)
    # Root without the capabilities that override permissions, as a user that rsync's sudo outranks.
    check = subprocess.run(['setpriv', '--bounding-set=-dac_override,-dac_read_search', sys.executable, '-c',
                            'import sys; from rsync_system_backup.transfer.plan import drop_redirected_names; '
                            'print(drop_redirected_names(sys.argv[1], [b"closed", b"closed/inner", '
                            'b"closed/inner/file"]))', str(tmp_path)], capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "([b'closed', b'closed/inner'], [b'closed/inner/file'])"
    assert "can't be examined (permission denied)" in check.stderr
