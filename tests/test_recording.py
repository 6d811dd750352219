"""
Tests of the manifests that backups record beside their snapshots (by default), and their removal.

Real backups with the command; the manifests are read back with the
package's own reader and compared with the snapshots on disk, and with
what a walk of the whole snapshot that reads every file gives (see
:func:`support.differential.check_manifest()`): a manifest built from the
previous one and the transfer's changes must be the same, line for line.
"""

import os
import stat

import pytest

from rsync_system_backup.manifests.format import LATEST_RECORD, read_manifest, read_method
from rsync_system_backup.manifests.scan import scan_tree
from support.differential import check_manifest
from support.stand_ins import write_script
from support.trees import MANIFEST_DIRECTORY, flip_byte, make_snapshots, manifest_path, snapshot_names, write_file


@pytest.fixture
def source(tmp_path):
    """A small source tree with a file, an owner, a symbolic link out of the tree and an awkward name."""
    root = tmp_path / 'source'
    write_file(root / 'etc' / 'hostname', b'recording-test\n')
    write_file(root / 'etc' / 'owned', b'numeric owner', owner=(12345, 23456), mode=0o600)
    write_file(root / 'var' / 'data', b'data' * 1000)
    write_file(root / 'odd' / 'tab\tand\\backslash\nnewline', b'odd')
    os.symlink('/etc/passwd', str(root / 'etc' / 'outside'))
    os.symlink('/etc', str(root / 'etc-link'))
    return root


def test_manifest_describes_the_snapshot(run_cli, source, backups):
    """By default every entry of the snapshot is recorded exactly as it is on disk, privately, beside it."""
    result = run_cli('-v', '--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    (name,) = snapshot_names(backups)
    manifest = read_manifest(str(manifest_path(backups, name)))
    assert manifest.complete
    assert 'Using the %s snapshot method' % manifest.method in result.stderr
    assert manifest.entries == {entry.path: entry for entry in scan_tree(str(backups / name))}
    assert manifest.entries['etc/outside'].type == 'l' and manifest.entries['etc/outside'].target == '/etc/passwd'
    # A link to a directory is described, never followed.
    assert manifest.entries['etc-link'].type == 'l'
    assert not [path for path in manifest.entries if path.startswith('etc-link/')]
    assert manifest.entries['etc/owned'][4:6] == (12345, 23456)
    assert 'odd/tab\tand\\backslash\nnewline' in manifest.entries
    assert stat.S_IMODE(os.stat(str(manifest_path(backups, name))).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(backups / MANIFEST_DIRECTORY)).st_mode) == 0o700
    # Nothing was written into latest or the snapshot, and no temporary file is left.
    assert sorted(os.listdir(str(backups / name))) == sorted(os.listdir(str(source)))
    assert sorted(os.listdir(str(backups / MANIFEST_DIRECTORY))) == ['%s.manifest.gz' % name, LATEST_RECORD]
    # The record says which manifest describes latest now.
    assert (backups / MANIFEST_DIRECTORY / LATEST_RECORD).read_text() == name + '\n'


def test_without_manifest_the_method_is_recorded(run_cli, source, backups):
    """With --no-manifest the manifest is the header alone, naming the snapshot method."""
    result = run_cli('-v', '--disable-notifications', '--no-manifest', source, backups / 'latest')
    assert result.returncode == 0, result
    (name,) = snapshot_names(backups)
    manifest = read_manifest(str(manifest_path(backups, name)))
    assert not manifest.complete and manifest.entries == {}
    assert 'Using the %s snapshot method' % read_method(str(manifest_path(backups, name))) in result.stderr


def test_incremental_manifest_keeps_checksums(run_cli, source, backups):
    """Files whose size and mtime match the previous manifest keep its checksum unread; changed ones are read."""
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    (first,) = snapshot_names(backups)
    # Changed behind rsync's back (same size and mtime): rsync and the manifest both keep the old state.
    flip_byte(str(backups / 'latest' / 'var' / 'data'))
    write_file(source / 'etc' / 'hostname', b'changed\n')
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    second = snapshot_names(backups)[-1]
    old = read_manifest(str(manifest_path(backups, first))).entries
    new = read_manifest(str(manifest_path(backups, second))).entries
    assert new['var/data'].checksum == old['var/data'].checksum
    assert new['etc/hostname'].checksum != old['etc/hostname'].checksum
    assert {entry.path: entry for entry in scan_tree(str(backups / second))}['etc/hostname'] == new['etc/hostname']


def test_rotation_removes_manifests_with_their_snapshots(run_cli, source, backups):
    """A manifest goes with its snapshot; manifests whose snapshot is gone, and unfinished ones, go too."""
    old = ['2020-01-01_00-00-00', '2020-01-01_00-30-00']
    make_snapshots(backups, old)
    for name in old + ['2019-06-01_00-00-00']:
        write_file(manifest_path(backups, name), b'')
    write_file(backups / MANIFEST_DIRECTORY / '2020-01-01_00-30-00.manifest.gz.x8Yq3z.tmp', b'')
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    names = snapshot_names(backups)
    # The default scheme keeps the oldest of the hour 2020-01-01 00:00 (monthly) and the new one.
    assert names[0] == old[0] and len(names) == 2
    assert sorted(os.listdir(str(backups / MANIFEST_DIRECTORY))) == ['%s.manifest.gz' % name for name in names] \
        + [LATEST_RECORD]


