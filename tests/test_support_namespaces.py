"""
Tests proving the private mount namespace recipe of ``tests/support/namespaces.py`` and its helpers.

These run real commands as root: ``unshare``, ``mount`` of ext4 images via
loop devices, overlays. Every test checks that nothing leaks to the host:
no loop device, no mount, no change to ``/etc``, ``/dev/mapper`` or
``/run/mount``.
"""

import os
import shutil
import subprocess
import sys

import pytest

from support.disk_images import list_image, make_ext4_image, read_image_file
from support.fake_cryptdisks import read_cryptdisks_log, write_fake_cryptdisks
from support.leaks import assert_no_leaks, cleanup_leaks, leak_check, leaked_loop_devices, leaked_mounts, read_bytes
from support.namespaces import (
    NAMESPACE_MARKER,
    mapper_probe,
    mount_probe,
    namespace_command,
    namespace_commands,
    run_in_namespace,
)
from support.stand_ins import write_script

SOCKET_SERVER = """\
import select, socket, sys
servers = []
for path in sys.argv[1:]:
    server = socket.socket(socket.AF_UNIX)
    server.bind(path + '.tmp')
    server.listen(1)
    servers.append((server, path))
import os
for server, path in servers:
    os.rename(path + '.tmp', path)
remaining = len(servers)
while remaining:
    ready, _, _ = select.select([server for server, _ in servers], [], [], 10)
    if not ready:
        sys.exit('timeout')
    for server in ready:
        connection, _ = server.accept()
        connection.sendall(b'pong')
        connection.close()
        remaining -= 1
"""
"""A Unix socket server for :meth:`TestWrapper.test_unix_sockets_keep_working`: answers one connection per socket."""

REQUIRED_PROGRAMS = ('unshare', 'mount', 'umount', 'mountpoint', 'losetup', 'mkfs.ext4', 'debugfs')

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(name) for name in REQUIRED_PROGRAMS),
                       reason='needs root and %s' % ', '.join(REQUIRED_PROGRAMS)),
    pytest.mark.usefixtures('unchanged_host'),
]


@pytest.fixture
def disk(tmp_path):
    """An ext4 image, a mount point and an fstab line for them; checked for leaks afterwards."""
    image = make_ext4_image(tmp_path / 'disk.img', size_mb=32)
    mount_point = tmp_path / 'mnt'
    mount_point.mkdir()
    fstab = '# test fstab\n%s %s ext4 loop,noauto 0 0\n' % (image, mount_point)
    with leak_check([image], [tmp_path]):
        yield image, str(mount_point), fstab


@pytest.fixture
def fake_cryptdisks(tmp_path):
    """A directory with the fake cryptdisks programs, and their log file."""
    bin_dir = tmp_path / 'bin'
    log_file = tmp_path / 'cryptdisks.log'
    write_fake_cryptdisks(bin_dir, log_file)
    return str(bin_dir), str(log_file)


