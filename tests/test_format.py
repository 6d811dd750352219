"""Tests of the manifest file format: names of every kind survive writing and reading, and names beside snapshots."""

import gzip
import os

import pytest

from rsync_system_backup.manifests.format import (
    COMPRESSION_PARTS,
    MINIMUM_PART_SIZE,
    Entry,
    compress_parts,
    format_entry,
    manifest_name,
    manifest_owner,
    orphaned_manifests,
    parse_entry,
    read_checksums,
    read_entry_lines,
    read_manifest,
    write_manifest,
)

AWKWARD_PATHS = ['plain', 'tab\there', 'new\nline', 'back\\slash', 'ends with \\', 'cr\rhere',
                 os.fsdecode(b'latin1-\xe9t\xe9'), '\\n is not a newline', 'spaces  and  "quotes"']
"""Paths that a line-based format could mangle (one isn't UTF-8)."""


def make_entry(path, target=''):
    """An entry of a regular file (or a link when there is a target)."""
    return Entry(path, 'l' if target else 'f', 12, 0o4755, 12345, 23456, 1700000000123456789, target,
                 '' if target else 'ab' * 32)


def test_lines_round_trip():
    """Every awkward path and link target comes back from its line exactly, on one line."""
    for path in AWKWARD_PATHS:
        for entry in (make_entry(path), make_entry('link', target=path)):
            line = format_entry(entry)
            assert line.count('\n') == 1 and line.endswith('\n')
            assert parse_entry(line) == entry


def test_files_round_trip(tmp_path):
    """A manifest file gives back its method and entries; the checksums for the next build are keyed alike."""
    entries = [make_entry(path) for path in AWKWARD_PATHS]
    pathname = write_manifest(str(tmp_path), '2024-05-01_10-00-00', 'link-dest', map(format_entry, entries))
    assert os.path.basename(pathname) == '2024-05-01_10-00-00.manifest.gz'
    manifest = read_manifest(pathname)
    assert manifest.method == 'link-dest' and manifest.complete
    assert manifest.entries == {entry.path: entry for entry in entries}
    assert len(read_checksums(pathname)) == len(entries)
    header_only = read_manifest(write_manifest(str(tmp_path), '2024-05-02_10-00-00', 'btrfs'))
    assert (header_only.method, header_only.complete, header_only.entries) == ('btrfs', False, {})
    assert sorted(os.listdir(str(tmp_path / '.rsync-system-backup.manifests'))) == [
        '2024-05-01_10-00-00.manifest.gz', '2024-05-02_10-00-00.manifest.gz']


def test_names_beside_snapshots():
    """Manifests and unfinished manifests belong to their snapshot; only orphans are picked for removal."""
    assert manifest_name('2024-05-01_10-00-00') == '.rsync-system-backup.manifests/2024-05-01_10-00-00.manifest.gz'
    assert manifest_owner('2024-05-01_10-00-00.manifest.gz') == '2024-05-01_10-00-00'
    assert manifest_owner('2024-05-01_10-00-00.manifest.gz.k2j3h4.tmp') == '2024-05-01_10-00-00'
    assert manifest_owner('README') is None
    filenames = ['2024-05-01_10-00-00.manifest.gz', '2023-01-01_00-00-00.manifest.gz',
                 '2024-05-02_10-00-00.manifest.gz.abc123.tmp', 'README']
    names = ['latest', '2024-05-01_10-00-00', '2024-05-02_10-00-00.incomplete', '.rsync-system-backup']
    assert orphaned_manifests(filenames, names) == ['2023-01-01_00-00-00.manifest.gz',
                                                    '2024-05-02_10-00-00.manifest.gz.abc123.tmp', 'README']


def test_manifest_directory_is_not_followed(tmp_path):
    """A symbolic link in place of the manifests' directory is refused, never written through."""
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (tmp_path / 'set').mkdir()
    (tmp_path / 'set' / '.rsync-system-backup.manifests').symlink_to(elsewhere)
    with pytest.raises(NotADirectoryError):
        write_manifest(str(tmp_path / 'set'), '2024-05-01_10-00-00', 'link-dest')
    assert os.listdir(str(elsewhere)) == []


def test_encoded_lines_in_parts(tmp_path):
    """Lines written encoded, compressed in parts (gzip members, each ending at a line's end), read back whole."""
    entries = [make_entry('dir-%05d/%s' % (number, AWKWARD_PATHS[number % len(AWKWARD_PATHS)]))
               for number in range(20000)]
    encoded = ''.join(map(format_entry, entries)).encode('utf-8', 'surrogateescape')
    assert len(encoded) > 2 * MINIMUM_PART_SIZE
    pathname = write_manifest(str(tmp_path), '2024-05-01_10-00-00', 'safe-hardlink', compressed=compress_parts(encoded))
    assert read_manifest(pathname).entries == {entry.path: entry for entry in entries}
    method, complete, lines = read_entry_lines(pathname)
    assert (method, complete) == ('safe-hardlink', True)
    assert lines == encoded.split(b'\n')[:-1]
    parts = compress_parts(encoded)
    assert len(parts) == min(os.cpu_count(), COMPRESSION_PARTS, len(encoded) // MINIMUM_PART_SIZE)
    assert all(gzip.decompress(part).endswith(b'\n') for part in parts)
    assert b''.join(gzip.decompress(part) for part in parts) == encoded
