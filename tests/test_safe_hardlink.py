"""
Tests of the safe-hardlink snapshot method on real filesystems: hard-link snapshots that never change.

Every older snapshot is compared, entry by entry and attribute by attribute,
with a manifest taken right after it was made (see :func:`support.trees.take_manifest`).
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX
from support.cli import command_environment, command_line
from support.loop_filesystems import MountedFilesystem, NamespaceSSHServer
from support.remote import SERVER_ALIAS, ClientHome, StandInPathSSHServer, wait_until_idle
from support.stand_ins import real_program, write_script
from support.trees import ODD_NAME, PAST, check_snapshots, settle, take_manifest, write_dated

METHOD_IN_USE = 'Using the safe-hardlink snapshot method'
"""What the run says when auto picks the method."""

EARLY_COPY_FAILED = 'Making the snapshot afresh after the transfer'
"""What the run says when the snapshot's copy made during the transfer can't be used."""


def build_every_change_tree(root):
    """Create a source with an entry for every kind of change that :func:`make_every_change()` makes."""
    for name in ('unchanged', 'mode', 'owner', 'mtime', 'content', 'xattr', 'acl', 'deleted', 'renamed',
                 'split-a', 'join-a', 'join-b', 'single', 'to-directory', 'to-symlink'):
        write_dated(root / name, name.encode() + b' content')
    os.setxattr(str(root / 'xattr'), 'user.note', b'first')
    subprocess.check_call(['setfacl', '-m', 'u:1234:r', str(root / 'acl')])
    write_dated(root / 'group/a', b'a hard-linked group whose mode changes')
    os.link(str(root / 'group' / 'a'), str(root / 'group-b'))
    os.link(str(root / 'split-a'), str(root / 'split-b'))
    os.link(str(root / 'join-a'), str(root / 'join-mate'))
    write_dated(root / 'directory/inside', b'in a directory that goes away')
    write_dated(root / 'to-file/inside', b'in a directory that becomes a file')
    write_dated(root / os.fsdecode(ODD_NAME), b'an awkward name')
    os.symlink('unchanged', str(root / 'symlink'))
    os.symlink('unchanged', str(root / 'symlink-owner'))
    os.mkfifo(str(root / 'fifo'), 0o644)
    settle(root)


def make_every_change(root):
    """Change the source in every way :func:`build_every_change_tree()` prepared for."""
    (root / 'mode').chmod(0o600)
    os.chown(str(root / 'owner'), 1000, 1000)
    os.utime(str(root / 'mtime'), (PAST + 1000, PAST + 1000))
    write_dated(root / 'content', b'new content')
    os.setxattr(str(root / 'xattr'), 'user.note', b'second')
    subprocess.check_call(['setfacl', '-m', 'u:1234:rw', str(root / 'acl')])
    (root / 'deleted').unlink()
    os.rename(str(root / 'renamed'), str(root / 'renamed-now'))
    (root / 'group' / 'a').chmod(0o640)
    shutil.copy2(str(root / 'split-a'), str(root / 'split-new'))
    os.chmod(str(root / 'split-new'), 0o600)
    os.rename(str(root / 'split-new'), str(root / 'split-b'))
    (root / 'join-b').unlink()
    os.link(str(root / 'join-a'), str(root / 'join-b'))
    os.link(str(root / 'single'), str(root / 'single-link'))
    shutil.rmtree(str(root / 'directory'))
    (root / 'to-directory').unlink()
    write_dated(root / 'to-directory/now', b'a file in what was a file')
    shutil.rmtree(str(root / 'to-file'))
    write_dated(root / 'to-file', b'a file where a directory was')
    (root / 'to-symlink').unlink()
    os.symlink('mode', str(root / 'to-symlink'))
    (root / 'symlink').unlink()
    os.symlink('content', str(root / 'symlink'))
    os.chown(str(root / 'symlink-owner'), 1000, 1000, follow_symlinks=False)
    (root / 'fifo').chmod(0o600)
    os.chmod(os.fsencode(str(root)) + b'/' + ODD_NAME, 0o600)
    settle(root)


def run_backup(filesystem, source, latest, *options, env=None):
    """Run a backup and a snapshot with auto's choice, verbosely; returns the result."""
    return filesystem.run_cli('--verbose', '--backup', '--snapshot', *(options + (source, latest)), env=env)


