"""
Tests of kept snapshots (``backup_set/kept.py``, ``actions/keeping.py``): ``--keep`` and ``--release`` (issue 22).

Every test runs the real command: backups that make and keep snapshots,
and real rotations that would remove a kept snapshot if it weren't kept.
"""

import datetime
import json
import os

import pytest

from support.cli import assert_failed
from support.remote import HOME_DIRECTORY, SERVER_ALIAS, server_view
from support.trees import make_snapshots, snapshot_names, write_file

KEPT_FILE = '.rsync-system-backup.kept'
"""The file in a set's directory that records its kept snapshots."""

ONE_DAY = ('--prefer-recent', '--minutely=0', '--hourly=0', '--daily=1', '--weekly=0', '--monthly=0')
"""A rotation scheme that keeps only the newest snapshot of the newest day: it removes every earlier one of today."""

NAME_RULE = ("use letters, digits, '.', '_', '+' and '-', starting with a letter or a digit, at most 64 characters "
             "(such as before-upgrade).")
"""The end of the message for a name that can't keep a snapshot."""


@pytest.fixture
def source(tmp_path):
    """A small source tree."""
    root = tmp_path / 'source'
    write_file(root / 'etc' / 'hostname', b'kept-test\n')
    return root


def kept_in_listing(run, destination):
    """
    List a set with ``--list --json`` and give the names that keep each snapshot.

    :param run: Runs the command (``run_cli`` or ``client_home.run``).
    :param destination: The set's latest (a path or string).
    :returns: A :class:`dict` from snapshot names to lists of names (an empty list for a snapshot that isn't kept).
    """
    result = run('--list', '--json', destination)
    assert result.returncode == 0, result
    return dict((snapshot['name'], snapshot['kept']) for snapshot in json.loads(result.stdout)['snapshots'])


def test_kept_snapshot_outlives_rotation(run_cli, tmp_path, source):
    """
    A manual run with --keep=NAME makes a snapshot that later rotations don't remove, in one command.

    The same runs without --keep (the control) lose that snapshot to the next rotation.
    """
    kept, control = tmp_path / 'kept', tmp_path / 'control'
    for backups, keep in ((kept, ['--keep=before-upgrade']), (control, [])):
        assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
        result = run_cli('--disable-notifications', *keep + list(ONE_DAY) + [source, backups / 'latest'])
        assert result.returncode == 0, result
        if keep:
            assert '(kept as before-upgrade)' in result.stderr, result
        write_file(source / 'etc' / 'after-upgrade', b'new\n')
        result = run_cli('--disable-notifications', *ONE_DAY + (source, backups / 'latest'))
        assert result.returncode == 0, result
    (before_upgrade, after_upgrade) = snapshot_names(kept)
    assert not (kept / before_upgrade / 'etc' / 'after-upgrade').exists()
    assert (kept / after_upgrade / 'etc' / 'after-upgrade').is_file()
    assert len(snapshot_names(control)) == 1
    assert kept_in_listing(run_cli, kept / 'latest') == {before_upgrade: ['before-upgrade'], after_upgrade: []}
    listing = run_cli('--list', kept / 'latest')
    assert listing.returncode == 0, listing
    header, first, second = listing.stdout.splitlines()[:3]
    assert header.endswith('METHOD         KEPT AS')
    assert first.startswith(before_upgrade) and first.endswith(' before-upgrade')
    assert second.startswith(after_upgrade) and not second.endswith('before-upgrade')


