"""
Tests of :mod:`rsync_system_backup.checks.backup_sets`: a DESTINATION that is a backup set, or lies inside one.

Real runs of the command on local directories and over SSH (the sshd
fixtures are in ``conftest.py``): the forgotten ``/latest`` (issue 22,
item 1) and its relatives must be refused before anything is written, with
the ``latest`` that was meant in the message, and nothing may change.
"""

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.checks import backup_sets
from support.cli import assert_failed
from support.remote import SERVER_ALIAS
from support.trees import snapshot_names, take_manifest, write_file

MARKER = '.rsync-system-backup'
"""The marker file of a backup set."""


@pytest.fixture
def source(tmp_path):
    """A source directory with one file."""
    directory = tmp_path / 'source'
    write_file(directory / 'file', b'data')
    return directory


@pytest.fixture
def nested(tmp_path, source, run_cli):
    """The sets /x/laptop (made first) and /x of issue 22, one backup each: returns /x."""
    x = tmp_path / 'x'
    assert run_cli('--disable-notifications', source, x / 'laptop' / 'latest').returncode == 0
    assert run_cli('--disable-notifications', source, x / 'latest').returncode == 0
    assert len(snapshot_names(x / 'laptop')) == 1 and len(snapshot_names(x)) == 1
    return x


@pytest.mark.parametrize('options', [[], ['--dry-run'], ['--snapshot'], ['--accept-existing']])
def test_forgotten_latest_in_nested_sets_is_refused(nested, source, run_cli, options):
    """`SOURCE /x/laptop` wiped the inner set, exit 0 (issue 22, item 1): now refused, nothing changes."""
    before = take_manifest(nested)
    result = run_cli('--disable-notifications', *options, source, nested / 'laptop')
    assert_failed(result, 'The destination %s is a backup set itself (it holds %s), so the backup would replace its '
                  'latest and snapshots with a copy of the source: did you mean %s?'
                  % (nested / 'laptop', MARKER, nested / 'laptop' / 'latest'))
    assert take_manifest(nested) == before
    laptop = nested / 'laptop'
    assert (laptop / 'latest' / 'file').read_bytes() == b'data' and (laptop / MARKER).is_file()
    assert len(snapshot_names(laptop)) == 1 and len(snapshot_names(nested)) == 1


def test_nested_sets_keep_working(nested, source, run_cli):
    """Both sets of the nested layout take their next backups."""
    for latest in (nested / 'laptop' / 'latest', nested / 'latest'):
        result = run_cli('--disable-notifications', source, latest)
        assert result.returncode == 0, result
    assert len(snapshot_names(nested / 'laptop')) == 2 and len(snapshot_names(nested)) == 2


def test_new_set_inside_another_sets_directory(tmp_path, source, run_cli):
    """A new set in a set's directory (not in its latest or a snapshot) is made, as the nested layout was."""
    x = tmp_path / 'x'
    assert run_cli('--disable-notifications', source, x / 'latest').returncode == 0
    result = run_cli('--disable-notifications', source, x / 'laptop' / 'latest')
    assert result.returncode == 0, result
    assert (x / 'laptop' / MARKER).exists() and len(snapshot_names(x / 'laptop')) == 1


def test_forgotten_latest_is_named(tmp_path, source, run_cli):
    """Not nested, the typo was refused with "did you swap SOURCE and DESTINATION?"; now the meant latest is named."""
    laptop = tmp_path / 'laptop'
    assert run_cli('--disable-notifications', source, laptop / 'latest').returncode == 0
    before = take_manifest(laptop)
    result = run_cli('--disable-notifications', source, laptop)
    assert_failed(result, 'The destination %s is a backup set itself' % laptop,
                  'did you mean %s?' % (laptop / 'latest'))
    assert 'swap' not in result.stderr
    assert take_manifest(laptop) == before


def test_snapshot_as_destination_is_refused(nested, source, run_cli):
    """A snapshot is never written to: rsync --delete would change it."""
    laptop = nested / 'laptop'
    snapshot = snapshot_names(laptop)[0]
    before = take_manifest(nested)
    result = run_cli('--disable-notifications', source, laptop / snapshot)
    assert_failed(result, 'The destination %s is the snapshot %s of the backup set %s, which the backup would '
                  'overwrite: did you mean %s?' % (laptop / snapshot, snapshot, laptop, laptop / 'latest'))
    assert take_manifest(nested) == before