@pytest.mark.parametrize('kind', ['ext4', 'tmpfs'])
def test_older_snapshots_never_change(tmp_path, kind):
    """Attribute, content, name, type and hard-link changes leave every older snapshot as it was."""
    source = tmp_path / 'source'
    build_every_change_tree(source)
    with MountedFilesystem(kind, tmp_path / kind) as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        manifests = {}
        for round_number in range(3):
            if round_number == 1:
                make_every_change(source)
            elif round_number == 2:
                (source / 'mode').chmod(0o604)
                (source / 'group-b').chmod(0o600)
                settle(source)
            result = run_backup(filesystem, source, latest)
            assert result.returncode == 0, result.output
            assert METHOD_IN_USE in result.output
            assert 'WARNING' not in result.output, result.output
            # The snapshot is the copy made during the transfer, brought up to date.
            assert EARLY_COPY_FAILED not in result.output, result.output
            assert check_snapshots(filesystem, latest, manifests) == take_manifest(source)
        assert take_manifest(filesystem.view(latest)) == take_manifest(source)
        # Nothing private is left beside latest.
        assert not [name for name in os.listdir(filesystem.view(latest.parent)) if name.startswith(PRIVATE_PREFIX)]


def test_failed_early_copy_is_made_afresh(tmp_path):
    """When the copy made during the transfer fails, it is removed and the snapshot is made afresh, complete."""
    source = tmp_path / 'source'
    build_every_change_tree(source)
    # cp on the PATH is a stand-in that fails on its first call of the second run (the early copy).
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    write_script(fake_bin / 'cp', '''
if [ -e '%(armed)s' ]; then
    rm -f '%(armed)s'
    echo "cp: cannot create hard link: Too many links" >&2
    exit 1
fi
exec %(cp)s "$@"
''' % dict(armed=tmp_path / 'armed', cp=real_program('cp')))
    env = command_environment(fake_bin)
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        manifests = {}
        assert run_backup(filesystem, source, latest, env=env).returncode == 0
        check_snapshots(filesystem, latest, manifests)
        make_every_change(source)
        (tmp_path / 'armed').touch()
        result = run_backup(filesystem, source, latest, env=env)
        assert result.returncode == 0, result.output
        assert not (tmp_path / 'armed').exists()
        assert EARLY_COPY_FAILED in result.output
        assert 'Too many links' in result.output
        assert check_snapshots(filesystem, latest, manifests) == take_manifest(source)
        assert not [name for name in os.listdir(filesystem.view(latest.parent)) if name.startswith(PRIVATE_PREFIX)]


def test_hardlink_method_fails_the_same_check(tmp_path):
    """The same changes with the hardlink method change the older snapshot (so the check above can fail)."""
    source = tmp_path / 'source'
    build_every_change_tree(source)
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        manifests = {}
        assert run_backup(filesystem, source, latest, '--snapshot-method=hardlink').returncode == 0
        check_snapshots(filesystem, latest, manifests)
        make_every_change(source)
        assert run_backup(filesystem, source, latest, '--snapshot-method=hardlink').returncode == 0
        with pytest.raises(AssertionError):
            check_snapshots(filesystem, latest, manifests)


def test_source_changes_between_plan_and_apply(tmp_path):
    """What changes in the source after the plan is left alone (even in latest) until the next run."""
    source = tmp_path / 'source'
    build_every_change_tree(source)
    # rsync on the PATH is a stand-in that changes the source right before the apply (the call with --files-from).
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    write_script(fake_bin / 'rsync', '''
for argument do
    if [ "$argument" = --files-from=- ]; then
        chmod 600 '%(source)s/unchanged' '%(source)s/mode'
        setfattr -n user.note -v raced '%(source)s/xattr'
        break
    fi
done
exec %(rsync)s "$@"
''' % dict(source=source, rsync=real_program('rsync')))
    env = command_environment(fake_bin)
    with MountedFilesystem('ext4', tmp_path / 'ext4') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        manifests = {}
        assert run_backup(filesystem, source, latest).returncode == 0
        check_snapshots(filesystem, latest, manifests)
        (source / 'mode').chmod(0o640)
        (source / 'content').write_bytes(b'changed before the plan')
        result = run_backup(filesystem, source, latest, env=env)
        assert result.returncode == 0, result.output
        check_snapshots(filesystem, latest, manifests)
        view = filesystem.view(latest)
        # Not in the plan: untouched, although the source changed.
        assert os.stat(os.path.join(view, 'unchanged')).st_mode & 0o777 == 0o644
        # In the plan: the apply copies what the source holds by then, on a private inode.
        assert os.stat(os.path.join(view, 'mode')).st_mode & 0o777 == 0o600
        assert os.getxattr(os.path.join(view, 'xattr'), 'user.note') == b'first'
        result = run_backup(filesystem, source, latest)
        assert result.returncode == 0, result.output
        assert check_snapshots(filesystem, latest, manifests) == take_manifest(source)


