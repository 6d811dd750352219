"""
Tests of ``--verify`` and ``--verify-all``: snapshots read back against their manifests, on real trees.

Each test makes real backups with the command, damages a snapshot the way
disks and people do (a flipped byte with the size and modification time
kept, chmod, chown, deletion, an extra file) and checks that the damage is
named, with the exit code that monitoring reads.
"""

import os

import pytest

from support.cli import command_environment, run_in_terminal
from support.differential import check_manifest
from support.remote import SERVER_ALIAS
from support.stand_ins import log_arguments, logged_calls, real_program
from support.trees import flip_byte, manifest_path, snapshot_names, write_file

EXIT_DIFFERENT = 2
"""The exit code of a snapshot that differs from its manifest."""


@pytest.fixture
def source(tmp_path):
    """A small source tree with files, a symbolic link and an awkward name."""
    root = tmp_path / 'source'
    write_file(root / 'etc' / 'hostname', b'verify-test\n')
    write_file(root / 'etc' / 'shadow', b'root:*:1:0:99999:7:::\n', mode=0o640)
    write_file(root / 'home' / 'alice' / 'notes', b'x' * 5000)
    write_file(root / 'home' / 'alice' / 'with\nnewline', b'odd')
    write_file(root / 'var' / 'data', b'data' * 1000)
    os.symlink('hostname', str(root / 'etc' / 'link'))
    return root


def test_intact_snapshot_passes(run_cli, source, backups):
    """A fresh snapshot is intact: exit code 0 and nothing on standard output."""
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    (snapshot,) = snapshot_names(backups)
    assert os.path.isfile(str(manifest_path(backups, snapshot)))
    result = run_cli('-v', '--verify', backups / 'latest')
    assert result.returncode == 0, result
    assert result.stdout == ''
    assert 'is intact' in result.stderr


def test_damage_is_named(run_cli, source, backups):
    """A flipped byte (same size and mtime), chmod, chown, a deleted and an extra file are each named."""
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    snapshot = backups / name
    flip_byte(str(snapshot / 'var' / 'data'), 1234)
    os.chmod(str(snapshot / 'etc' / 'shadow'), 0o644)
    os.chown(str(snapshot / 'etc' / 'hostname'), 4321, 4321)
    os.unlink(str(snapshot / 'home' / 'alice' / 'notes'))
    write_file(snapshot / 'home' / 'alice' / 'intruder', b'extra')
    result = run_cli('--verify', backups / 'latest')
    assert result.returncode == EXIT_DIFFERENT, result
    lines = sorted(result.stdout.splitlines())
    assert len(lines) == 6, result
    assert lines[0] == '%s: changed etc/hostname (owner 0 -> 4321, group 0 -> 4321)' % name
    assert lines[1] == '%s: changed etc/shadow (mode 0640 -> 0644)' % name
    # Adding and removing entries changes their directory's modification time.
    assert lines[2].startswith('%s: changed home/alice (mtime ' % name)
    assert lines[3].startswith('%s: changed var/data (content ' % name)
    assert 'size' not in lines[3] and 'mtime' not in lines[3]
    assert lines[4] == '%s: extra home/alice/intruder' % name
    assert lines[5] == '%s: missing home/alice/notes' % name
    assert 'differs from its manifest' in result.stderr
    assert 'Traceback' not in result.stderr


def test_verify_all_checks_every_snapshot(run_cli, source, backups):
    """--verify-all checks older snapshots too; --verify only the newest."""
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    write_file(source / 'etc' / 'new', b'new file')
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    older, newer = snapshot_names(backups)
    assert os.path.isfile(str(manifest_path(backups, newer)))
    # Removing a name from the older snapshot leaves the newer one intact (they share inodes, not names).
    os.unlink(str(backups / older / 'var' / 'data'))
    assert run_cli('--verify', backups / 'latest').returncode == 0
    result = run_cli('--verify-all', backups / 'latest')
    assert result.returncode == EXIT_DIFFERENT, result
    assert '%s: missing var/data\n' % older in result.stdout, result
    assert newer not in result.stdout


