"""
The default path (safe-hardlink: plan, protect, apply) leaves exactly what rsync in place would leave (issue 20).

One test for each of the eleven reproductions in issue 20's "Why": a tree
that became a file, an excluded tree, a hostile user's planted names (run as
a real unprivileged user), a name holding `` -> ``, the protect step's space
(hard-link groups, files that rsync rewrites anyway), the link limit, a
non-UTF-8 name in link-limit relief, ``--no-sudo`` with an entry the user
can't read, SIGTERM during the protect step, and names that start with ``#``
or ``;``. Each asserts the effects on disk, the exit code and the messages.
The random comparison with plain rsync is :mod:`support.differential`'s job.
"""

import hashlib
import os
import pathlib
import re
import shutil
import signal
import stat
import subprocess

import pytest

from rsync_system_backup.cli import EXIT_INCOMPLETE
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX
from support.cli import command_environment, command_line, finish
from support.loop_filesystems import MountedFilesystem
from support.processes import session_processes, wait_for
from support.trees import PAST, settle, snapshot_names, take_manifest, write_dated
from support.users import AS_NOBODY, NOBODY, for_nobody, python_runs_as_nobody, run_as_nobody, shared_directory

LINKS_TO_PROTECT = 30000
"""How many symbolic links :func:`test_sigterm_during_protect_step` gives to the protect step (about a second)."""

MIB = 1024 * 1024
"""One mebibyte."""

EXT4_LINK_LIMIT = 65000
"""The most hard links an ext4 inode can have."""


# Helpers.

def run_backup(filesystem, source, latest, *options, env=None):
    """
    Run a backup and a snapshot (no rotation) with auto's choice of method, verbosely, in a filesystem's namespace.

    :param filesystem: A :class:`support.loop_filesystems.MountedFilesystem`.
    :param source: The source directory (a path).
    :param latest: ``latest`` inside the filesystem (a path).
    :param options: More command line options (strings).
    :param env: Environment variables to add (a dict).
    :returns: The :class:`subprocess.CompletedProcess` (``output`` holds both streams).
    """
    return filesystem.run_cli('--verbose', '--backup', '--snapshot', *(options + (source, latest)), env=env)


def assert_succeeded(result):
    """
    Check that a run exited with code 0, without a traceback.

    :param result: A :class:`subprocess.CompletedProcess` from :func:`run_backup()`.
    """
    assert result.returncode == 0, result.output
    assert 'Traceback' not in result.output, result.output


def snapshot_paths(filesystem, latest):
    """
    List the snapshots beside ``latest``, oldest first, as the tests can open them.

    :param filesystem: The :class:`support.loop_filesystems.MountedFilesystem`.
    :param latest: ``latest`` inside the filesystem (a path).
    :returns: A list of pathnames (strings).
    """
    backups = filesystem.view(latest.parent)
    return [os.path.join(backups, name) for name in snapshot_names(backups)]


def private_leftovers(directory):
    """
    List the private directories beside ``latest``.

    :param directory: The directory that holds ``latest`` (a string).
    :returns: A sorted list of names that start with ``PRIVATE_PREFIX``.
    """
    return sorted(name for name in os.listdir(directory) if name.startswith(PRIVATE_PREFIX))


def read_bytes(pathname):
    """
    Read a file.

    :param pathname: Its pathname (a string, bytes or path).
    :returns: Its content (bytes).
    """
    with open(pathname, 'rb') as handle:
        return handle.read()


def owner_and_mode(pathname):
    """
    Give an entry's owner, group and permission bits, without following a symbolic link.

    :param pathname: Its pathname (a string, bytes or path).
    :returns: A tuple ``(uid, gid, mode)``.
    """
    info = os.lstat(pathname)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def inodes(root, names):
    """
    Give the inode numbers of names below a directory.

    :param root: The directory (a string or bytes).
    :param names: Relative pathnames (strings or bytes, like `root`).
    :returns: A set of inode numbers (one element when they are hard links of each other).
    """
    return set(os.lstat(os.path.join(root, name)).st_ino for name in names)


