"""
Tests of what a run shows: progress and summary on a terminal, one line without one.

The summary is :mod:`rsync_system_backup.reporting.summary`'s, the progress line
:mod:`rsync_system_backup.transfer.progress`'s.

The terminal is a real pseudo-terminal (the pty module; see
:func:`support.cli.run_in_terminal`). The system log has its own tests
(``test_system_log.py``).
"""

import re

import pytest

from support.cli import command_environment, run_in_terminal
from support.stand_ins import real_program, write_script
from support.trees import make_bulky_source, snapshot_names, take_manifest

ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
OLD_SNAPSHOTS = ['2020-01-01_00-00-00', '2020-01-01_00-30-00']
"""Two old snapshots in one month: monthly=always keeps the first, so rotation removes the second."""


@pytest.fixture
def source(tmp_path):
    """A source directory with 20 files of 256 KiB."""
    return make_bulky_source(tmp_path / 'source', files=20, size=256 * 1024)


@pytest.fixture
def backups(tmp_path):
    """A backup directory holding two old snapshots (but no ``latest`` yet), closed to other users as it should be."""
    directory = tmp_path / 'backups'
    directory.mkdir(mode=0o700)
    for name in OLD_SNAPSHOTS:
        (directory / name).mkdir()
    return directory


def new_snapshot(backups):
    """The name of the one snapshot that isn't an old one."""
    names = [name for name in snapshot_names(backups) if name not in OLD_SNAPSHOTS]
    assert len(names) == 1, names
    return names[0]


def test_terminal_shows_progress_and_summary(source, backups, fake_bin, tmp_path):
    """On a terminal: colours, live progress redrawn in place, then a summary block with every detail."""
    environment = command_environment(fake_bin, HOME=str(tmp_path))
    returncode, output = run_in_terminal(['--disable-notifications', source, backups / 'latest'], environment)
    assert returncode == 0, output
    assert ANSI_ESCAPE.search(output.split('Transferring: ')[0]), "log messages should be coloured"
    progress = re.findall(r'\r\x1b\[KTransferring: (\d+)%, ([^\r\n]*)', output)
    assert progress, output
    assert all(0 <= int(percentage) <= 100 and '/s' in rest for percentage, rest in progress)
    snapshot = new_snapshot(backups)
    summary = output[output.index('Summary of the backup:'):]
    lines = summary.splitlines()
    assert lines[1] == '  Destination: %s' % (backups / 'latest')
    assert lines[2] == '  Steps done:  transfer, snapshot and rotation'
    assert re.match(r'  Transfer:    20 of 20 files transferred, (0 deleted, )?5\.\d+ MB sent, in [\d.]+ seconds?$',
                    lines[3]), lines[3]
    assert re.match(r'  Snapshot:    %s, in [\d.]+ seconds?$' % snapshot, lines[4]), lines[4]
    assert re.match(r'  Rotation:    2 snapshots kept, 1 removed \(2020-01-01_00-30-00\), in [\d.]+ seconds?$',
                    lines[5]), lines[5]
    assert re.match(r'  Free space:  [\d.]+ [KMGT]?B \(\d+% of [\d.]+ [KMGT]?B\)$', lines[6]), lines[6]
    assert re.match(r'  Total time:  [\d.]+ seconds?$', lines[7]), lines[7]
    assert len(lines) == 8
    assert snapshot_names(backups) == ['2020-01-01_00-00-00', snapshot]


@pytest.mark.parametrize('method, deleted', [('hardlink', ' 1 deleted,'), ('link-dest', '')])
def test_terminal_summary_of_changes(source, backups, fake_bin, tmp_path, method, deleted):
    """
    A second run counts the changed and deleted files.

    With the link-dest method rsync builds a new tree and deletes nothing,
    so the summary doesn't claim a number of deleted files.
    """
    environment = command_environment(fake_bin, HOME=str(tmp_path))
    arguments = ['--snapshot-method=%s' % method, '--disable-notifications', source, backups / 'latest']
    assert run_in_terminal(arguments, environment)[0] == 0
    (source / 'file-000').unlink()
    (source / 'file-001').write_bytes(b'changed')
    returncode, output = run_in_terminal(arguments, environment)
    assert returncode == 0, output
    transfer = r'  Transfer:    1 of 19 files transferred,%s [\d.]+ (bytes|KB) sent, in ' % deleted
    assert re.search(transfer, output), output
    assert re.search(r'  Rotation:    3 snapshots kept, 0 removed, in ', output), output