@pytest.mark.parametrize('prefer_recent, hour', [
    (False, ['2024-05-01_10-00-00', '2024-05-01_10-20-00']),
    (True, ['2024-05-01_10-00-00', '2024-05-01_10-40-00']),
])
def test_kept_snapshot_is_not_counted(run_cli, tmp_path, prefer_recent, hour):
    """
    Rotation keeps and removes the other snapshots as if a kept one weren't there.

    The kept snapshot is the one rotate-backups would keep for its hour (the
    oldest, or with --prefer-recent the newest, as a manual run before an
    upgrade is); counted, it would cost the other snapshot of that hour.
    """
    kept_one = hour[1] if prefer_recent else hour[0]
    other = hour[0] if prefer_recent else hour[1]
    names = hour + ['2024-05-01_09-00-00', '2024-05-01_09-30-00', '2024-05-01_11-00-00', '2024-05-01_11-30-00']
    with_kept, without = tmp_path / 'with-kept' / 'backups', tmp_path / 'without' / 'backups'
    make_snapshots(with_kept, names)
    make_snapshots(without, [name for name in names if name != kept_one])
    for backups in (with_kept, without):
        (backups / 'latest').mkdir()
        (backups / '.rsync-system-backup').write_text('')
    assert run_cli('--keep=before-upgrade:%s' % kept_one, with_kept / 'latest').returncode == 0
    options = ['--hourly=24', '--daily=0', '--weekly=0', '--monthly=0'] + (['--prefer-recent'] if prefer_recent else [])
    for backups in (with_kept, without):
        result = run_cli('--disable-notifications', '-r', *options + [backups / 'latest'])
        assert result.returncode == 0, result
    assert other in snapshot_names(without) and len(snapshot_names(without)) < len(names) - 1
    assert snapshot_names(with_kept) == sorted(snapshot_names(without) + [kept_one])
    # Counted as an ordinary snapshot (no mark), it takes the hour's place of the other.
    (with_kept / KEPT_FILE).unlink()
    assert run_cli('--disable-notifications', '-r', *options + [with_kept / 'latest']).returncode == 0
    assert kept_one in snapshot_names(with_kept) and other not in snapshot_names(with_kept)


def test_keep_existing_and_release(run_cli, source, backups):
    """--keep=NAME:SNAPSHOT keeps an existing snapshot; after --release=NAME the next rotation removes it."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    (first,) = snapshot_names(backups)
    result = run_cli('-n', '--keep=first-backup:%s' % first, backups / 'latest')
    assert result.returncode == 0, result
    assert 'Would keep %s as first-backup.' % (backups / first) in result.stderr
    assert not (backups / KEPT_FILE).exists()
    assert run_cli('--keep=first-backup:%s' % first, backups / 'latest').returncode == 0
    assert run_cli('--keep=also-first:%s' % first, backups).returncode == 0
    assert kept_in_listing(run_cli, backups / 'latest') == {first: ['first-backup', 'also-first']}
    assert run_cli('--disable-notifications', *ONE_DAY + (source, backups / 'latest')).returncode == 0
    assert first in snapshot_names(backups)
    assert run_cli('--release=first-backup', backups / 'latest').returncode == 0
    assert run_cli('--disable-notifications', '-r', *ONE_DAY + (backups / 'latest',)).returncode == 0
    assert first in snapshot_names(backups), "still kept as also-first"
    assert run_cli('--release', 'also-first', backups / 'latest').returncode == 0
    assert kept_in_listing(run_cli, backups / 'latest')[first] == []
    assert run_cli('--disable-notifications', '-r', *ONE_DAY + (backups / 'latest',)).returncode == 0
    assert first not in snapshot_names(backups) and len(snapshot_names(backups)) == 1


def test_name_in_use_is_refused_before_the_transfer(run_cli, source, backups):
    """A name that keeps another snapshot is refused before rsync runs: no transfer, no snapshot."""
    assert run_cli('--disable-notifications', '--keep=before-upgrade', source, backups / 'latest').returncode == 0
    (first,) = snapshot_names(backups)
    write_file(source / 'etc' / 'new', b'new\n')
    result = run_cli('--disable-notifications', '--keep=before-upgrade', source, backups / 'latest')
    assert_failed(result, "The name before-upgrade keeps the snapshot %s in %s already: give another name, or let "
                          "that snapshot go first with --release=before-upgrade." % (first, backups))
    assert snapshot_names(backups) == [first] and not (backups / 'latest' / 'etc' / 'new').exists()
    # A name whose snapshot was removed by hand is free again.
    os.rename(str(backups / first), str(backups / 'removed-by-hand'))
    assert run_cli('--disable-notifications', '--keep=before-upgrade', source, backups / 'latest').returncode == 0
    (second,) = snapshot_names(backups)
    assert recorded_marks(backups) == ['before-upgrade %s' % second]


def recorded_marks(backups):
    """The lines of a set's record of kept snapshots, without its comments (a list of strings)."""
    return [line for line in (backups / KEPT_FILE).read_text().splitlines() if not line.startswith('#')]