def free_bytes(filesystem):
    """
    Measure the space that root can still use on a filesystem.

    :param filesystem: The :class:`support.loop_filesystems.MountedFilesystem`.
    :returns: A number of bytes.
    """
    info = os.statvfs(filesystem.view(filesystem.mount_point))
    return info.f_bfree * info.f_frsize


def sha256_of(pathname):
    """
    Hash a (big) file.

    :param pathname: Its pathname (a string or path).
    :returns: The hexadecimal SHA-256 of its content.
    """
    digest = hashlib.sha256()
    with open(pathname, 'rb') as handle:
        for chunk in iter(lambda: handle.read(MIB), b''):
            digest.update(chunk)
    return digest.hexdigest()


def describe_tree(root, directory_times=True):
    """
    Describe a tree cheaply: what :func:`support.trees.take_manifest()` records, but a file's size for its content.

    :param root: The tree's top directory (a string or path).
    :param directory_times: :data:`False` to leave out the modification times of directories.
    :returns: A dict from relative path (bytes) to a tuple: type, mode,
              owner, group, modification time (in nanoseconds, or
              :data:`None` for a directory without `directory_times`), size, the
              target of a symbolic link (or :data:`None`) and, for regular
              files, the first path of the group of paths in the tree that
              share its inode.

    For trees of big files whose content never changes (only their attributes do).
    """
    root = os.fsencode(str(root))
    description, groups = {}, {}
    for directory, subdirectories, files in os.walk(root):
        for pathname in [directory] + [os.path.join(directory, name) for name in subdirectories + files]:
            relative = os.path.relpath(pathname, root)
            info = os.lstat(pathname)
            description[relative] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                     info.st_mtime_ns if directory_times or not stat.S_ISDIR(info.st_mode) else None,
                                     info.st_size,
                                     os.readlink(pathname) if stat.S_ISLNK(info.st_mode) else None)
            if stat.S_ISREG(info.st_mode):
                groups.setdefault(info.st_ino, []).append(relative)
    for paths in groups.values():
        for path in paths:
            description[path] += (min(paths),)
    return description


def make_crowded_file(directory, count, odd_name=None):
    """
    Create a file with many hard links in a directory of its own.

    :param directory: The directory to create (a path).
    :param count: How many names the file gets (an integer).
    :param odd_name: A name for one of them (bytes), or :data:`None`.
    :returns: The file's names (bytes, relative to `directory`'s parent), the first being ``crowded-00000``.
    """
    directory.mkdir(parents=True)
    top = os.fsencode(str(directory))
    first = top + b'/crowded-00000'
    write_dated(directory / 'crowded-00000', b'one file, many names\n')
    names = [b'crowded-%05i' % number for number in range(count)]
    if odd_name is not None:
        names[-1] = odd_name
    for name in names[1:]:
        os.link(first, top + b'/' + name)
    settle(directory.parent)
    return [os.path.basename(top) + b'/' + name for name in names]


@pytest.fixture
def tmpfs(tmp_path):
    """A tmpfs in a private mount namespace (a :class:`support.loop_filesystems.MountedFilesystem`)."""
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        yield filesystem


@pytest.fixture
def nobody_can_run_python():
    """Skip the test when the unprivileged user can't run this Python and the package."""
    if not python_runs_as_nobody():
        pytest.skip("this Python or the package can't be run by an unprivileged user")


# 1. A file that replaced a directory tree.

def test_file_that_replaced_a_tree(tmp_path, tmpfs):
    """A file that took a directory tree's place is in ``latest`` and the new snapshot; the old one keeps the tree."""
    source = tmp_path / 'source'
    write_dated(source / 'd' / 'a' / 'b' / 'f', b'1\n')
    write_dated(source / 'k', b'k\n')
    settle(source)
    latest = tmpfs.mount_point / 'backups' / 'latest'
    assert_succeeded(run_backup(tmpfs, source, latest))
    shutil.rmtree(str(source / 'd'))
    write_dated(source / 'd', b'file\n')
    settle(source)
    result = run_backup(tmpfs, source, latest)
    assert_succeeded(result)
    first, second = snapshot_paths(tmpfs, latest)
    for tree in (tmpfs.view(latest), second):
        d = os.path.join(tree, 'd')
        assert stat.S_ISREG(os.lstat(d).st_mode), "%s is not the file that replaced the tree" % d
        assert read_bytes(d) == b'file\n'
        assert take_manifest(tree) == take_manifest(source), tree
    assert read_bytes(os.path.join(first, 'd', 'a', 'b', 'f')) == b'1\n'