@pytest.fixture
def shared_directory():
    """A directory on tmpfs that an unprivileged user can reach (the test's own directories are root's)."""
    directory = tempfile.mkdtemp(prefix='rsb-safe-hardlink-', dir='/dev/shm')
    os.chmod(directory, 0o755)
    try:
        yield directory
    finally:
        subprocess.run(['chmod', '-R', 'u+rwx', directory], check=False)
        shutil.rmtree(directory)


def test_unreadable_directory_stays_in_latest(shared_directory):
    """After rsync exit 23 (a directory it can't read), latest keeps that directory's earlier content."""
    work = os.path.join(shared_directory, 'work')
    os.mkdir(work, 0o700)
    os.chown(work, 65534, 65534)
    source = os.path.join(work, 'source')
    latest = os.path.join(work, 'backups', 'latest')
    as_nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
    if subprocess.run(as_nobody + [sys.executable, '-c', 'pass'], stderr=subprocess.DEVNULL).returncode != 0:
        # pyenv's shared-library builds (3.13 here) load libpython from below /root, which is closed to others.
        pytest.skip("this Python can't be run by an unprivileged user")
    environment = command_environment(HOME=work)

    def run(*arguments):
        command = as_nobody + command_line('--disable-notifications', '--no-sudo', '--verbose', *arguments)
        return subprocess.run(command, env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)
    subprocess.run(as_nobody + ['mkdir', '-p', source + '/secret/inner', source + '/open'], check=True)
    for name in ('secret/a', 'secret/inner/b', 'open/c', 'open/d'):
        subprocess.run(as_nobody + ['sh', '-c', 'echo "$1" > "$2"', 'write', name, os.path.join(source, name)],
                       check=True)
    result = run('--backup', '--snapshot', source, latest)
    assert result.returncode == 0, result.stdout + result.stderr
    os.chmod(os.path.join(source, 'secret'), 0)
    os.unlink(os.path.join(source, 'open', 'd'))
    result = run('--backup', source, latest)
    assert result.returncode == 2, result.stdout + result.stderr
    assert METHOD_IN_USE in result.stderr
    for name in ('secret/a', 'secret/inner/b', 'open/c'):
        assert os.path.exists(os.path.join(latest, name)), name
    # As in rsync's own in-place transfers, an I/O error also holds back the deletions until a clean run.
    assert os.path.exists(os.path.join(latest, 'open', 'd'))


def test_ssh_destination(tmp_path):
    """Over SSH the plan, the protect step and the apply work the same way; older snapshots never change."""
    source = tmp_path / 'source'
    build_every_change_tree(source)
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        with NamespaceSSHServer(tmp_path / 'sshd', filesystem) as server:
            client = ClientHome(tmp_path / 'client-home')
            client.add_host(SERVER_ALIAS, server.port, client.install_key(server.identity_file))
            manifests = {}
            for round_number in range(2):
                if round_number:
                    make_every_change(source)
                result = client.run('--verbose', source, '%s:%s' % (SERVER_ALIAS, latest))
                assert result.returncode == 0, result
                assert METHOD_IN_USE in result.output
                assert EARLY_COPY_FAILED not in result.output, result.output
                assert check_snapshots(filesystem, latest, manifests) == take_manifest(source)
            wait_until_idle(server)


def test_dry_run_changes_nothing(tmp_path):
    """A dry run after changes leaves latest, the snapshots and everything beside them as they were."""
    source = tmp_path / 'source'
    build_every_change_tree(source)
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert run_backup(filesystem, source, latest).returncode == 0
        make_every_change(source)
        before = take_manifest(filesystem.view(latest.parent))
        result = filesystem.run_cli('--dry-run', source, latest)
        assert result.returncode == 0, result.output
        assert take_manifest(filesystem.view(latest.parent)) == before


def test_destination_without_python(tmp_path):
    """
    Without python3 on a remote destination, auto says why it picks link-dest, and safe-hardlink is refused.

    A local destination needs no ``python3`` on ``$PATH``: its programs run
    in the program's own process or with its interpreter.
    """
    source = tmp_path / 'source'
    build_every_change_tree(source)
    backups = tmp_path / 'backups'
    with StandInPathSSHServer(tmp_path / 'sshd', {'python3': 'exit 127\n'}) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host(SERVER_ALIAS, server.port, home.install_key(server.identity_file))
        destination = '%s:%s' % (SERVER_ALIAS, backups / 'latest')
        result = home.run('--verbose', '--backup', '--snapshot', source, destination)
        assert result.returncode == 0, result
        assert 'Not using the safe-hardlink snapshot method: it needs python3 on the destination' in result.stderr
        assert 'Using the link-dest snapshot method' in result.stderr
        result = home.run('--backup', '--snapshot', '--snapshot-method=safe-hardlink', source, destination)
        wait_until_idle(server)
        assert result.returncode != 0
        assert 'The safe-hardlink snapshot method needs python3 on the destination' in result.stderr
        assert 'Traceback' not in result.stderr
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    write_script(fake_bin / 'python3', 'exit 127\n')
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        result = run_backup(filesystem, source, latest, env=command_environment(fake_bin))
        assert result.returncode == 0, result.output
        assert 'Using the safe-hardlink snapshot method' in result.output