class TestWrapper:

    def test_command_line_shape(self):
        argv = namespace_command(['echo', 'hi'])
        assert argv[:6] == ['unshare', '--mount', '--propagation', 'private', 'sh', '-c']
        assert argv[7:] == ['sh', 'echo', 'hi']
        assert argv[6].rstrip().endswith('exec "$@"')

    def test_arguments_pass_through_unchanged(self):
        arguments = ['plain', 'with space', "it's", '"double"', '$HOME', '`id`', '*', '', 'new\nline', '\\']
        result = run_in_namespace(['printf', '[%s]\\n'] + arguments)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ''.join('[%s]\n' % argument for argument in arguments)

    def test_exit_status_is_the_commands(self):
        assert run_in_namespace(['sh', '-c', 'exit 7']).returncode == 7
        assert run_in_namespace(['true']).returncode == 0

    def test_exec_replaces_the_shell(self):
        result = run_in_namespace(['sh', '-c', 'echo $$; cat /proc/$PPID/comm'])
        pid, parent = result.stdout.split()
        assert parent != 'sh'

    def test_stdin_and_environment_pass_through(self):
        env = dict(os.environ, RSB_TEST_VALUE='hello there')
        result = run_in_namespace(['sh', '-c', 'cat; echo "$RSB_TEST_VALUE"'], input='from stdin\n', env=env)
        assert result.stdout == 'from stdin\nhello there\n'

    def test_fstab_and_crypttab_text_is_written_verbatim(self):
        fstab = "# it's a \"test\" $HOME `id` \\040\n/a /b ext4 noauto 0 0\nno final newline"
        crypttab = 'backups /dev/sdb1 none luks\n'
        result = run_in_namespace(['sh', '-c', 'cat /etc/fstab; echo; echo ---; cat /etc/crypttab'],
                                  fstab=fstab, crypttab=crypttab)
        assert result.returncode == 0, result.stderr
        assert result.stdout == fstab + '\n---\n' + crypttab

    def test_files_absent_when_not_given(self):
        result = run_in_namespace(['sh', '-c', 'for f in /etc/fstab /etc/crypttab %s; do '
                                               'test -e $f && echo $f; done' % NAMESPACE_MARKER])
        assert result.stdout == NAMESPACE_MARKER + '\n'

    def test_empty_crypttab(self):
        result = run_in_namespace(['wc', '-c', '/etc/crypttab'], crypttab='')
        assert result.stdout.split()[0] == '0'

    def test_rest_of_etc_is_visible_and_writes_stay_private(self):
        with open('/etc/hostname', 'rb') as handle:
            hostname = handle.read()
        result = run_in_namespace(['sh', '-c', 'cat /etc/hostname && echo x > /etc/rsb-private-file && '
                                               'cat /etc/rsb-private-file && echo y >> /etc/hostname'])
        assert result.returncode == 0, result.stderr
        assert result.stdout == hostname.decode() + 'x\n'
        assert not os.path.exists('/etc/rsb-private-file')
        with open('/etc/hostname', 'rb') as handle:
            assert handle.read() == hostname

    def test_path_directories_come_first(self, tmp_path):
        first = tmp_path / 'first dir'
        second = tmp_path / 'second'
        for directory, text in ((first, 'first'), (second, 'second')):
            directory.mkdir()
            write_script(directory / 'mount', 'echo %s "$@"\n' % text)
        write_script(second / 'only-second', 'echo only second\n')
        result = run_in_namespace(['sh', '-c', 'mount -a; only-second'], path=[first, second])
        assert result.stdout == 'first -a\nonly second\n'

    def test_dev_still_works(self):
        result = run_in_namespace(['sh', '-c', 'echo x > /dev/null && head -c 4 /dev/zero | wc -c && '
                                               'test -c /dev/null && test -d /dev/pts && test -d /dev/shm && '
                                               'mountpoint -q /dev/pts && mountpoint -q /dev/shm && '
                                               'ls /dev/loop-control && echo OK'])
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ['4', '/dev/loop-control', 'OK']

    def test_dev_mapper_is_private_and_empty(self):
        result = run_in_namespace(['sh', '-c', 'touch /dev/mapper/rsb-test && ls -A /dev/mapper'])
        assert result.returncode == 0, result.stderr
        assert result.stdout == 'rsb-test\n'

    def test_dev_disk_is_private_and_empty(self, tmp_path):
        result = run_in_namespace(['sh', '-c', 'ls -A /dev/disk && mkdir /dev/disk/by-uuid && ln -s "$1" '
                                               '/dev/disk/by-uuid/rsb-test && cat /dev/disk/by-uuid/rsb-test',
                                   'sh', '/etc/hostname'])
        assert result.returncode == 0, result.stderr
        with open('/etc/hostname') as handle:
            assert result.stdout == handle.read()
        assert not os.path.lexists('/dev/disk/by-uuid/rsb-test')

    def test_nested_namespace_uses_tmpfs_on_existing_dev_mapper(self):
        inner = namespace_command(['sh', '-c', 'ls -A /dev/mapper; stat -f -c %T /dev/mapper'])
        result = run_in_namespace(['sh', '-c', 'touch /dev/mapper/outer && "$@" && ls -A /dev/mapper', 'sh'] + inner)
        assert result.returncode == 0, result.stderr
        assert result.stdout == 'tmpfs\nouter\n'

    def test_unix_sockets_keep_working(self, tmp_path):
        # A socket directly in an overlaid directory (/etc here; /dev/log in real life) is bind mounted
        # from the real directory, and one in a shadowed /run is reachable through the bind mounts.
        # The outer namespace gives both a socket: /etc is an overlay there already, and /run becomes
        # a tmpfs without /run/mount, so the inner namespace must shadow it.
        server = tmp_path / 'server.py'
        server.write_text(SOCKET_SERVER)
        client = "import socket, sys\nfor path in sys.argv[1:]:\n    s = socket.socket(socket.AF_UNIX)\n" \
                 "    s.connect(path)\n    print(path, s.recv(16).decode())\n    s.close()\n"
        inner = namespace_command([sys.executable, '-c', client, '/etc/rsb-test.sock', '/run/sub/rsb-test.sock'])
        outer = namespace_command(['sh', '-c', 'mount -n -t tmpfs rsb-test-run /run && mkdir /run/sub && '
                                               '"$0" "$1" /etc/rsb-test.sock /run/sub/rsb-test.sock & '
                                               'for i in $(seq 100); do [ -S /run/sub/rsb-test.sock ] && break; '
                                               'sleep 0.1; done; shift; "$@"; status=$?; wait; exit $status',
                                   sys.executable, server] + inner)
        result = subprocess.run(outer, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ['/etc/rsb-test.sock pong', '/run/sub/rsb-test.sock pong']

    def test_setup_failure_is_reported(self):
        result = run_in_namespace(['true'], path=['/nonexistent'], env=dict(os.environ, TMPDIR='/nonexistent'))
        assert result.returncode != 0
        assert result.stderr


class TestSeveralCommands:

    def test_status_of_first_command_and_probe_output(self, tmp_path):
        argv = namespace_commands([['sh', '-c', 'echo main; exit 3'], 'echo probe; false', ['echo', 'a b']])
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 3
        assert result.stdout == 'main\nprobe\na b\n'

    def test_probes_print_markers(self, tmp_path):
        result = run_in_namespace(['true'], probes=[mount_probe('/proc'), mount_probe(tmp_path), mapper_probe('x'),
                                                    'touch /dev/mapper/x', mapper_probe('x')])
        assert result.stdout.splitlines() == [
            'MOUNTED /proc', 'NOT-MOUNTED %s' % tmp_path, 'LOCKED x', 'UNLOCKED x',
        ]

    def test_probe_quoting(self, tmp_path):
        odd = tmp_path / "it's a dir"
        odd.mkdir()
        result = run_in_namespace(['true'], probes=[mount_probe(odd)])
        assert result.stdout == 'NOT-MOUNTED %s\n' % odd

    def test_empty_list_rejected(self):
        with pytest.raises(ValueError):
            namespace_commands([])


class TestMounting:

    def test_mount_write_umount(self, disk):
        image, mount_point, fstab = disk
        result = run_in_namespace(
            ['mount', mount_point],
            fstab=fstab,
            probes=[
                mount_probe(mount_point),
                'echo hello > %s/hello.txt' % mount_point,
                'umount %s && echo UMOUNT-OK' % mount_point,
                mount_probe(mount_point),
            ],
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            'MOUNTED %s' % mount_point, 'UMOUNT-OK', 'NOT-MOUNTED %s' % mount_point,
        ]
        assert 'hello.txt' in list_image(image)
        assert read_image_file(image, '/hello.txt') == b'hello\n'
        assert not os.path.ismount(mount_point)

    def test_file_is_there_when_mounted_again(self, disk):
        image, mount_point, fstab = disk
        first = run_in_namespace(['sh', '-c', 'mount "$1" && echo persisted > "$1/data" && umount "$1"',
                                  'sh', mount_point], fstab=fstab)
        assert first.returncode == 0, first.stderr
        second = run_in_namespace(['sh', '-c', 'mount "$1" && cat "$1/data" && umount "$1"', 'sh', mount_point],
                                  fstab=fstab)
        assert second.returncode == 0, second.stderr
        assert second.stdout == 'persisted\n'

    def test_mount_is_invisible_on_the_host(self, disk):
        image, mount_point, fstab = disk
        result = run_in_namespace(['sh', '-c', 'mount "$1" && grep -c "$1" /proc/self/mounts && '
                                               'grep -c "$1" /proc/$PPID/mounts', 'sh', mount_point],
                                  fstab=fstab)
        # The namespace sees the mount, its parent process (in the host's namespace) doesn't.
        assert result.stdout.split() == ['1', '0']
        assert not leaked_mounts([mount_point])

    def test_exit_without_umount_leaks_nothing(self, disk):
        image, mount_point, fstab = disk
        result = run_in_namespace(['sh', '-c', 'mount "$1" && touch "$1/unclean" && losetup -j "$2"',
                                   'sh', mount_point, image], fstab=fstab)
        assert result.returncode == 0, result.stderr
        assert '/dev/loop' in result.stdout
        assert_no_leaks([image], [mount_point])
        assert 'unclean' in list_image(image)

    def test_mount_without_fstab_entry_fails(self, disk):
        image, mount_point, fstab = disk
        result = run_in_namespace(['mount', mount_point], fstab='# empty\n', probes=[mount_probe(mount_point)])
        assert result.returncode != 0
        assert result.stdout == 'NOT-MOUNTED %s\n' % mount_point

    def test_utab_stays_private(self, disk):
        image, mount_point, fstab = disk
        utab_before = read_bytes('/run/mount/utab')
        fstab = fstab.replace('loop,noauto', 'loop,noauto,x-rsb-test=1')
        result = run_in_namespace(['mount', mount_point], fstab=fstab, probes=['cat /run/mount/utab'])
        assert result.returncode == 0, result.stderr
        assert 'x-rsb-test=1' in result.stdout
        assert read_bytes('/run/mount/utab') == utab_before

    def test_run_is_shadowed_when_run_mount_is_missing(self, disk):
        image, mount_point, fstab = disk
        # An outer namespace whose /run is a small tmpfs without /run/mount, like a fresh machine.
        # (mount -n: without it, libmount itself would create /run/mount in the new /run.)
        fstab = fstab.replace('loop,noauto', 'loop,noauto,x-rsb-test=2')
        inner = namespace_command(['sh', '-c', 'mount "$1" && cat /run/mount/utab && ls -A /run && cat /run/dir/file '
                                   '&& echo from-inner >> /run/dir/file', 'sh', mount_point], fstab=fstab)
        outer = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                 'set -e; mount -n -t tmpfs rsb-test-run /run; mkdir /run/dir; echo outer > /run/dir/file; '
                 'ln -s /dev/shm /run/shm; ls -A /run; echo ---; "$@"; echo ---; ls -A /run; cat /run/dir/file',
                 'sh'] + inner
        result = subprocess.run(outer, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        before, inside, after = result.stdout.split('---\n')
        assert before.splitlines() == ['dir', 'shm']
        assert 'x-rsb-test=2' in inside
        # Inside: the entries of the real /run (bind mounted) plus a private /run/mount.
        assert inside.splitlines()[-4:] == ['dir', 'mount', 'shm', 'outer']
        # Writes below existing entries reach the real /run, the private /run/mount doesn't.
        assert after.splitlines() == ['dir', 'shm', 'outer', 'from-inner']


class TestFakeCryptdisks:

    def test_start_and_stop(self, disk, fake_cryptdisks):
        image, mount_point, fstab = disk
        bin_dir, log_file = fake_cryptdisks
        result = run_in_namespace(
            ['cryptdisks_start', 'backups'],
            crypttab='# test crypttab\nbackups %s none luks\n' % image,
            path=[bin_dir],
            probes=[mapper_probe('backups'), 'readlink /dev/mapper/backups',
                    'cryptdisks_stop backups; echo stop=$?', mapper_probe('backups')],
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ['UNLOCKED backups', image, 'stop=0', 'LOCKED backups']
        assert read_cryptdisks_log(log_file) == ['start backups', 'stop backups']
        assert not os.path.exists('/dev/mapper/backups')

    def test_mapper_device_is_invisible_on_the_host(self, disk, fake_cryptdisks):
        image, mount_point, fstab = disk
        bin_dir, log_file = fake_cryptdisks
        # $PPID is the test process, in the host's namespace: /proc/$PPID/root shows the host's view.
        result = run_in_namespace(['sh', '-c', 'cryptdisks_start backups && ls -A /dev/mapper && echo --- && '
                                               'ls -A /proc/$PPID/root/dev/mapper 2>/dev/null; true'],
                                  crypttab='backups %s\n' % image, path=[bin_dir])
        assert result.returncode == 0, result.stderr
        inside, _, host = result.stdout.partition('---\n')
        assert inside == 'backups\n'
        assert 'backups' not in host
        assert not os.path.lexists('/dev/mapper/backups')

    def test_full_chain_unlock_mount_umount_lock(self, disk, fake_cryptdisks):
        image, mount_point, fstab = disk
        bin_dir, log_file = fake_cryptdisks
        result = run_in_namespace(
            ['sh', '-c', 'cryptdisks_start backups && mount "$1" && echo secret > "$1/file" && '
                         'umount "$1" && cryptdisks_stop backups', 'sh', mount_point],
            fstab='/dev/mapper/backups %s ext4 loop,noauto 0 0\n' % mount_point,
            crypttab='backups %s none luks\n' % image,
            path=[bin_dir],
            probes=[mount_probe(mount_point), mapper_probe('backups')],
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ['NOT-MOUNTED %s' % mount_point, 'LOCKED backups']
        assert read_image_file(image, '/file') == b'secret\n'
        assert read_cryptdisks_log(log_file) == ['start backups', 'stop backups']

    def test_unknown_target(self, disk, fake_cryptdisks):
        image, mount_point, fstab = disk
        bin_dir, log_file = fake_cryptdisks
        result = run_in_namespace(['cryptdisks_start', 'nope'], crypttab='backups %s\n' % image, path=[bin_dir],
                                  probes=[mapper_probe('nope')])
        assert result.returncode == 1
        assert 'not found' in result.stderr
        assert result.stdout == 'LOCKED nope\n'
        assert read_cryptdisks_log(log_file) == ['start nope']

    def test_commented_out_target_is_unknown(self, fake_cryptdisks, tmp_path):
        bin_dir, log_file = fake_cryptdisks
        result = run_in_namespace(['cryptdisks_start', 'backups'], path=[bin_dir],
                                  crypttab='#backups /dev/null\n  # backups /dev/null\n')
        assert result.returncode == 1

    def test_no_crypttab(self, fake_cryptdisks):
        bin_dir, log_file = fake_cryptdisks
        result = run_in_namespace(['cryptdisks_start', 'backups'], path=[bin_dir])
        assert result.returncode == 1
        assert read_cryptdisks_log(log_file) == ['start backups']

    def test_missing_source_device(self, fake_cryptdisks, tmp_path):
        bin_dir, log_file = fake_cryptdisks
        crypttab = 'gone %s none luks\nbyuuid UUID=00000000-rsb-test none luks\n' % (tmp_path / 'missing.img')
        result = run_in_namespace(['cryptdisks_start', 'gone'], crypttab=crypttab, path=[bin_dir],
                                  probes=['cryptdisks_start byuuid; echo uuid=$?', mapper_probe('gone')])
        assert result.returncode == 1
        assert result.stdout.splitlines() == ['uuid=1', 'LOCKED gone']
        assert '/dev/disk/by-uuid/00000000-rsb-test' in result.stderr

    def test_start_twice_is_fine(self, disk, fake_cryptdisks):
        image, mount_point, fstab = disk
        bin_dir, log_file = fake_cryptdisks
        result = run_in_namespace(['sh', '-c', 'cryptdisks_start b && cryptdisks_start b'],
                                  crypttab='b %s\n' % image, path=[bin_dir], probes=[mapper_probe('b')])
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == 'UNLOCKED b'

    def test_stop_always_succeeds(self, fake_cryptdisks):
        bin_dir, log_file = fake_cryptdisks
        result = run_in_namespace(['sh', '-c', 'cryptdisks_stop unknown && cryptdisks_stop'], path=[bin_dir])
        assert result.returncode == 0
        assert read_cryptdisks_log(log_file) == ['stop unknown', 'stop ']

    def test_succeed_without_unlocking(self, disk, tmp_path):
        image, mount_point, fstab = disk
        bin_dir = tmp_path / 'lazy-bin'
        log_file = tmp_path / 'lazy.log'
        write_fake_cryptdisks(bin_dir, log_file, unlock=False)
        result = run_in_namespace(['cryptdisks_start', 'backups'], crypttab='backups %s\n' % image,
                                  path=[bin_dir], probes=[mapper_probe('backups')])
        assert result.returncode == 0, result.stderr
        assert result.stdout == 'LOCKED backups\n'
        assert read_cryptdisks_log(log_file) == ['start backups']

    def test_refuses_to_run_on_the_host(self, fake_cryptdisks, tmp_path):
        bin_dir, log_file = fake_cryptdisks
        for program in ('cryptdisks_start', 'cryptdisks_stop'):
            result = subprocess.run([os.path.join(bin_dir, program), 'backups'], capture_output=True, text=True)
            assert result.returncode == 2
            assert 'refusing' in result.stderr
        assert read_cryptdisks_log(log_file) == []

    def test_programs_are_executable_scripts(self, tmp_path):
        programs = write_fake_cryptdisks(tmp_path / 'new' / 'bin', tmp_path / 'log')
        assert [os.path.basename(program) for program in programs] == ['cryptdisks_start', 'cryptdisks_stop']
        for program in programs:
            assert os.access(program, os.X_OK)
            subprocess.run(['sh', '-n', program], check=True)


class TestImages:

    def test_make_ext4_image(self, tmp_path):
        image = make_ext4_image(tmp_path / 'small.img', size_mb=8, label='rsb-test',
                                uuid='6f1e1c3a-3c1e-4a8e-9a59-1b3f0e4a7c21')
        assert os.path.getsize(image) == 8 * 1024 * 1024
        assert list_image(image) == ['lost+found']
        output = subprocess.run(['dumpe2fs', '-h', image], capture_output=True, text=True).stdout
        assert 'rsb-test' in output
        assert '6f1e1c3a-3c1e-4a8e-9a59-1b3f0e4a7c21' in output

    def test_image_with_contents(self, tmp_path):
        tree = tmp_path / 'tree'
        (tree / 'backups' / 'old').mkdir(parents=True)
        (tree / 'backups' / 'old' / 'file').write_bytes(b'contents\n')
        image = make_ext4_image(tmp_path / 'full.img', size_mb=8, contents=tree)
        assert list_image(image) == ['backups', 'lost+found']
        assert read_image_file(image, '/backups/old/file') == b'contents\n'

    def test_missing_paths_in_image(self, tmp_path):
        image = make_ext4_image(tmp_path / 'small.img', size_mb=8)
        with pytest.raises(FileNotFoundError):
            read_image_file(image, '/missing')
        with pytest.raises(FileNotFoundError):
            list_image(image, '/missing')


class TestLeakChecks:

    def test_clean_state_passes_quickly(self, tmp_path):
        image = make_ext4_image(tmp_path / 'small.img', size_mb=8)
        assert leaked_loop_devices([image]) == []
        assert leaked_mounts([tmp_path]) == []
        assert_no_leaks([image], [tmp_path], timeout=0)

    def test_leaked_loop_device_is_found_and_detached(self, tmp_path):
        image = make_ext4_image(tmp_path / 'small.img', size_mb=8)
        device = subprocess.run(['losetup', '--find', '--show', image], check=True,
                                capture_output=True, text=True).stdout.strip()
        try:
            assert leaked_loop_devices([image]) == [(device, image)]
            with pytest.raises(AssertionError, match='loop device %s' % device):
                assert_no_leaks([image], timeout=0.2)
            assert leaked_loop_devices([image]) == []
        finally:
            cleanup_leaks([image])

    def test_leaked_mount_is_found_and_unmounted(self, tmp_path):
        target = tmp_path / 'a dir' / 'mnt'
        target.mkdir(parents=True)
        subprocess.run(['mount', '-t', 'tmpfs', 'rsb-test-leak', str(target)], check=True)
        try:
            assert leaked_mounts([tmp_path]) == [('rsb-test-leak', str(target))]
            with pytest.raises(AssertionError, match='rsb-test-leak'):
                assert_no_leaks([], [tmp_path], timeout=0.2)
            assert not os.path.ismount(target)
        finally:
            cleanup_leaks([], [tmp_path])

    def test_leak_check_cleans_up_when_the_block_fails(self, tmp_path):
        image = make_ext4_image(tmp_path / 'small.img', size_mb=8)
        with pytest.raises(RuntimeError):
            with leak_check([image], [tmp_path]):
                subprocess.run(['losetup', '--find', image], check=True)
                raise RuntimeError('test failure')
        assert leaked_loop_devices([image]) == []