@pytest.mark.parametrize('code', [23, 24])
def test_terminal_summary_of_a_partial_transfer(source, backups, fake_bin, tmp_path, code):
    """On a terminal, exit code 23 heads the summary block with the missing files; 24 adds a note and exits 0."""
    write_script(fake_bin / 'rsync', '%s "$@"\necho "rsync: [sender] open \\"/x\\" failed" >&2\nexit %i\n'
                 % (real_program('rsync'), code))
    environment = command_environment(fake_bin, HOME=str(tmp_path))
    returncode, output = run_in_terminal(['--disable-notifications', source, backups / 'latest'], environment)
    if code == 23:
        assert returncode == 2, output
        assert ("\nThe backup completed with errors: 1 file is missing from it (rsync's messages "
                "before this summary say which and why):\n  Destination: ") in output
    else:
        assert returncode == 0, output
        assert '\nSummary of the backup:\n' in output
        assert re.search(r'\n  Note: +some files vanished during the transfer \(normal on a live system\)\n', output)
    new_snapshot(backups)


def test_terminal_quiet(source, backups, fake_bin, tmp_path):
    """-q on a terminal shows neither progress nor summary (nor informational messages)."""
    environment = command_environment(fake_bin, HOME=str(tmp_path))
    returncode, output = run_in_terminal(['-q', '--disable-notifications', source, backups / 'latest'], environment)
    assert returncode == 0, output
    assert output == ''