def test_mark_of_a_removed_snapshot_never_moves_to_a_new_one(run_cli, source, backups):
    """
    A mark whose snapshot is gone stays gone, also when the run's snapshot
    gets that snapshot's name (two runs in one second): the record names
    every second of the next minute, and the run keeps only its own mark.
    """
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    now = datetime.datetime.now().replace(microsecond=0)
    stale = ['gone-%02i %s' % (offset, (now + datetime.timedelta(seconds=offset)).strftime('%Y-%m-%d_%H-%M-%S'))
             for offset in range(60)]
    (backups / KEPT_FILE).write_text(''.join(line + '\n' for line in stale))
    for name in snapshot_names(backups):
        os.rename(str(backups / name), str(backups / ('removed-by-hand-' + name)))
    assert run_cli('--disable-notifications', '--keep=mine', source, backups / 'latest').returncode == 0
    (made,) = snapshot_names(backups)
    assert made in [line.split()[1] for line in stale]
    assert recorded_marks(backups) == ['mine %s' % made]


@pytest.mark.parametrize('option', ['--keep', '--release'])
@pytest.mark.parametrize('name', ['-x', 'a/b', '', 'a b', '.hidden', 'x' * 65, 'caf\u00e9', '..', 'a\tb'])
def test_invalid_names(run_cli, backups, option, name):
    """A name that could be an option, a path or split by the record's format is a usage error."""
    result = run_cli('%s=%s' % (option, name), backups / 'latest')
    assert result.returncode == 1, result
    assert result.stderr == "Error: Invalid %s name %r: %s\n" % (option, name, NAME_RULE), result


@pytest.mark.parametrize('arguments, message', [
    (['-b', '--keep=x', 'SOURCE', 'DESTINATION'],
     "Aborting due to error: --keep=x keeps the snapshot that this run makes, but -b or -r without -s makes none: "
     "add -s, or keep an existing snapshot with --keep=x:SNAPSHOT."),
    (['-r', '--keep=x', 'DESTINATION'], "but -b or -r without -s makes none"),
    (['--keep=x', 'SOURCE', 'localhost::module/latest'],
     "Aborting due to error: --keep=x keeps the snapshot that this run makes, but the rsync daemon's post-xfer exec "
     "run makes the snapshots of localhost::module/latest: keep one there with 'rsync-system-backup "
     "--keep=x:SNAPSHOT /path/of/the/module'."),
    (['--keep=x', '--list', 'DESTINATION'],
     "Error: --keep=x keeps the snapshot that a backup makes, so it doesn't go with --list."),
    (['--keep=x:2024-05-01_00-00-00', 'SOURCE', 'DESTINATION'],
     "Error: --keep=NAME:SNAPSHOT keeps an existing snapshot and takes DESTINATION alone; to keep the snapshot of "
     "this backup, give --keep=NAME (without ':SNAPSHOT')."),
    (['--keep=x:', 'DESTINATION'],
     "Error: --keep=x: gives no snapshot after the colon: give --keep=x:SNAPSHOT (a snapshot that --list shows), or "
     "--keep=x to keep the snapshot of a backup."),
    (['-r', '--release=x', 'DESTINATION'], "Error: --release works on existing snapshots, so it doesn't go with -b, "
                                           "-s or -r."),
    (['--release=x', '--keep=y:z', 'DESTINATION'], "Error: --release and --keep can't be combined"),
])
def test_what_doesnt_go_with_keep(run_cli, source, backups, arguments, message):
    """--keep=NAME needs a snapshot of this run; the actions take DESTINATION alone; one line each, nothing written."""
    substitutes = dict(SOURCE=str(source), DESTINATION=str(backups / 'latest'))
    result = run_cli(*[substitutes.get(argument, argument) for argument in arguments])
    assert result.returncode == 1, result
    assert message in result.stderr and len(result.stderr.splitlines()) == 1, result
    assert not backups.exists()