def test_set_bookkeeping_as_destination_is_refused(nested, source, run_cli):
    """The set's manifests' directory is no place for a backup either."""
    laptop = nested / 'laptop'
    manifests = laptop / (MARKER + '.manifests')
    assert manifests.is_dir()
    before = take_manifest(nested)
    result = run_cli('--disable-notifications', source, manifests)
    assert_failed(result, 'The destination %s is the %s of the backup set %s, which the backup would overwrite: '
                  'did you mean %s?' % (manifests, manifests.name, laptop, laptop / 'latest'))
    assert take_manifest(nested) == before


@pytest.mark.parametrize('inside', ['latest', 'snapshot'])
def test_destination_inside_a_sets_data_is_refused(nested, source, run_cli, inside):
    """A destination below a set's latest or snapshot would put a set (and its snapshots) inside that set's data."""
    laptop = nested / 'laptop'
    name = 'latest' if inside == 'latest' else snapshot_names(laptop)[0]
    destination = laptop / name / 'home' / 'latest'
    before = take_manifest(nested)
    result = run_cli('--disable-notifications', source, destination)
    what = 'the latest' if inside == 'latest' else 'the snapshot %s' % name
    assert_failed(result, 'The destination %s lies inside %s of the backup set %s, which the backup would change: '
                  'did you mean %s?' % (destination, what, laptop, laptop / 'latest'))
    assert take_manifest(nested) == before


def test_unmarked_set_as_destination_is_refused(tmp_path, source, run_cli):
    """A set whose marker is gone is still recognised by its latest and snapshots, also with --accept-existing."""
    laptop = tmp_path / 'laptop'
    assert run_cli('--disable-notifications', source, laptop / 'latest').returncode == 0
    (laptop / MARKER).unlink()
    before = take_manifest(tmp_path)
    result = run_cli('--disable-notifications', '--accept-existing', source, laptop)
    assert_failed(result, 'The destination %s holds a backup set (a latest directory and 1 snapshot), which the '
                  'backup would replace with a copy of the source: did you mean %s?' % (laptop, laptop / 'latest'))
    assert take_manifest(tmp_path) == before


def test_forgotten_latest_over_ssh(tmp_path, source, client_home):
    """Over SSH the destination's system is looked at with one command, and the typo is refused the same way."""
    x = tmp_path / 'x'
    for latest in (x / 'laptop' / 'latest', x / 'latest'):
        assert client_home.run('-b', source, '%s:%s' % (SERVER_ALIAS, latest)).returncode == 0
    before = take_manifest(x)
    result = client_home.run('-b', source, '%s:%s' % (SERVER_ALIAS, x / 'laptop'))
    assert_failed(result, 'The destination %s is a backup set itself' % (x / 'laptop'),
                  'did you mean %s?' % (x / 'laptop' / 'latest'))
    assert take_manifest(x) == before


def test_source_that_is_a_backup_set(tmp_path, source, run_cli):
    """A set's directory as SOURCE: its marker, latest and snapshots in the copy don't make the copy a set."""
    assert run_cli('--disable-notifications', source, tmp_path / 'set' / 'latest').returncode == 0
    offsite = tmp_path / 'offsite'
    for run in range(2):
        result = run_cli('--disable-notifications', tmp_path / 'set', offsite / 'latest')
        assert result.returncode == 0, result
    assert (offsite / 'latest' / MARKER).is_file() and (offsite / 'latest' / 'latest' / 'file').is_file()
    assert len(snapshot_names(offsite)) == 2


@pytest.mark.parametrize('path', ['set\n/latest', 'set\n', '-set/latest', 'set\n/latest/../x/y', '-x\n\n/y'])
def test_hostile_names_are_read_alike_by_the_shell(tmp_path, monkeypatch, path):
    """The shell code that other systems run finds what this process finds, with newlines and dashes in names."""
    for name in ('set\n', '-set'):
        write_file(tmp_path / name / MARKER, b'')
        (tmp_path / name / 'latest').mkdir()
    directory = '%s/%s' % (tmp_path, path)
    here = backup_sets.find_marked_directories(LocalContext(), directory)
    monkeypatch.setattr(backup_sets, 'runs_in_process', lambda context, sudo: False)
    assert backup_sets.find_marked_directories(LocalContext(), directory) == here
    assert here[0].startswith(str(tmp_path)) and len(here[1]) == (0 if path.startswith('-x') else 1)