def test_without_terminal_one_line(run_cli, source, backups, tmp_path):
    """Without a terminal: no progress, no colours, and the summary in one line at info level."""
    result = run_cli('--disable-notifications', source, backups / 'latest', env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert result.stdout == ''
    assert '\x1b[' not in result.stderr
    assert 'Transferring:' not in result.stderr
    assert 'Summary' not in result.stderr
    snapshot = new_snapshot(backups)
    summaries = [line for line in result.stderr.splitlines() if 'Backup to' in line]
    assert len(summaries) == 1
    assert re.search(
        r' INFO Backup to %s done in [\d.]+ seconds?: 20 of 20 files transferred, (0 deleted, )?5\.\d+ MB sent; '
        r'snapshot %s; 2 snapshots kept, 1 removed; [\d.]+ [KMGT]?B free \(\d+%% of [\d.]+ [KMGT]?B\)\.$'
        % (re.escape(str(backups / 'latest')), snapshot), summaries[0]), summaries[0]


def test_without_terminal_quiet(run_cli, source, backups, tmp_path):
    """-q without a terminal leaves out the summary line too."""
    result = run_cli('-q', '--disable-notifications', source, backups / 'latest', env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert result.output == ''


def test_dry_run_output(run_cli, source, backups, tmp_path):
    """A first dry run lists no file (only -v does) and counts what it would transfer and create."""
    result = run_cli('--dry-run', '--disable-notifications', source, backups / 'latest', env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert result.stdout == '', result
    # rsync also creates the top directory, latest.
    assert re.search(r'Dry run of the backup to \S+ done in [^:]+: would transfer 20 of 20 files \(5\.24 MB\), '
                     r'create 21 entries and delete 0; snapshot \S+ \(would be made\); would keep 2 snapshots and '
                     r'remove 1; ', result.stderr), result
    assert snapshot_names(backups) == OLD_SNAPSHOTS
    assert not (backups / 'latest').exists()


def change_source(source):
    """
    Change a backed-up source: 2 files deleted, 1 changed, a directory and 3 files added.

    :returns: The names that rsync's list of a dry run holds for them (strings).
    """
    (source / 'file-000').unlink()
    (source / 'file-001').unlink()
    (source / 'file-002').write_bytes(b'x' * 1000)
    (source / 'new-a').write_bytes(b'a' * 300)
    (source / 'new-b').write_bytes(b'b' * 700)
    (source / 'new-dir').mkdir()
    (source / 'new-dir' / 'x').write_bytes(b'c' * 100)
    return ['deleting file-000', 'deleting file-001', 'file-002', 'new-a', 'new-b', 'new-dir/', 'new-dir/x']


def test_dry_run_counts_changes(run_cli, source, backups, tmp_path):
    """
    A dry run of a changed source says how many files it would transfer (and their size), create and delete.

    Without -v it lists none of them; with -v rsync's list names each. Neither changes a thing in the backup.
    """
    environment = {'HOME': str(tmp_path)}
    arguments = ['--disable-notifications', source, backups / 'latest']
    assert run_cli(*arguments, env=environment).returncode == 0
    listed = change_source(source)
    before = take_manifest(backups)
    # 4 files of 2,100 bytes (file-002, new-a, new-b, new-dir/x) of 21, 4 entries new, 2 gone.
    counts = "would transfer 4 of 21 files (2.1 KB), create 4 entries and delete 2; "
    result = run_cli('--dry-run', *arguments, env=environment)
    assert result.returncode == 0, result
    assert counts in result.stderr, result
    assert result.stdout == '', result
    assert not any(name in result.output for name in ('file-00', 'new-', 'deleting')), result
    assert take_manifest(backups) == before
    result = run_cli('--dry-run', '-v', *arguments, env=environment)
    assert result.returncode == 0, result
    assert counts in result.stderr, result
    assert set(listed) <= set(result.stdout.splitlines()), result
    assert take_manifest(backups) == before


@pytest.mark.parametrize('list_changes', [True, False])
def test_dry_run_from_python(source, backups, capsys, list_changes):
    """From Python a dry run prints rsync's list by default (as 1.1 did); list_changes=False leaves the counts."""
    from rsync_system_backup import RsyncSystemBackup
    options = dict(list_changes=list_changes) if not list_changes else {}
    program = RsyncSystemBackup(source=str(source), destination=str(backups / 'latest'), dry_run=True,
                                notifications_enabled=False, **options)
    program.execute()
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith('file-')]
    assert sorted(listed) == (['file-%03i' % i for i in range(20)] if list_changes else [])
    assert program.summary.describe_transfer() == "would transfer 20 of 20 files (5.24 MB), create 21 entries and " \
                                                  "delete 0"
    assert not (backups / 'latest').exists()


def test_dry_run_summary_on_terminal(source, backups, fake_bin, tmp_path):
    """The summary block of a dry run says that nothing was changed."""
    environment = command_environment(fake_bin, HOME=str(tmp_path))
    returncode, output = run_in_terminal(['-n', '--disable-notifications', source, backups / 'latest'], environment)
    assert returncode == 0, output
    assert 'Summary of the dry run (nothing was changed):' in output
    assert re.search(r'  Transfer:    would transfer 20 of 20 files \(5\.24 MB\), create 21 entries and delete 0, in ',
                     output), output
    assert re.search(r'  Rotation:    would keep 2 snapshots and remove 1 \(2020-01-01_00-30-00\), in ', output)


def test_transfer_without_a_total():
    """A transfer planned from the source's snapshots counts what it transferred, not a total it never counted."""
    from rsync_system_backup.reporting.summary import BackupSummary
    from rsync_system_backup.transfer.execution import count_send_plan
    from rsync_system_backup.transfer.output import TransferStatistics
    summary = BackupSummary(destination='/mnt/backups/latest')
    with summary.timed('transfer'):
        summary.transfer_statistics = statistics = TransferStatistics()
    count_send_plan(statistics)
    assert summary.describe_transfer() == "0 files transferred, 0 bytes sent"
    for line in ('Number of files: 7 (reg: 3, dir: 4)', 'Number of regular files transferred: 3',
                 'Number of deleted files: 0', 'Total bytes sent: 2,000'):
        statistics.parse_line(line)
    count_send_plan(statistics)
    assert summary.describe_transfer() == "3 files transferred, 2 KB sent"