def test_unknown_snapshot_and_name(run_cli, source, backups, tmp_path):
    """Keeping a snapshot that isn't there, releasing a name that keeps none, and a place without a set are refused."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    assert run_cli('--keep=one:%s' % name, backups / 'latest').returncode == 0
    for snapshot in ('2001-01-01_00-00-00', 'latest', '../%s' % name):
        result = run_cli('--keep=x:%s' % snapshot, backups / 'latest')
        assert_failed(result, "%r is not a snapshot in %s: give one of the names that --list shows."
                              % (snapshot, backups))
    result = run_cli('--release=two', backups / 'latest')
    assert_failed(result, "No snapshot in %s is kept as two: give one of the names that --list shows (one)."
                          % backups)
    result = run_cli('--release=one', tmp_path / 'elsewhere' / 'latest')
    assert_failed(result, "is neither the latest of a backup set nor a set's directory")
    assert not (tmp_path / 'elsewhere').exists()


def test_record_is_never_followed(run_cli, tmp_path, source, backups):
    """A symbolic link planted under the record's name is neither read nor written through: the run stops."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    victim = tmp_path / 'victim'
    victim.write_text('precious\n')
    os.symlink(str(victim), str(backups / KEPT_FILE))
    result = run_cli('--keep=x:%s' % name, backups / 'latest')
    assert_failed(result, "Can't access %s/%s" % (backups, KEPT_FILE))
    result = run_cli('--disable-notifications', '-r', backups / 'latest')
    assert_failed(result, "Can't access %s/%s" % (backups, KEPT_FILE))
    assert victim.read_text() == 'precious\n' and os.path.islink(str(backups / KEPT_FILE))
    assert snapshot_names(backups) == [name]


def test_unreadable_record_stops_rotation(run_cli, source, backups):
    """A line of the record that can't be read stops rotation before anything is removed."""
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-30-00', '2024-05-01_11-00-00'])
    (backups / 'latest').mkdir()
    (backups / '.rsync-system-backup').write_text('')
    (backups / KEPT_FILE).write_text('# comment\nbefore-upgrade 2024-05-01_10-30-00\nbefore upgrade 2024-05-01\n')
    options = ('--hourly=1', '--daily=0', '--weekly=0', '--monthly=0')
    result = run_cli('--disable-notifications', '-r', *options + (backups / 'latest',))
    assert_failed(result, "Line 3 of %s/%s is not 'NAME SNAPSHOT' ('before upgrade 2024-05-01'): correct or remove "
                          "it; until then no snapshot is removed, so that none that is kept goes."
                          % (backups, KEPT_FILE))
    assert snapshot_names(backups) == ['2024-05-01_10-00-00', '2024-05-01_10-30-00', '2024-05-01_11-00-00']
    (backups / KEPT_FILE).write_text('before-upgrade 2024-05-01_10-30-00\n')
    result = run_cli('--disable-notifications', '-r', *options + (backups / 'latest',))
    assert result.returncode == 0, result
    assert snapshot_names(backups) == ['2024-05-01_10-30-00', '2024-05-01_11-00-00']


def test_dry_run_shows_the_kept_snapshot(run_cli, source, backups):
    """A dry run with --keep names the snapshot it would keep and plans rotation with it kept."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    result = run_cli('--disable-notifications', '-n', '--keep=before-upgrade', *ONE_DAY + (source, backups / 'latest'))
    assert result.returncode == 0, result
    assert 'INFO Would keep the snapshot %s/' % backups in result.stderr
    assert ' (kept as before-upgrade).' in result.stderr and 'would be made and kept as before-upgrade' in result.stderr
    assert not (backups / KEPT_FILE).exists() and len(snapshot_names(backups)) == 1


def test_keep_over_ssh(source, client_home, ssh_server):
    """On an SSH destination the record is read and written there (in the server's private home), and kept."""
    backups = os.path.join(HOME_DIRECTORY, 'backups')
    destination = '%s:%s/latest' % (SERVER_ALIAS, backups)
    view = server_view(ssh_server, backups)
    assert client_home.run(source, destination).returncode == 0
    result = client_home.run('--keep=before-upgrade', *ONE_DAY + (source, destination))
    assert result.returncode == 0, result
    (first, kept) = snapshot_names(view)
    with open(os.path.join(view, KEPT_FILE)) as handle:
        assert handle.read().splitlines()[-1] == 'before-upgrade %s' % kept
    assert not os.path.exists(backups) and not (client_home.upper / 'backups').exists()
    assert client_home.run(*ONE_DAY + (source, destination)).returncode == 0
    assert kept_in_listing(client_home.run, destination)[kept] == ['before-upgrade']
    assert kept in snapshot_names(view) and first not in snapshot_names(view)
    assert client_home.run('--release=before-upgrade', destination).returncode == 0
    assert client_home.run('-r', *ONE_DAY + (destination,)).returncode == 0
    (newest,) = snapshot_names(view)
    assert kept != newest
    assert client_home.run('--keep=last:%s' % newest, destination).returncode == 0
    with open(os.path.join(view, KEPT_FILE)) as handle:
        assert handle.read().splitlines()[-1] == 'last %s' % newest
    assert kept_in_listing(client_home.run, destination) == {newest: ['last']}
