"""
Tests of ``--diff=OLD[:NEW]``: exactly the changes made between two backups, from manifests or by walking.
"""

import os

import pytest

from support.cli import assert_failed
from support.remote import SERVER_ALIAS
from support.trees import snapshot_names, write_file


@pytest.fixture
def source(tmp_path):
    """A small source tree."""
    root = tmp_path / 'source'
    write_file(root / 'etc' / 'hostname', b'diff-test\n')
    write_file(root / 'etc' / 'motd', b'hello\n', mode=0o644)
    write_file(root / 'home' / 'alice' / 'notes', b'notes\n')
    write_file(root / 'home' / 'alice' / 'old', b'to be removed\n')
    write_file(root / os.fsdecode(b'caf\xe9'), b'latin-1 name')
    write_file(root / 'var' / 'data', b'data' * 100)
    return root


def add_remove_rewrite_chmod(source):
    """Add, remove, rewrite and chmod one entry each of the :func:`source` tree (and add a directory)."""
    write_file(source / 'home' / 'bob' / 'new file', b'added\n')
    os.unlink(str(source / 'home' / 'alice' / 'old'))
    os.unlink(os.path.join(os.fsencode(str(source)), b'caf\xe9'))
    write_file(source / 'var' / 'data', b'DATA' * 101)
    os.chmod(str(source / 'etc' / 'motd'), 0o600)


def two_backups(run, source, backups, *options, destination=None):
    """
    Back up, change the source (:func:`add_remove_rewrite_chmod()`), back up again; give the two snapshot names.

    :param run: Runs the program with the given arguments (``run_cli`` or ``client_home.run``).
    :param source: The source tree (a path).
    :param backups: The directory that holds ``latest`` and the snapshots, as seen here (a path).
    :param options: Options for both runs (strings).
    :param destination: The destination to give the program, or :data:`None` for ``backups/latest``.
    """
    destination = backups / 'latest' if destination is None else destination
    assert run(*(options + (source, destination))).returncode == 0
    add_remove_rewrite_chmod(source)
    assert run(*(options + (source, destination))).returncode == 0
    old, new = snapshot_names(backups)
    return old, new


def expected_lines(new):
    """
    The lines (up to the details in parentheses) of the diff from before to after :func:`add_remove_rewrite_chmod()`.

    :param new: The name of the later snapshot (a string).
    :returns: A list of strings.
    """
    return [
        '%s: added home/bob' % new,
        '%s: added home/bob/new file' % new,
        '%s: removed caf\\xe9' % new,
        '%s: removed home/alice/old' % new,
        '%s: changed etc/motd' % new,
        '%s: changed var/data' % new,
    ]


def test_diff_from_manifests(run_cli, source, backups):
    """With manifests the diff lists exactly the added, removed and changed entries, content included."""
    old, new = two_backups(run_cli, source, backups, '--disable-notifications', '--manifest')
    result = run_cli('-v', '--diff=%s' % old, backups / 'latest')
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert [line.split(' (')[0] for line in lines] == expected_lines(new), result
    assert lines[4].endswith('(mode 0644 -> 0600)')
    assert 'size 400 -> 404' in lines[5] and 'content ' in lines[5]
    assert 'from the manifests' in result.stderr
    # NEW given explicitly, and in the other direction.
    result = run_cli('--diff=%s:%s' % (new, old), backups / 'latest')
    assert result.returncode == 0, result
    assert '%s: removed home/bob/new file' % old in result.stdout.splitlines()
    assert '%s: added home/alice/old' % old in result.stdout.splitlines()


def test_diff_by_walking(run_cli, source, backups):
    """Without manifests with entries the same changes are found by walking both snapshots."""
    old, new = two_backups(run_cli, source, backups, '--disable-notifications', '--no-manifest')
    result = run_cli('-v', '--diff=%s:%s' % (old, new), backups / 'latest')
    assert result.returncode == 0, result
    assert [line.split(' (')[0] for line in result.stdout.splitlines()] == expected_lines(new), result
    assert 'by walking both snapshots' in result.stderr


def test_forms_with_spaces(run_cli, source, backups):
    """
    --diff OLD DEST, --diff OLD NEW DEST and --diff DEST (the newest against the one before) read as meant (issue 22).

    getopt takes the word after --diff for its value, so --diff DEST used to
    take DESTINATION for OLD; --diff=OLD[:NEW] DEST and DEST --diff OLD keep working.
    """
    old, new = two_backups(run_cli, source, backups, '--disable-notifications')
    expected = run_cli('--diff=%s:%s' % (old, new), backups / 'latest')
    assert expected.returncode == 0 and expected.stdout, expected
    for arguments in (['--diff', old, backups / 'latest'], ['--diff', old, new, backups / 'latest'],
                      [backups / 'latest', '--diff', old], ['--diff=%s' % old, backups / 'latest'],
                      ['--diff', backups / 'latest'], ['--diff=%s' % (backups / 'latest')], ['--diff', backups]):
        result = run_cli(*arguments)
        assert result.returncode == 0, (arguments, result)
        assert result.stdout == expected.stdout, (arguments, result)
    result = run_cli('--diff', new, old, backups / 'latest')
    assert result.returncode == 0, result
    assert '%s: removed home/bob/new file' % old in result.stdout.splitlines()


def test_forms_without_what_they_need(run_cli, tmp_path, source, backups):
    """--diff SNAPSHOT without DESTINATION, and --diff DEST with one snapshot, say what to give (issue 22)."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    result = run_cli('--diff', backups / 'latest')
    assert_failed(result, "--diff without OLD compares the newest snapshot with the one before it, but %s holds only "
                          "%s: make another backup first, or give OLD and NEW." % (backups, name))
    result = run_cli('--diff', name, cwd=str(backups))
    assert_failed(result, "--diff %s gives a snapshot but no DESTINATION: give the latest of its backup set after it, "
                          "as in --diff %s ./latest." % (name, name))
    result = run_cli('--diff', name, cwd=str(tmp_path))
    assert_failed(result, "as in --diff %s /mnt/backups/latest." % name)


def test_unknown_snapshot(run_cli, source, backups):
    """A name that isn't a snapshot of the set is refused in one line that lists the snapshots there are."""
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    for spec in ('../../etc', '2001-01-01_00-00-00', '%s:latest' % name, '-rf'):
        result = run_cli('--diff=%s' % spec, backups / 'latest')
        assert result.returncode == 1, result
        assert 'is not a snapshot in' in result.stderr and name in result.stderr, result
        assert 'Traceback' not in result.stderr


def test_diff_over_ssh(tmp_path, source, client_home):
    """Over SSH the comparison runs on the server and gives the same lines."""
    backups = tmp_path / 'remote-backups'
    destination = '%s:%s' % (SERVER_ALIAS, backups / 'latest')
    old, new = two_backups(client_home.run, source, backups, '--manifest', destination=destination)
    result = client_home.run('--diff=%s:%s' % (old, new), destination)
    assert result.returncode == 0, result
    assert [line.split(' (')[0] for line in result.stdout.splitlines()] == expected_lines(new), result
