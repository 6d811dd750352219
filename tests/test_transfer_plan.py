"""Tests of reading rsync's dry run into a checked plan (``transfer/plan.py``), with the real rsync's output."""

import os
import subprocess
import sys

from rsync_system_backup.transfer.output import TransferStatistics
from rsync_system_backup.transfer.plan import (
    PLAN_ENVIRONMENT,
    PLAN_OPTIONS,
    SourceView,
    TransferPlan,
    drop_redirected_names,
    files_from,
    read_plan,
    unescape,
)
from support.trees import ODD_NAME, write_file


def dry_run(source, latest, *options):
    """Run rsync's dry run as the planned transfer does and read it; returns the checked plan and the statistics."""
    rsync = subprocess.Popen(['rsync', '-aH', '--delete'] + list(options) + list(PLAN_OPTIONS) +
                             ['%s/' % source, '%s/' % latest], env=dict(os.environ, **PLAN_ENVIRONMENT),
                             stdout=subprocess.PIPE)
    statistics = TransferStatistics()
    plan = read_plan(rsync.stdout, statistics)
    assert rsync.wait() == 0
    plan.check_names(SourceView(str(source)))
    return plan, statistics


def test_plan_names_every_change(tmp_path):
    """Created, changed, deleted and hard-linked entries come out as exact names; unchanged ones don't."""
    source, latest = tmp_path / 'source', tmp_path / 'latest'
    for name in ('same', 'mode', 'gone', 'leader', 'content', 'dir/inside'):
        write_file(source / name, name.encode(), mtime=1500000000)
    with open(os.fsencode(str(source)) + b'/' + ODD_NAME, 'wb') as handle:
        handle.write(b'odd')
    os.utime(str(source / 'dir'), (1500000000, 1500000000))
    subprocess.run(['rsync', '-aH', '%s/' % source, '%s/' % latest], check=True)
    (source / 'mode').chmod(0o600)
    (source / 'gone').unlink()
    write_file(source / 'content', b'longer content')
    os.link(str(source / 'leader'), str(source / 'dir' / 'follower'))
    os.utime(str(source / 'dir'), (1500000000, 1500000000))
    os.symlink('same', str(source / 'new-link'))
    os.chmod(os.fsencode(str(source)) + b'/' + ODD_NAME, 0o600)
    plan, statistics = dry_run(source, latest)
    assert plan.entries == {b'mode': b'f', b'content': b'f', b'new-link': b'L', ODD_NAME: b'f'}
    assert plan.links == {b'dir/follower': b'leader'}
    assert plan.deletions == {b'gone'}
    assert statistics.files is not None
    assert plan.apply_names() == sorted([b'content', b'dir', b'mode', b'new-link', ODD_NAME])
    assert plan.touched_names() == sorted([b'content', b'dir', b'dir/follower', b'gone', b'mode', b'new-link',
                                           ODD_NAME])
    assert plan.touches_root()


def test_names_that_look_like_arrows_and_markers(tmp_path):
    """Names and link targets that hold rsync's arrows, /./ or .. are read as exactly the entries they are."""
    source, latest = tmp_path / 'source', tmp_path / 'latest'
    write_file(source / 'x', b'grouped', mtime=1500000000)
    os.link(str(source / 'x'), str(source / 'w'))
    write_file(source / 'x -> y', b'plain file', mtime=1500000000)
    write_file(source / 's -> x' / 'etc' / 'shadow', b'planted', mtime=1500000000)
    write_file(source / 'etc' / 'shadow', b'root only', mtime=1500000000)
    subprocess.run(['rsync', '-aH', '%s/' % source, '%s/' % latest], check=True)
    write_file(source / 'x -> y', b'changed plain file', mtime=1500000000)
    os.symlink('x/./etc/shadow', str(source / 's'))
    os.symlink('d/./.', str(source / 't'))
    os.symlink('../../etc', str(source / 'u => etc'))
    plan, statistics = dry_run(source, latest)
    assert plan.entries == {b'x -> y': b'f', b's': b'L', b't': b'L', b'u => etc': b'L'}
    assert not plan.links and not plan.deletions
    assert plan.apply_names() == [b's', b't', b'u => etc', b'x -> y']


def test_hard_linked_symbolic_links(tmp_path):
    """Every name of a group of symbolic links whose owner changes is read (rsync shows their targets after 'hL')."""
    source, latest = tmp_path / 'source', tmp_path / 'latest'
    source.mkdir()
    os.symlink('target -> elsewhere', str(source / 'first'))
    os.link(str(source / 'first'), str(source / 'second'), follow_symlinks=False)
    subprocess.run(['rsync', '-aH', '%s/' % source, '%s/' % latest], check=True)
    os.chown(str(source / 'first'), 1234, 1234, follow_symlinks=False)
    os.symlink('target', str(source / 'new'))
    os.link(str(source / 'new'), str(source / 'new-mate'), follow_symlinks=False)
    plan, statistics = dry_run(source, latest, '--numeric-ids')
    assert plan.entries == {b'first': b'L', b'second': b'L', b'new': b'L', b'new-mate': b'L'}
    assert not plan.links


