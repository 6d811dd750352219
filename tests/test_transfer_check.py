"""
Tests of the check after a planned transfer (``transfer/check.py``, ``agent/kinds.py``).

The unit tests give the check a ``latest`` that differs from the source; the
end-to-end test breaks one apply with a stand-in rsync and follows the run
that fails and the next one, which transfers without a plan.
"""

import os

from executor.contexts import LocalContext

from rsync_system_backup.agent import kinds
from rsync_system_backup.transfer.check import check_transfer
from rsync_system_backup.transfer.plan import SourceView, TransferPlan
from support.loop_filesystems import MountedFilesystem
from support.stand_ins import real_program, write_script
from support.cli import command_environment
from support.trees import settle, snapshot_names, take_manifest, write_dated, write_file


def test_kinds_of_names(tmp_path):
    """The destination's side answers one letter per question, without following symbolic links."""
    write_file(tmp_path / 'dir' / 'file', b'')
    os.link(str(tmp_path / 'dir' / 'file'), str(tmp_path / 'mate'))
    os.symlink('dir', str(tmp_path / 'link'))
    os.mkfifo(str(tmp_path / 'fifo'))
    questions = kinds.encode_questions([b'dir', b'dir/file', b'link', b'fifo', b'missing', b'link/file', b'../x'],
                                       [(b'mate', b'dir/file'), (b'mate', b'fifo')])
    assert kinds.describe(os.fsencode(str(tmp_path)), questions) == b'dfLS---=-'


def test_entry_that_cannot_be_looked_at(tmp_path, monkeypatch):
    """An entry that can't be looked at counts as missing, also in a pair."""
    write_file(tmp_path / 'file', b'')
    real_lstat = kinds.Tree.lstat

    def lstat(tree, name):
        if name == b'hidden':
            raise PermissionError(13, "Permission denied")
        return real_lstat(tree, name)
    monkeypatch.setattr(kinds.Tree, 'lstat', lstat)
    questions = kinds.encode_questions([b'hidden', b'file'], [(b'hidden', b'file')])
    assert kinds.describe(os.fsencode(str(tmp_path)), questions) == b'-f-'


def test_differences_are_named(tmp_path):
    """Another kind, a deletion still there and a missing hard link are found; what matches isn't."""
    source, latest = tmp_path / 'source', tmp_path / 'latest'
    for root in (source, latest):
        write_file(root / 'same', b'')
        write_file(root / 'leader', b'')
    write_file(source / 'was-a-directory', b'')
    write_file(latest / 'was-a-directory' / 'inside', b'')
    write_file(latest / 'deleted', b'')
    os.link(str(source / 'leader'), str(source / 'link'))
    write_file(latest / 'link', b'')
    plan = TransferPlan()
    plan.entries.update({b'same': b'f', b'was-a-directory': b'f'})
    plan.deletions.update({b'deleted', b'left-out'})
    plan.links.update({b'link': b'leader'})
    carried_out = {b'same', b'was-a-directory', b'deleted', b'link'}
    problems = check_transfer(LocalContext(), str(latest), plan, SourceView(str(source)), carried_out)
    assert problems == [
        "'was-a-directory' is a directory in %s and a file in the source" % latest,
        "'deleted' is a file in %s and nothing in the source" % latest,
        "'link' isn't a hard link to 'leader' in %s" % latest,
    ]
    os.unlink(str(latest / 'deleted'))
    os.unlink(str(latest / 'link'))
    os.link(str(latest / 'leader'), str(latest / 'link'))
    (latest / 'was-a-directory' / 'inside').unlink()
    (latest / 'was-a-directory').rmdir()
    write_file(latest / 'was-a-directory', b'')
    assert check_transfer(LocalContext(), str(latest), plan, SourceView(str(source)), carried_out) == []


def test_failed_check_makes_the_next_transfer_unplanned(tmp_path):
    """A difference after the apply fails the run in one line; the next run transfers without a plan and is exact."""
    source = tmp_path / 'source'
    write_dated(source / 'tree' / 'deep' / 'file', b'in a directory that becomes a file')
    write_dated(source / 'kept', b'kept')
    settle(source)
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    # The stand-in rsync skips the apply that rewrites files, as a broken apply would.
    write_script(fake_bin / 'rsync', '''
for argument do
    if [ "$argument" = --ignore-times ]; then cat > /dev/null; exit 0; fi
done
exec %s "$@"
''' % real_program('rsync'))
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert filesystem.run_cli('--verbose', source, latest).returncode == 0
        before = take_manifest(filesystem.view(latest.parent / snapshot_names(filesystem.view(latest.parent))[0]))
        (source / 'tree' / 'deep' / 'file').unlink()
        (source / 'tree' / 'deep').rmdir()
        (source / 'tree').rmdir()
        write_dated(source / 'tree', b'now a file')
        settle(source)
        result = filesystem.run_cli('--verbose', source, latest, env=command_environment(fake_bin))
        assert result.returncode != 0, result.output
        assert "After the planned transfer, 1 name(s) differ from the source: 'tree' is nothing in" in result.output
        assert 'Traceback' not in result.output
        assert len(snapshot_names(filesystem.view(latest.parent))) == 1
        result = filesystem.run_cli('--verbose', source, latest)
        assert result.returncode == 0, result.output
        assert 'Transferring without a plan this time' in result.output
        with open(os.path.join(filesystem.view(latest), 'tree'), 'rb') as handle:
            assert handle.read() == b'now a file'
        names = snapshot_names(filesystem.view(latest.parent))
        assert len(names) == 2
        assert take_manifest(filesystem.view(latest.parent / names[0])) == before
        assert not os.path.exists(os.path.join(filesystem.view(latest.parent), '.rsync-system-backup.unplanned'))
        result = filesystem.run_cli('--verbose', source, latest)
        assert result.returncode == 0 and 'Transferring without a plan' not in result.output, result.output