def test_failed_manifest_costs_a_warning_not_the_backup(run_cli, source, backups):
    """When the manifest can't be written (a file in the way of its directory), the backup succeeds with a warning."""
    write_file(backups / MANIFEST_DIRECTORY, b'in the way')
    result = run_cli('--disable-notifications', '--manifest', source, backups / 'latest')
    assert result.returncode == 0, result
    (name,) = snapshot_names(backups)
    assert "Couldn't write the manifest of the snapshot %s" % name in result.stderr
    assert 'not a directory' in result.stderr
    assert (backups / MANIFEST_DIRECTORY).read_bytes() == b'in the way'


FROM_CHANGES = 'Built the manifest of %s from the previous one and %d changed name(s).'
"""The debug line of a manifest built from the previous one and the transfer's changes."""

WALKED = 'Built the manifest of %s by reading all of '
"""The start of the debug line of a manifest built by walking ``latest``."""


def backup(run_cli, *arguments):
    """
    Run a backup with debug messages and check that it succeeded.

    :param run_cli: The ``run_cli`` fixture.
    :param arguments: The options, SOURCE and DESTINATION.
    :returns: The result.
    """
    result = run_cli('-vv', '--disable-notifications', *arguments)
    assert result.returncode == 0, result
    return result


def test_manifest_from_the_changes(run_cli, source, backups):
    """After a planned transfer, the manifest comes from the previous one and the changed names, equal to a walk."""
    # Without rotation, which would keep one snapshot of the hour.
    latest = backups / 'latest'
    result = backup(run_cli, '--backup', '--snapshot', source, latest)
    assert WALKED % snapshot_names(backups)[0] in result.stderr, result
    write_file(source / 'etc' / 'hostname', b'changed\n')
    (source / 'odd' / 'tab\tand\\backslash\nnewline').unlink()
    write_file(source / 'new' / 'deep' / 'file', b'new')
    os.chmod(str(source / 'var' / 'data'), 0o600)
    result = backup(run_cli, '--backup', '--snapshot', source, latest)
    name = snapshot_names(backups)[-1]
    # Four entries and the directories that hold them: etc, odd, new, new/deep and var.
    assert FROM_CHANGES % (name, 9) in result.stderr, result
    assert check_manifest(backups, name) == []
    assert (backups / MANIFEST_DIRECTORY / LATEST_RECORD).read_text() == name + '\n'
    # A file whose content changed behind rsync's back (same size and mtime) keeps the old checksum in both ways.
    flip_byte(str(latest / 'var' / 'data'))
    result = backup(run_cli, '--backup', '--snapshot', source, latest)
    newest = snapshot_names(backups)[-1]
    assert FROM_CHANGES % (newest, 0) in result.stderr, result
    old, new = (read_manifest(str(manifest_path(backups, each))).entries for each in (name, newest))
    assert new == old
    assert check_manifest(backups, newest) != []


def test_snapshot_alone_reuses_the_manifest(run_cli, source, backups):
    """--snapshot alone, right after a backup, copies the manifest that describes latest."""
    latest = backups / 'latest'
    backup(run_cli, source, latest)
    result = backup(run_cli, '--snapshot', latest)
    first, second = snapshot_names(backups)
    assert FROM_CHANGES % (second, 0) in result.stderr, result
    assert read_manifest(str(manifest_path(backups, second))).entries == \
        read_manifest(str(manifest_path(backups, first))).entries
    # Nothing changed: the file itself is copied (a manifest written anew has another time in its gzip header).
    assert manifest_path(backups, second).read_bytes() == manifest_path(backups, first).read_bytes()
    assert check_manifest(backups, second) == []


@pytest.mark.parametrize('between', [['--backup'], ['--no-manifest']])
def test_latest_changed_without_a_manifest(run_cli, source, backups, between):
    """After a transfer that no manifest followed, the next manifest reads all of latest (and is right)."""
    latest = backups / 'latest'
    backup(run_cli, source, latest)
    write_file(source / 'etc' / 'hostname', b'changed between\n')
    backup(run_cli, *(between + [source, latest]))
    assert not (backups / MANIFEST_DIRECTORY / LATEST_RECORD).exists()
    # Nothing changed since the last transfer, so the plan names nothing: only the record tells.
    result = backup(run_cli, source, latest)
    name = snapshot_names(backups)[-1]
    assert WALKED % name in result.stderr, result
    assert check_manifest(backups, name) == []
    assert read_manifest(str(manifest_path(backups, name))).entries['etc/hostname'].size == len(b'changed between\n')


def test_failed_transfer_leaves_no_manifest(run_cli, source, backups, fake_bin):
    """A run whose transfer fails writes no manifest and takes the record away; the next one walks latest."""
    latest = backups / 'latest'
    backup(run_cli, source, latest)
    before = sorted(os.listdir(str(backups / MANIFEST_DIRECTORY)))
    write_script(fake_bin / 'rsync', 'echo "rsync: stand-in failure" >&2; exit 12')
    result = run_cli('--disable-notifications', source, latest)
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result
    assert sorted(os.listdir(str(backups / MANIFEST_DIRECTORY))) == sorted(set(before) - {LATEST_RECORD})
    (fake_bin / 'rsync').unlink()
    result = backup(run_cli, '--backup', '--snapshot', source, latest)
    name = snapshot_names(backups)[-1]
    assert WALKED % name in result.stderr, result
    assert check_manifest(backups, name) == []