def test_lines_of_another_source_are_left_to_the_next_run(caplog):
    """A line that names nothing the source holds (it changed during the plan) counts nowhere but is logged."""
    plan = TransferPlan()
    assert plan.add_line(b'>f+++++++++ missing')
    assert plan.add_line(b'cL+++++++++ missing-link -> target')
    with caplog.at_level('INFO'):
        plan.check_names(SourceView('/nonexistent-source'))
    assert not (plan.entries or plan.links or plan.unchecked)
    assert "Leaving 2 planned name(s) to the next run" in caplog.text


def test_unescape():
    """rsync's escapes turn back into the bytes they stand for."""
    assert unescape(b'a\\#012b\\#351') == b'a\nb\xe9'


def test_lines_that_are_not_changes_are_ignored():
    """Statistics and messages don't become names; the directories of deletions are listed, deleted ones not."""
    plan = TransferPlan()
    for line in (b'Total bytes sent: 123', b'sent 1,234 bytes  received 56 bytes', b'Number of files: 3'):
        assert not plan.add_line(line)
    assert not (plan.lines or plan.deletions or plan.root_changed)
    assert plan.add_line(b'.d..t...... ./')
    assert plan.root_changed and plan.lines == []
    for name in (b'old/dir/deep/file', b'old/dir/deep/', b'old/dir/', b'../escape', b'a/./b'):
        assert plan.add_line(b'*deleting   ' + name)
    assert plan.deletions == {b'old/dir/deep/file', b'old/dir/deep', b'old/dir'}
    assert plan.apply_names() == [b'old']
    plan.links[b'old'] = b'leader'
    assert plan.apply_names() == []


def test_files_from_marks_where_names_start(tmp_path):
    """Every name goes to rsync behind ./, so names that start with # or ; aren't comments."""
    source, latest = tmp_path / 'source', tmp_path / 'latest'
    names = [b'#draft#', b';semi', b'#dir/inner', b'plain']
    for name in names:
        write_file(source / os.fsdecode(name), b'content')
    assert files_from([b'#x']) == b'./#x\0'
    subprocess.run(['rsync', '-a', '--from0', '--files-from=-', '%s/' % source, '%s/' % latest],
                   input=files_from(names), check=True)
    assert all((latest / os.fsdecode(name)).read_bytes() == b'content' for name in names)


def test_names_below_redirected_directories_are_dropped(tmp_path, caplog):
    """Names below a directory that became a symbolic link (or vanished) are left out; a changed kind is kept."""
    source = tmp_path / 'source'
    write_file(source / 'kept' / 'file', b'')
    write_file(source / 'elsewhere' / 'inner' / 'file', b'')
    write_file(source / 'was-a-directory', b'')
    os.symlink('elsewhere', str(source / 'swapped'))
    names = [b'gone', b'gone/file', b'kept', b'kept/file', b'swapped', b'swapped/inner', b'swapped/inner/file', b'top',
             b'was-a-directory']
    with caplog.at_level('INFO'):
        assert drop_redirected_names(SourceView(str(source)), names) == \
            ([b'gone', b'kept', b'kept/file', b'swapped', b'top', b'was-a-directory'], [])
    assert "Leaving 2 planned name(s) to the next run: %s/swapped in the source" % source in caplog.text


def test_names_below_directories_that_cannot_be_examined(tmp_path):
    """Names below a directory that this process can't search are reported, so that the run is incomplete."""
    write_file(tmp_path / 'closed' / 'inner' / 'file', b'')
    os.chown(str(tmp_path / 'closed'), 65534, 65534)
    (tmp_path / 'closed').chmod(0o700)
    # Root without the capabilities that override permissions, as a user that rsync's sudo outranks.
    check = subprocess.run(['setpriv', '--bounding-set=-dac_override,-dac_read_search', sys.executable, '-c',
                            'import sys; from rsync_system_backup.transfer.plan import SourceView, '
                            'drop_redirected_names; print(drop_redirected_names(SourceView(sys.argv[1]), '
                            '[b"closed", b"closed/inner", b"closed/inner/file"]))', str(tmp_path)],
                           capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "([b'closed', b'closed/inner'], [b'closed/inner/file'])"
    assert "can't be examined (permission denied)" in check.stderr