def test_snapshot_without_manifest(run_cli, source, backups):
    """A newest snapshot without entries in its manifest (--no-manifest) can't be verified: one line, exit 1."""
    assert run_cli('--disable-notifications', '--no-manifest', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    assert os.path.getsize(str(manifest_path(backups, name))) < 200  # The header alone.
    result = run_cli('--verify', backups / 'latest')
    assert result.returncode == 1, result
    assert result.stderr.strip().endswith(
        "The newest snapshot %s has no manifest with entries (it was made with --no-manifest, or by an older "
        "version), so it can't be verified: make backups without --no-manifest." % (backups / name)), result
    result = run_cli('--verify-all', backups / 'latest')
    assert result.returncode == 1 and 'No snapshot in' in result.stderr, result
    os.unlink(str(manifest_path(backups, name)))  # As for snapshots of version 1.1.
    result = run_cli('--verify', backups / 'latest')
    assert result.returncode == 1 and 'has no manifest' in result.stderr, result


def test_default_backups_can_be_verified(run_cli, source, backups):
    """Every snapshot that default runs make (manifests built from the changes) verifies, and damage is found."""
    latest = backups / 'latest'
    for number in range(3):
        write_file(source / 'home' / 'alice' / ('notes-%d' % number), b'round %d' % number)
        write_file(source / 'var' / 'data', b'data' * (1000 + number))
        # Without rotation, which would keep one snapshot of the hour.
        assert run_cli('--disable-notifications', '--backup', '--snapshot', source, latest).returncode == 0
    names = snapshot_names(backups)
    assert len(names) == 3
    result = run_cli('-v', '--verify-all', latest)
    assert result.returncode == 0, result
    assert result.stderr.count('is intact') == 3, result
    flip_byte(str(backups / names[1] / 'var' / 'data'))
    result = run_cli('--verify-all', latest)
    assert result.returncode == EXIT_DIFFERENT, result
    assert result.stdout.startswith('%s: changed var/data (content ' % names[1]), result
    assert len(result.stdout.splitlines()) == 1, result


def test_verify_with_ionice(run_cli, source, backups, fake_bin, tmp_path):
    """With --ionice the check reads the snapshot under ionice's class, and still finds the damage."""
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    flip_byte(str(backups / name / 'etc' / 'hostname'))
    log_arguments(fake_bin / 'ionice', tmp_path / 'ionice-calls', real_program('ionice'))
    result = run_cli('--ionice=idle', '--verify', backups / 'latest')
    assert result.returncode == EXIT_DIFFERENT, result
    assert result.stdout.startswith('%s: changed etc/hostname (content ' % name), result
    (call,) = logged_calls(tmp_path / 'ionice-calls')
    assert call[:2] == ['-c', 'idle'] and 'verify' in call and name in call


def test_progress_on_a_terminal(run_cli, source, backups, fake_bin):
    """On a terminal the check shows how far it got; without one (the other tests) it shows nothing."""
    assert run_cli('--disable-notifications', '--manifest', source, backups / 'latest').returncode == 0
    (name,) = snapshot_names(backups)
    returncode, output = run_in_terminal(['--verify', backups / 'latest'], command_environment(fake_bin))
    assert returncode == 0, output
    assert 'Verifying %s: 11 entries, 0.0 MiB read' % name in output, output
    assert 'is intact' in output


def test_verify_over_ssh(tmp_path, source, client_home):
    """Over SSH the manifests are built (from the changes) and checked on the server, and damage is found."""
    backups = tmp_path / 'remote-backups'
    destination = '%s:%s' % (SERVER_ALIAS, backups / 'latest')
    result = client_home.run('--manifest', source, destination)
    assert result.returncode == 0, result
    write_file(source / 'home' / 'alice' / 'new', b'new')
    result = client_home.run('-vv', '--backup', '--snapshot', source, destination)
    assert result.returncode == 0, result
    first, name = snapshot_names(backups)
    assert 'Built the manifest of %s from the previous one and 3 changed name(s).' % name in result.stderr
    assert check_manifest(backups, name) == []
    assert client_home.run('--verify', destination).returncode == 0
    os.chmod(str(backups / name / 'var' / 'data'), 0o600)
    result = client_home.run('--verify', destination)
    assert result.returncode == EXIT_DIFFERENT, result
    assert result.stdout == '%s: changed var/data (mode 0644 -> 0600)\n' % name


def test_daemon_destination_is_refused(run_cli):
    """An rsync daemon runs no commands for clients: the message names the command to run on the server."""
    result = run_cli('--verify', 'backup-server::module/latest')
    assert result.returncode == 1, result
    assert "run 'rsync-system-backup --verify /path/of/the/module' on backup-server" in result.stderr
    assert 'Traceback' not in result.stderr