def test_hard_link_below_a_file_that_became_a_directory(tmp_path, tmpfs):
    """
    A new hard link below a file that became a directory joins its group in one run (the dry run's blind spot).

    rsync's dry run can't look below ``a`` while ``latest`` has a file there,
    so it misses that ``b/z`` joins ``a/x`` (and says "Not a directory"): the
    run plans once more after the apply and ends as rsync in place does.
    """
    source = tmp_path / 'source'
    write_dated(source / 'a', b'a file\n')
    (source / 'b').mkdir()
    os.mknod(str(source / 'b' / 'z'), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.utime(str(source / 'b' / 'z'), (PAST, PAST))
    settle(source)
    latest = tmpfs.mount_point / 'backups' / 'latest'
    assert_succeeded(run_backup(tmpfs, source, latest))
    (source / 'a').unlink()
    (source / 'a').mkdir()
    os.mknod(str(source / 'a' / 'x'), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.utime(str(source / 'a' / 'x'), (PAST, PAST))
    (source / 'b' / 'z').unlink()
    os.link(str(source / 'a' / 'x'), str(source / 'b' / 'z'))
    settle(source)
    result = run_backup(tmpfs, source, latest)
    assert_succeeded(result)
    assert 'Planning once more' in result.output, result.output
    for tree in [tmpfs.view(latest)] + snapshot_paths(tmpfs, latest)[1:]:
        assert os.lstat(os.path.join(tree, 'a', 'x')).st_ino == os.lstat(os.path.join(tree, 'b', 'z')).st_ino, tree
        assert take_manifest(tree) == take_manifest(source), tree


# 2. A tree that an exclude leaves out.

def test_excluded_tree_goes_in_one_run(tmp_path, tmpfs):
    """A tree excluded from the next run is gone from ``latest`` and the new snapshot at once, as the dry run said."""
    source = tmp_path / 'source'
    write_dated(source / 'cache' / 'a' / 'b' / 'c' / 'x', b'2\n')
    write_dated(source / 'k', b'k\n')
    settle(source)
    latest = tmpfs.mount_point / 'backups' / 'latest'
    assert_succeeded(run_backup(tmpfs, source, latest))
    dry_run = tmpfs.run_cli('--verbose', '--dry-run', '--backup', '--snapshot', '--exclude=/cache/', source, latest)
    assert_succeeded(dry_run)
    assert 'deleting cache/a/b/c/x' in dry_run.output
    assert 'deleting cache/\n' in dry_run.output
    assert 'would transfer 0 of 1 file (0 bytes), create 0 entries and delete 5' in dry_run.output, dry_run.output
    result = run_backup(tmpfs, source, latest, '--exclude=/cache/')
    assert_succeeded(result)
    # (A method that builds a new tree deletes nothing, and says no number.)
    assert re.findall(r'transferred, (\d+) deleted', result.output) in ([], ['5']), result.output
    first, second = snapshot_paths(tmpfs, latest)
    wanted = dict((name, entry) for name, entry in take_manifest(source).items() if not name.startswith(b'cache'))
    for tree in (tmpfs.view(latest), second):
        assert os.listdir(tree) == ['k'], "the excluded tree (or its skeleton) is still in %s" % tree
        assert take_manifest(tree) == wanted, tree
    assert read_bytes(os.path.join(first, 'cache', 'a', 'b', 'c', 'x')) == b'2\n'


# 3. A hostile user's planted names.

HOSTILE_PLANTS = {
    # Her own shadow in a directory named 's -> x', and a link whose line reads 'home/eve/s -> x/./etc/shadow'.
    'shadow': '''
mkdir -p 's -> x/etc'
echo 'eve:her own shadow' > 's -> x/etc/shadow'
ln -s x/./etc/shadow s
''',
    # A file of the same size and time as root's etc/secret: only owner and mode would be applied.
    'secret': '''
mkdir -p 's -> x/etc'
head -c "$(stat -c %s ../../etc/secret)" /dev/zero | tr '\\0' e > 's -> x/etc/secret'
chmod 0666 's -> x/etc/secret'
touch -r ../../etc/secret 's -> x/etc/secret'
ln -s x/./etc/secret s
''',
    # A directory 't -> d' (mode 0777) and a link whose line reads 'home/eve/t -> d/./.': the top directory.
    'top': '''
mkdir 't -> d'
chmod 0777 't -> d'
echo hers > 't -> d/file'
ln -s d/./. t
''',
}
"""The shell code that the unprivileged user runs in her home directory for each variant of the attack."""

HOSTILE_LINKS = {'shadow': ('s', b'x/./etc/shadow'), 'secret': ('s', b'x/./etc/secret'), 'top': ('t', b'd/./.')}
"""The symbolic link she plants in each variant and its target."""


def make_hostile_source(root):
    """
    Create a small system whose home directory ``home/eve`` belongs to the unprivileged user.

    :param root: The source directory to create (a path, in a directory she can reach).
    :returns: A dict from the relative pathname of each of root's files to its owner, mode and content.
    """
    files = {
        'etc/shadow': ((0, 42, 0o640), b'root:*:1:0:99999:7:::\n'),
        'etc/secret': ((0, 0, 0o600), b'the root password is hunter2\n'),
        'etc/hostname': ((0, 0, 0o644), b'hostile-test\n'),
    }
    for name, ((uid, gid, mode), content) in files.items():
        write_dated(root / name, content, mode=mode, owner=(uid, gid))
    (root / 'home' / 'eve').mkdir(parents=True)
    os.chown(str(root / 'home' / 'eve'), *NOBODY)
    settle(root)
    os.chmod(str(root), 0o755)
    return files


def check_root_files(tree, files, top_mode):
    """
    Check that root's files and the top directory of a tree are root's, as in the source.

    :param tree: ``latest`` or a snapshot (a string).
    :param files: What :func:`make_hostile_source()` returned.
    :param top_mode: The permission bits of the source's top directory.
    """
    for name, (owner, content) in files.items():
        pathname = os.path.join(tree, name)
        found = owner_and_mode(pathname)
        assert found == owner, "%s: owner and mode changed to %r" % (pathname, found)
        assert read_bytes(pathname) == content, "%s: content changed" % pathname
    assert owner_and_mode(tree) == (0, 0, top_mode), "%s: the top directory is %r" % (tree, owner_and_mode(tree))


@pytest.mark.parametrize('variant', sorted(HOSTILE_PLANTS))
def test_hostile_user_writes_only_her_own_entries(tmp_path, tmpfs, variant):
    """
    A user's planted names (``NAME -> x/./etc/shadow`` and the like) never change root's entries.

    She plants them as a real unprivileged user in her home inside the
    source, and re-arms them with ``touch -h``; the backups run as root.
    ``latest``'s root files and top directory and those of every snapshot
    stay root's (owner, mode, content), while her own entries are backed up
    exactly.
    """
    with shared_directory('rsb-exactness-') as shared:
        source = pathlib.Path(shared) / 'source'
        files = make_hostile_source(source)
        top_mode = owner_and_mode(str(source))[2]
        home = source / 'home' / 'eve'
        latest = tmpfs.mount_point / 'backups' / 'latest'
        assert_succeeded(run_backup(tmpfs, source, latest))
        # Her entries get a time out of the backup's second (rsync leaves a time in it as it finds it).
        run_as_nobody(HOSTILE_PLANTS[variant] + 'find . -exec touch -h -d "@$1" {} +\n', PAST, cwd=home)
        link, target = HOSTILE_LINKS[variant]
        for round_number in range(2):
            if round_number:
                # Re-armed: the link's time changes, so it is in the next plan again.
                run_as_nobody('touch -h -d "@$1" "$2"', PAST + 1000, link, cwd=home)
            result = run_backup(tmpfs, source, latest)
            assert_succeeded(result)
            trees = [tmpfs.view(latest)] + snapshot_paths(tmpfs, latest)
            assert len(trees) == 3 + round_number
            for tree in trees:
                check_root_files(tree, files, top_mode)
            # Her own entries are backed up exactly.
            view = tmpfs.view(latest)
            assert os.readlink(os.path.join(view, 'home', 'eve', link)) == target.decode()
            assert take_manifest(os.path.join(view, 'home', 'eve')) == take_manifest(home)
            assert take_manifest(trees[-1]) == take_manifest(view)


# 4. A name that holds ' -> '.

def test_name_with_arrow_keeps_unrelated_group(tmp_path, tmpfs):
    """A changed file named ``x -> y`` leaves the unrelated hard-link group {x, w} whole in latest and the snapshot."""
    source = tmp_path / 'source'
    write_dated(source / 'x', b'x and w are one file\n')
    os.link(str(source / 'x'), str(source / 'w'))
    write_dated(source / 'x -> y', b'first\n')
    settle(source)
    latest = tmpfs.mount_point / 'backups' / 'latest'
    assert_succeeded(run_backup(tmpfs, source, latest))
    write_dated(source / 'x -> y', b'second, longer\n')
    settle(source)
    assert_succeeded(run_backup(tmpfs, source, latest))
    first, second = snapshot_paths(tmpfs, latest)
    for tree in (tmpfs.view(latest), second):
        assert len(inodes(tree, ['x', 'w'])) == 1, "the group {x, w} was split in %s" % tree
        assert read_bytes(os.path.join(tree, 'x -> y')) == b'second, longer\n'
        assert take_manifest(tree) == take_manifest(source), tree
    assert read_bytes(os.path.join(first, 'x -> y')) == b'first\n'


# 5. The protect step and a hard-link group.

def test_mode_change_of_big_linked_file_needs_one_copy(tmp_path):
    """
    ``chmod 600`` on a 20 MiB file with 20 links, on a 300 MiB filesystem: one new inode, not 20 copies.

    The earlier snapshot shares the inode; after the run ``latest`` and the
    new snapshot hold the 20 names as one inode with mode 0600, the earlier
    snapshot keeps mode 0644, and the run used about one copy's space.
    """
    size = 20 * MIB
    source = tmp_path / 'source'
    write_dated(source / 'big' / 'name-00', os.urandom(size))
    names = ['big/name-%02i' % number for number in range(20)]
    for name in names[1:]:
        os.link(str(source / names[0]), str(source / name))
    settle(source)
    with MountedFilesystem('ext4', tmp_path / 'ext4', size=300) as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert_succeeded(run_backup(filesystem, source, latest))
        os.chmod(str(source / names[0]), 0o600)
        before = free_bytes(filesystem)
        result = run_backup(filesystem, source, latest)
        after = free_bytes(filesystem)
        assert_succeeded(result)
        first, second = snapshot_paths(filesystem, latest)
        for tree in (filesystem.view(latest), second):
            assert len(inodes(tree, names)) == 1, "the 20 names in %s aren't one inode" % tree
            assert owner_and_mode(os.path.join(tree, names[0])) == (0, 0, 0o600), tree
        assert len(inodes(first, names)) == 1
        assert owner_and_mode(os.path.join(first, names[0])) == (0, 0, 0o644)
        assert inodes(first, names[:1]) != inodes(filesystem.view(latest), names[:1])
        assert after >= before - 2 * size, "the run used %i MiB for one 20 MiB file" % ((before - after) // MIB)
        assert not private_leftovers(filesystem.view(latest.parent))


# 6. A file that rsync rewrites anyway.

def test_rewritten_file_is_not_copied_first(tmp_path):
    """
    A big file whose content changes needs room for one new copy only (rsync's), not for a protect copy too.

    The file's size comes from the filesystem (about 300 MiB): after the
    first backup the free space holds one more copy of it but not two.
    """
    source = tmp_path / 'source'
    write_dated(source / 'small', b'small\n')
    with MountedFilesystem('ext4', tmp_path / 'ext4', size=300) as filesystem:
        size = int(free_bytes(filesystem) * 0.4) // MIB * MIB
        with open(str(source / 'big'), 'wb') as handle:
            for _ in range(size // MIB):
                handle.write(os.urandom(MIB))
        settle(source)
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert_succeeded(run_backup(filesystem, source, latest))
        with open(str(source / 'big'), 'ab') as handle:
            handle.write(os.urandom(MIB))
        free = free_bytes(filesystem)
        assert size + 4 * MIB < free < 2 * size, "the test's sizes don't fit: %i MiB free, %i MiB file" % (
            free // MIB, size // MIB)
        result = run_backup(filesystem, source, latest)
        assert_succeeded(result)
        first, second = snapshot_paths(filesystem, latest)
        wanted = sha256_of(source / 'big')
        for tree in (filesystem.view(latest), second):
            assert sha256_of(os.path.join(tree, 'big')) == wanted, tree
        assert os.path.getsize(os.path.join(first, 'big')) == size
        assert not private_leftovers(filesystem.view(latest.parent))


# 7. A file with more than half the link limit.

@pytest.mark.slow
def test_file_over_half_the_link_limit(tmp_path):
    """
    A file with more than half of ext4's link limit is copied into each snapshot, with one warning naming it.

    Every run succeeds (exit code 0) and makes its snapshot, which holds all
    the names as one inode of its own; ``latest`` keeps them as one inode.
    """
    source = tmp_path / 'source'
    names = make_crowded_file(source / 'links', EXT4_LINK_LIMIT // 2 + 100)
    write_dated(source / 'other', b'other\n')
    settle(source)
    with MountedFilesystem('ext4', tmp_path / 'ext4', size=128) as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        view = os.fsencode(filesystem.view(latest))
        for round_number in range(2):
            result = run_backup(filesystem, source, latest)
            assert_succeeded(result)
            warnings = [line for line in result.output.splitlines() if 'WARNING' in line]
            assert len(warnings) == 1, result.output
            assert 'links/crowded-' in warnings[0], warnings[0]
            snapshots = snapshot_paths(filesystem, latest)
            assert len(snapshots) == round_number + 1, result.output
            newest = os.fsencode(snapshots[-1])
            assert len(inodes(view, names)) == 1
            assert len(inodes(newest, names)) == 1, "the crowded file's names in the snapshot aren't one inode"
            assert read_bytes(os.path.join(newest, names[0])) == b'one file, many names\n'
            assert take_manifest(snapshots[-1]) == take_manifest(source)
            assert not private_leftovers(filesystem.view(latest.parent))


# 8. Link-limit relief and a name that isn't UTF-8.

@pytest.mark.slow
def test_link_limit_relief_with_non_utf8_name(tmp_path):
    """
    Link-limit relief copes with a crowded file one of whose names isn't UTF-8.

    The file has a third of ext4's link limit (plus some): ``latest`` and
    one snapshot fit, the second snapshot needs relief. No traceback, exit
    code 0, the snapshot is made with every name, the first snapshot is unchanged.
    """
    source = tmp_path / 'source'
    odd = b'crowded-\xff-not-utf-8'
    names = make_crowded_file(source / 'links', EXT4_LINK_LIMIT // 3 + 400, odd_name=odd)
    settle(source)
    with MountedFilesystem('ext4', tmp_path / 'ext4', size=128) as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert_succeeded(run_backup(filesystem, source, latest))
        first = snapshot_paths(filesystem, latest)[0]
        recorded = take_manifest(first)
        result = run_backup(filesystem, source, latest)
        assert_succeeded(result)
        snapshots = snapshot_paths(filesystem, latest)
        assert len(snapshots) == 2, result.output
        newest = os.fsencode(snapshots[-1])
        assert os.path.isfile(newest + b'/links/' + odd)
        assert len(inodes(newest, names)) == 1
        assert len(inodes(os.fsencode(filesystem.view(latest)), names)) == 1
        assert take_manifest(snapshots[-1]) == take_manifest(source)
        assert take_manifest(first) == recorded
        assert not private_leftovers(filesystem.view(latest.parent))


# 9. Without sudo, an entry of latest that the user can't read.

def test_no_sudo_unreadable_entry_in_latest(nobody_can_run_python):
    """
    With ``--no-sudo``, a file the user can't read is rsync's own failure, no traceback; the rest goes on.

    The user's own backup: a file becomes mode 000, then 400 along with other
    changes. The apply writes every file it transfers anew from the source,
    so while she can't read the source's file the run is incomplete (exit
    code 2, rsync names the file, ``latest`` keeps the old version and the
    other changes are backed up), and once she can, it is backed up as plain
    rsync would (mode 0400); ``latest``'s copy is never read.
    """
    with shared_directory('rsb-exactness-') as shared:
        work = os.path.join(shared, 'work')
        os.mkdir(work, 0o700)
        os.chown(work, *NOBODY)
        source = os.path.join(work, 'source')
        backups = os.path.join(work, 'backups')
        latest = os.path.join(backups, 'latest')
        environment = for_nobody(command_environment(HOME=work))

        def backup():
            """Run a backup and a snapshot as the user, without sudo; returns the result (``output``: both streams)."""
            command = list(AS_NOBODY) + command_line('--disable-notifications', '--no-sudo', '--verbose', '--backup',
                                                     '--snapshot', source, latest)
            result = subprocess.run(command, env=environment, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=120)
            result.output = result.stdout + result.stderr
            return result
        run_as_nobody('mkdir -p "$1/dir"; echo locked > "$1/locked"; echo other-v1 > "$1/dir/other"', source)
        assert_succeeded(backup())
        run_as_nobody('chmod 000 "$1/locked"; echo other-v2-x > "$1/dir/other"', source)
        result = backup()
        assert result.returncode == EXIT_INCOMPLETE, result.output
        assert 'completed with errors' in result.output and '/locked' in result.output, result.output
        assert owner_and_mode(os.path.join(latest, 'locked')) == NOBODY + (0o644,)
        assert read_bytes(os.path.join(latest, 'dir', 'other')) == b'other-v2-x\n'
        run_as_nobody('chmod 400 "$1/locked"; echo other-v3-longer > "$1/dir/other"; echo new > "$1/added"',
                      source)
        result = backup()
        assert result.returncode == 0, result.output
        assert 'Traceback' not in result.output, result.output
        assert owner_and_mode(os.path.join(latest, 'locked')) == NOBODY + (0o400,)
        assert read_bytes(os.path.join(latest, 'locked')) == b'locked\n'
        assert read_bytes(os.path.join(latest, 'dir', 'other')) == b'other-v3-longer\n'
        assert read_bytes(os.path.join(latest, 'added')) == b'new\n'
        snapshots = [os.path.join(backups, name) for name in snapshot_names(backups)]
        assert len(snapshots) == 3, result.output
        assert read_bytes(os.path.join(snapshots[-1], 'dir', 'other')) == b'other-v3-longer\n'
        assert read_bytes(os.path.join(snapshots[1], 'dir', 'other')) == b'other-v2-x\n'
        assert read_bytes(os.path.join(snapshots[0], 'dir', 'other')) == b'other-v1\n'
        assert owner_and_mode(os.path.join(snapshots[0], 'locked')) == NOBODY + (0o644,)
        assert owner_and_mode(os.path.join(snapshots[1], 'locked')) == NOBODY + (0o644,)


# 10. SIGTERM during the protect step.

def test_sigterm_during_protect_step(tmp_path, tmpfs):
    """
    SIGTERM while the protect step copies leaves no private directory and no process, ``latest`` consistent.

    Many symbolic links whose owner changes, and which a snapshot shares,
    make the protect step take a while (rsync changes a symbolic link's owner
    in place, so each gets a copy); the signal comes as soon as its private
    directory appears. Three times, each after a snapshot (so that the links
    are shared again): the run exits with 143 and leaves ``latest`` as it
    was (or as the source is), and every snapshot as it was made.
    """
    source = tmp_path / 'source'
    links = ['links-%i/link-%i' % (number % 20, number) for number in range(LINKS_TO_PROTECT)]
    for name in links:
        os.makedirs(str(source / os.path.dirname(name)), exist_ok=True)
        os.symlink('target-of-' + name, str(source / name))
    settle(source)
    latest = tmpfs.mount_point / 'backups' / 'latest'
    backups = tmpfs.view(latest.parent)
    assert_succeeded(run_backup(tmpfs, source, latest))
    recorded = {}
    for owner in (1000, 1001, 1002):
        if recorded:
            assert_succeeded(tmpfs.run_cli('--snapshot', source, latest))
        for snapshot in snapshot_paths(tmpfs, latest):
            recorded.setdefault(snapshot, describe_tree(snapshot))
        before = describe_tree(tmpfs.view(latest), False)
        for name in links:
            os.lchown(str(source / name), owner, owner)
        process = subprocess.Popen(tmpfs.command(*command_line('--disable-notifications', '--backup',
                                                               source, latest)),
                                   env=command_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: private_leftovers(backups), timeout=60, process=process,
                     message="the protect step's private directory")
            process.send_signal(signal.SIGTERM)
            code, output = finish(process)
            left = session_processes(process.pid)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            process.stdout.close()
        assert code == 128 + signal.SIGTERM, output
        assert 'interrupted by SIGTERM' in output, output
        assert 'Traceback' not in output, output
        assert not private_leftovers(backups), "a private directory was left (owner %i): %s" % (owner, output)
        assert left == [], "a child process outlived the run (owner %i)" % owner
        # Every entry is as it was or as the source has it (directories' times aside, as in rsync's own stops).
        now, wanted = describe_tree(tmpfs.view(latest), False), describe_tree(source, False)
        assert sorted(now) == sorted(before)
        for name in before:
            assert now[name] in (before[name], wanted[name]), "%r in latest after SIGTERM (owner %i)" % (name, owner)
        assert dict((snapshot, describe_tree(snapshot)) for snapshot in snapshot_paths(tmpfs, latest)) == recorded


# 11. Names that start with '#' or ';'.

def test_names_starting_with_comment_characters(tmp_path, tmpfs):
    """Changed and new entries whose names start with ``#`` or ``;`` (also below ``#dir``) are backed up."""
    source = tmp_path / 'source'
    write_dated(source / '#draft#', b'v1\n')
    write_dated(source / ';semi', b's1\n')
    write_dated(source / '#dir' / 'inner', b'i1\n')
    write_dated(source / 'plain', b'p1\n')
    settle(source)
    latest = tmpfs.mount_point / 'backups' / 'latest'
    assert_succeeded(run_backup(tmpfs, source, latest))
    write_dated(source / '#draft#', b'v2-longer\n')
    write_dated(source / '#new', b'new\n')
    write_dated(source / ';semi', b's2-longer\n')
    write_dated(source / ';new', b'new too\n')
    write_dated(source / '#dir' / 'inner', b'i2-longer\n')
    write_dated(source / '#dir' / 'added', b'added\n')
    write_dated(source / 'plain', b'p2-longer\n')
    settle(source)
    assert_succeeded(run_backup(tmpfs, source, latest))
    first, second = snapshot_paths(tmpfs, latest)
    for tree in (tmpfs.view(latest), second):
        assert read_bytes(os.path.join(tree, '#draft#')) == b'v2-longer\n', tree
        assert read_bytes(os.path.join(tree, '#new')) == b'new\n', tree
        assert read_bytes(os.path.join(tree, ';semi')) == b's2-longer\n', tree
        assert read_bytes(os.path.join(tree, '#dir', 'inner')) == b'i2-longer\n', tree
        assert take_manifest(tree) == take_manifest(source), tree
    assert read_bytes(os.path.join(first, '#draft#')) == b'v1\n'
    assert sorted(os.listdir(first)) == ['#dir', '#draft#', ';semi', 'plain']
