"""
Tests of ``--exclude-from=FILE`` (``transfer/exclude_files.py``, issue 24): rsync's syntax, real runs, refusals.

A backup with an exclude file leaves out exactly what rsync's own
``--exclude-from`` leaves out of the same tree; the file's name never
reaches rsync; a file that can't be read is refused before anything is
written; ``--show-excludes`` shows the file's patterns in their place.
"""

import os
import subprocess

import pytest

from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.transfer.command import DEFAULT_EXCLUDED_ROOTS
from rsync_system_backup.transfer.exclude_files import read_exclude_file
from support.stand_ins import log_arguments, logged_calls, real_program
from support.trees import read_tree, snapshot_names, write_tree

EXCLUDE_FILE = (b'# a comment, and a file of that name\n; another\n\n*.iso\r\n+ keep.log\r*.log\n'
                b'/top-only/\r\nname with  blanks \n')
"""An exclude file with every part of rsync's syntax: comments, a blank line, three kinds of line ends, an include."""

SOURCE_FILES = {
    '# a comment, and a file of that name': 'kept: comment lines are no patterns',
    '; another': 'kept',
    'disk.iso': 'left out',
    'deeper/cd.iso': 'left out',
    'keep.log': 'kept by the include',
    'other.log': 'left out',
    'top-only/file': 'left out',
    'deeper/top-only/file': 'kept: the pattern is anchored',
    'name with  blanks ': 'left out',
    'plain': 'kept',
}
"""A source whose names test each line of :data:`EXCLUDE_FILE`."""


def test_reads_the_syntax_of_rsync(tmp_path):
    """Comment lines and blank lines are skipped; CR, LF and CR LF end lines; everything else is a pattern."""
    path = tmp_path / 'excludes'
    path.write_bytes(EXCLUDE_FILE + b'latin1-\xe9')
    assert read_exclude_file(str(path)) == ['*.iso', '+ keep.log', '*.log', '/top-only/', 'name with  blanks ',
                                            os.fsdecode(b'latin1-\xe9')]


@pytest.mark.parametrize('content, message', [
    (b'*.iso\n  \n', "Line 2 of the exclude file %s (--exclude-from) holds only blanks"),
    (b'a\0b\n', "Line 1 of the exclude file %s (--exclude-from) holds a NUL byte"),
    (b'*.iso\n!\n', "Line 2 of the exclude file %s (--exclude-from): the exclude pattern '!' makes rsync forget"),
])
def test_refuses_lines_that_rsync_would_misread(tmp_path, content, message):
    """A line of blanks (rsync would exclude names of blanks), a NUL byte and rsync's "clear" (!) are refused."""
    path = tmp_path / 'excludes'
    path.write_bytes(content)
    with pytest.raises(InvalidOptionError) as error:
        read_exclude_file(str(path))
    assert str(error.value).startswith(message % path)


def test_backup_leaves_out_what_rsync_leaves_out(run_cli, tmp_path, fake_bin):
    """A backup with --exclude-from holds what rsync --exclude-from copies; rsync gets patterns, not the file."""
    source = tmp_path / 'source'
    write_tree(source, SOURCE_FILES)
    excludes = tmp_path / 'excludes'
    excludes.write_bytes(EXCLUDE_FILE)
    plain = tmp_path / 'plain'
    subprocess.run(['rsync', '-a', '--exclude-from=%s' % excludes, '%s/' % source, str(plain)], check=True)
    rsync_calls = tmp_path / 'rsync-calls'
    log_arguments(fake_bin / 'rsync', rsync_calls, real_program('rsync'))
    backups = tmp_path / 'backups'
    result = run_cli('--disable-notifications', '--exclude-from', excludes, source, backups / 'latest')
    assert result.returncode == 0, result
    expected = read_tree(plain)
    assert read_tree(backups / 'latest') == expected
    assert sorted(expected) == ['# a comment, and a file of that name', '; another', 'deeper/top-only/file',
                                'keep.log', 'plain']
    [snapshot] = snapshot_names(backups)
    assert read_tree(backups / snapshot) == expected
    arguments = [argument for call in logged_calls(rsync_calls) for argument in call]
    assert '--exclude=+ keep.log' in arguments and '--exclude=name with  blanks ' in arguments
    assert not any(str(excludes) in argument for argument in arguments)


def test_file_name_is_never_an_option(run_cli, tmp_path):
    """A file named like an rsync option is read as a file (the name only ever reaches open())."""
    (tmp_path / '--delete-after').write_text('*.iso\n')
    source = tmp_path / 'source'
    write_tree(source, {'disk.iso': 'left out', 'plain': 'kept'})
    backups = tmp_path / 'backups'
    result = run_cli('--disable-notifications', '--exclude-from=--delete-after', source, backups / 'latest',
                     cwd=str(tmp_path))
    assert result.returncode == 0, result
    assert read_tree(backups / 'latest') == {'plain': 'kept'}


def test_show_excludes_shows_the_patterns_in_place(run_cli, tmp_path):
    """The file's patterns come where the option stands among the -x patterns."""
    excludes = tmp_path / 'excludes'
    excludes.write_bytes(b'# skipped\nb1\nb2\n')
    result = run_cli('--show-excludes', '-x', 'a', '--exclude-from=%s' % excludes, '-x', 'c')
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == list(DEFAULT_EXCLUDED_ROOTS) + ['a', 'b1', 'b2', 'c']


@pytest.mark.parametrize('make, message', [
    (lambda path: None, "Can't read the exclude file {path} (--exclude-from): No such file or directory."),
    (lambda path: path.mkdir(), "The exclude file {path} (--exclude-from) is not a regular file: give a file that "
                                "holds the patterns, one per line."),
    (lambda path: os.mkfifo(str(path)), "The exclude file {path} (--exclude-from) is not a regular file"),
    (lambda path: path.write_text('ok\n \n'), "Line 2 of the exclude file {path} (--exclude-from) holds only blanks, "
                                              "which rsync would take for a pattern: empty the line, or write ? for "
                                              "each blank."),
])
def test_unreadable_file_is_refused_before_anything_is_written(run_cli, tmp_path, make, message):
    """A missing file, a directory, a pipe (which would block the run) or a bad line: one line, exit code 1, no set."""
    path = tmp_path / 'excludes'
    make(path)
    source = tmp_path / 'source'
    write_tree(source, {'plain': 'kept'})
    backups = tmp_path / 'backups'
    result = run_cli('--disable-notifications', '--exclude-from=%s' % path, source, backups / 'latest', timeout=30)
    assert result.returncode == 1, result
    assert result.stderr.startswith("Error: " + message.format(path=path)), result
    assert len(result.stderr.splitlines()) == 1, result
    assert not backups.exists()