def test_source_directory_swapped_for_a_symbolic_link(tmp_path):
    """A source directory that becomes a symbolic link between plan and apply never brings its target into a backup."""
    source, secret = tmp_path / 'source', tmp_path / 'secret'
    write_dated(source / 'd' / 'x', b'first')
    write_dated(secret / 'x', b'secret')
    settle(source)
    # The stand-in rsync swaps d for a symbolic link to the secret directory right after the plan (the dry run).
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    write_script(fake_bin / 'rsync', '''
%(rsync)s "$@"
status=$?
for argument do
    if [ "$argument" = --dry-run ] && [ ! -L '%(source)s/d' ]; then
        mv '%(source)s/d' '%(source)s/old-d' && ln -s '%(secret)s' '%(source)s/d'
    fi
done
exit $status
''' % dict(source=source, secret=secret, rsync=real_program('rsync')))
    env = command_environment(fake_bin)
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert run_backup(filesystem, source, latest).returncode == 0
        write_dated(source / 'd' / 'x', b'changed')
        result = run_backup(filesystem, source, latest, env=env)
        assert os.path.islink(str(source / 'd'))
        # Neither latest nor the snapshot holds the secret.
        for directory, subdirectories, files in os.walk(filesystem.view(latest.parent)):
            for name in files:
                with open(os.path.join(directory, name), 'rb') as handle:
                    assert handle.read() != b'secret', os.path.join(directory, name)
        # d and what was planned below it are left to the next run.
        assert result.returncode == 0, result.output
        assert "planned name(s) to the next run" in result.output, result.output
        with open(os.path.join(filesystem.view(latest), 'd', 'x'), 'rb') as handle:
            assert handle.read() == b'first'
        # The next run replaces d with the symbolic link.
        assert run_backup(filesystem, source, latest).returncode == 0
        assert os.readlink(os.path.join(filesystem.view(latest), 'd')) == str(secret)


def test_partial_transfer_outranks_vanished_files(tmp_path):
    """When the plan's dry run exits 24 and the apply 23, the run reports the missing files: exit code 2."""
    source = tmp_path / 'source'
    write_dated(source / 'file', b'first')
    settle(source)
    # The stand-in rsync runs the real one, then makes the dry run exit 24 and the apply (--files-from) 23.
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    write_script(fake_bin / 'rsync', '''
%(rsync)s "$@" || exit
for argument do
    case "$argument" in
        --dry-run) exit 24 ;;
        --files-from=-) exit 23 ;;
    esac
done
''' % dict(rsync=real_program('rsync')))
    env = dict(PATH='%s:%s' % (fake_bin, os.environ['PATH']))
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert run_backup(filesystem, source, latest).returncode == 0
        write_dated(source / 'file', b'changed')
        result = run_backup(filesystem, source, latest, env=env)
        assert result.returncode == 2, result.output
        assert 'rsync exited with code 23' in result.output
        assert 'completed with errors' in result.output


def test_failed_deletion_makes_the_run_incomplete(tmp_path):
    """A planned deletion that fails in the protect step (an immutable file) ends the run with exit code 2."""
    source = tmp_path / 'source'
    write_dated(source / 'kept', b'kept')
    write_dated(source / 'stuck', b'immutable in latest')
    settle(source)
    with MountedFilesystem('ext4', tmp_path / 'ext4') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert run_backup(filesystem, source, latest).returncode == 0
        stuck = os.path.join(filesystem.view(latest), 'stuck')
        (source / 'stuck').unlink()
        write_dated(source / 'kept', b'changed')
        subprocess.run(['chattr', '+i', stuck], check=True)
        try:
            # (cp --link can't link an immutable file, so no snapshot.)
            result = filesystem.run_cli('--verbose', '--backup', source, latest)
        finally:
            subprocess.run(['chattr', '-i', stuck], check=True)
        assert result.returncode == 2, result.output
        assert "Failed to delete 'stuck'" in result.output
        assert 'completed with errors' in result.output
        # The rest of the transfer was done.
        with open(os.path.join(filesystem.view(latest), 'kept'), 'rb') as handle:
            assert handle.read() == b'changed'
