# Test infrastructure: private mount namespaces with test versions of /etc/fstab and /etc/crypttab.

"""
Run commands in a private mount namespace with test ``/etc/fstab`` and ``/etc/crypttab``.

The tests of ``--crypto`` and ``--mount`` need a system whose ``/etc/fstab``
and ``/etc/crypttab`` name throw-away disk images, but they must never touch
the host's real files. :func:`namespace_command` therefore wraps a command
in ``unshare --mount --propagation private sh -c SCRIPT``, where the script
gives the new mount namespace private copies of what the tests change:

``/etc``
    An overlay (lower: the real ``/etc``, upper: a tmpfs). The test fstab and
    crypttab are written into it; in the namespace, a file that isn't given
    does not exist. Nothing reaches the host's ``/etc``. (A bind mount over
    ``/etc/crypttab`` alone is impossible when the host has no such file.)

``/dev/mapper`` and ``/dev/disk``
    Empty tmpfs mounts. ``/dev`` is a devtmpfs shared with the host, so a
    ``mkdir`` there would leak: when the host lacks either directory (as on
    the machines this project is tested on), ``/dev`` becomes an overlay as
    well and the missing ones are created in its upper layer first. Loop
    devices that the kernel creates later still show up (they appear in the
    lower layer). The fake ``cryptdisks_start`` of :func:`support.fake_cryptdisks.write_fake_cryptdisks`
    puts its symbolic links in ``/dev/mapper``; tests put the links that udev
    would make (``/dev/disk/by-uuid/...``) in ``/dev/disk``.

``/run/mount``
    An empty tmpfs, because libmount records userspace mount options in
    ``/run/mount/utab`` *even inside a private mount namespace*, which would
    otherwise write to the host. When the host has no ``/run/mount``, ``/run``
    is "shadowed": a tmpfs holding bind mounts of every entry of the real
    ``/run`` plus an empty ``mount`` directory is moved over it. (An overlay
    would do here too, except that a Unix socket can't be connected through
    an overlay.)

Mounts under the overlaid directories (``/dev/pts``, ``/dev/shm``, ...) are
moved on top of the overlay, and Unix sockets directly in an overlaid
directory (``/dev/log``) are bind mounted from the real one, so both keep
working. Mount point paths containing whitespace are not supported there.

The scratch tmpfs that holds the overlays' upper layers lives on a temporary
directory only until the overlays are mounted: it is then detached (the
overlays keep it alive) and the directory removed, so a namespace leaves
nothing behind on the host. The namespace, and with it every mount made in
it, disappears when its last process exits; a loop device attached by
``mount -o loop`` has the auto-clear flag and detaches itself at that moment.
:func:`support.leaks.assert_no_leaks` checks that this really happened.

Example (with :func:`support.disk_images.make_ext4_image` and :func:`support.leaks.leak_check`)::

    image = make_ext4_image(tmp_path / 'disk.img')
    mount_point = tmp_path / 'mnt'
    mount_point.mkdir()
    fstab = '%s %s ext4 loop,noauto 0 0\\n' % (image, mount_point)
    with leak_check([image], [tmp_path]):
        argv = namespace_commands(
            [['mount', str(mount_point)], mount_probe(mount_point)],
            fstab=fstab,
        )
        result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == 'MOUNTED %s' % mount_point

Everything here needs root, ``unshare`` (util-linux) and overlayfs.
"""

import os
import shlex
import subprocess

from support.cli import CommandResult, command_environment, command_line

NAMESPACE_MARKER = '/etc/rsb-test-namespace'
"""
A file that exists only inside namespaces made by :func:`namespace_command`.

It lives in the overlay on ``/etc``, so it never exists on the host. The fake
``cryptdisks_*`` programs refuse to run without it.
"""

UNSHARE_COMMAND = ['unshare', '--mount', '--propagation', 'private']
"""The command line prefix that creates the private mount namespace."""

SETUP_SCRIPT = r'''
set -eu
# Every mount/umount here uses -n: libmount would otherwise create the host's
# /run/mount/utab.lock (and /run/mount itself) before /run/mount is private.
rsb_scratch=$(mktemp -d "${TMPDIR:-/tmp}/rsb-namespace.$$.XXXXXX")
trap 'cd /; umount -n -l "$rsb_scratch" 2>/dev/null || :; rmdir "$rsb_scratch" 2>/dev/null || :' EXIT
mount -n -t tmpfs -o mode=0700 rsb-namespace "$rsb_scratch"

# rsb_submounts DIR: print the outermost mount points below DIR (one a line).
rsb_submounts() {
    awk -v dir="$1/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -u |
        awk 'outer == "" || index($0, outer "/") != 1 { print; outer = $0 }'
}

# rsb_overlay DIR NAME: turn DIR into an overlay whose upper layer lives in the
# scratch tmpfs; mounts below DIR and Unix sockets directly in DIR keep working.
rsb_overlay() {
    rsb_work=$rsb_scratch/$2
    mkdir "$rsb_work" "$rsb_work/upper" "$rsb_work/work" "$rsb_work/real" "$rsb_work/moved"
    mount -n --bind "$1" "$rsb_work/real"
    rsb_count=0
    for rsb_path in $(rsb_submounts "$1"); do
        rsb_count=$((rsb_count + 1))
        mkdir "$rsb_work/moved/$rsb_count"
        printf '%s\n' "$rsb_path" > "$rsb_work/moved/$rsb_count.path"
        mount -n --move "$rsb_path" "$rsb_work/moved/$rsb_count"
    done
    mount -n -t overlay rsb-overlay -o "lowerdir=$1,upperdir=$rsb_work/upper,workdir=$rsb_work/work" "$1"
    rsb_index=0
    while [ "$rsb_index" -lt "$rsb_count" ]; do
        rsb_index=$((rsb_index + 1))
        mount -n --move "$rsb_work/moved/$rsb_index" "$(cat "$rsb_work/moved/$rsb_index.path")"
    done
    for rsb_path in "$rsb_work/real"/* "$rsb_work/real"/.[!.]* "$rsb_work/real"/..?*; do
        if [ -S "$rsb_path" ]; then
            mount -n --bind "$rsb_path" "$1/${rsb_path##*/}"
        fi
    done
}

# rsb_shadow DIR NEW: move a tmpfs over DIR that holds bind mounts of DIR's
# entries (symbolic links are copied) plus an empty directory DIR/NEW.
rsb_shadow() {
    rsb_work=$rsb_scratch/$2.shadow
    mkdir "$rsb_work"
    mount -n -t tmpfs -o "mode=$(stat -c %a "$1")" rsb-shadow "$rsb_work"
    chown "$(stat -c %u:%g "$1")" "$rsb_work"
    for rsb_path in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        rsb_name=${rsb_path##*/}
        if [ -L "$rsb_path" ]; then
            cp -P "$rsb_path" "$rsb_work/$rsb_name"
        elif [ -d "$rsb_path" ]; then
            mkdir "$rsb_work/$rsb_name"
            mount -n --rbind "$rsb_path" "$rsb_work/$rsb_name"
        elif [ -e "$rsb_path" ]; then
            : > "$rsb_work/$rsb_name"
            mount -n --bind "$rsb_path" "$rsb_work/$rsb_name"
        fi
    done
    mkdir -m 0755 "$rsb_work/$2"
    mount -n --move "$rsb_work" "$1"
}

rsb_overlay /etc etc
if [ ! -d /dev/mapper ] || [ ! -d /dev/disk ]; then
    rsb_overlay /dev dev
    mkdir -p -m 0755 /dev/mapper /dev/disk
fi
mount -n -t tmpfs -o mode=0755 rsb-mapper /dev/mapper
mount -n -t tmpfs -o mode=0755 rsb-disk /dev/disk
if [ ! -d /run/mount ]; then
    rsb_shadow /run mount
fi
mount -n -t tmpfs -o mode=0755 rsb-utab /run/mount

umount -n -l "$rsb_scratch"
rmdir "$rsb_scratch"
trap - EXIT
rm -f /etc/fstab /etc/crypttab
'''
"""
The part of the namespace script that prepares the mounts (see the module docstring).

All its ``mount``/``umount`` calls use ``-n``, so that libmount doesn't touch
the host's ``/run/mount`` before the namespace has a private one.
It runs with ``set -eu``: when a step fails, the script exits with a
non-zero status before the command under test runs. Its variables and
functions all start with ``rsb_``.
"""


def namespace_script(fstab=None, crypttab=None, path=()):
    """
    Generate the shell script that prepares a test namespace.

    :param fstab: The text of ``/etc/fstab`` in the namespace, or
                  :data:`None` for no ``/etc/fstab`` at all.
    :param crypttab: The text of ``/etc/crypttab`` in the namespace, or
                     :data:`None` for no ``/etc/crypttab`` at all.
    :param path: Directories to put in front of ``$PATH`` (e.g. the one
                 holding the fake ``cryptdisks_*`` programs), first one first.
    :returns: The script (a string) that prepares the mounts, writes the
              files, exports ``PATH`` and leaves ``set -e`` off, so that
              commands can follow it.
    """
    lines = [SETUP_SCRIPT.strip(), ': > %s' % shlex.quote(NAMESPACE_MARKER)]
    for filename, text in (('/etc/fstab', fstab), ('/etc/crypttab', crypttab)):
        if text is not None:
            lines.append('printf %%s %s > %s' % (shlex.quote(text), filename))
    directories = [os.fspath(directory) for directory in path]
    if directories:
        lines.append('PATH=%s:$PATH' % shlex.quote(':'.join(directories)))
    lines.append('export PATH')
    lines.append('set +eu')
    return '\n'.join(lines) + '\n'


def namespace_command(command, fstab=None, crypttab=None, path=()):
    """
    Build the command line that runs one command in a test namespace.

    :param command: The command to run: a list of arguments (strings or
                    path-like objects). It is passed as positional
                    arguments, so no quoting is involved.
    :param fstab: See :func:`namespace_script`.
    :param crypttab: See :func:`namespace_script`.
    :param path: See :func:`namespace_script`.
    :returns: A list of arguments for :mod:`subprocess`, of the form
              ``['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
              SCRIPT, 'sh', *command]``.

    The script ends with ``exec "$@"``, so the exit status is the command's
    (or non-zero when preparing the namespace failed, with a message on
    standard error). Standard input, output and error and the environment
    are passed through unchanged.
    """
    script = namespace_script(fstab=fstab, crypttab=crypttab, path=path) + 'exec "$@"\n'
    return UNSHARE_COMMAND + ['sh', '-c', script, 'sh'] + [os.fspath(argument) for argument in command]


def namespace_commands(commands, fstab=None, crypttab=None, path=(), survive_signals=False):
    """
    Build the command line that runs several commands in one test namespace.

    :param commands: A non-empty list of commands, run one after the other
                     whatever their exit status. Each is either a list of
                     arguments (quoted with :func:`shlex.quote`) or a string
                     of shell code (inserted as is, e.g. from
                     :func:`mount_probe`).
    :param fstab: See :func:`namespace_script`.
    :param crypttab: See :func:`namespace_script`.
    :param path: See :func:`namespace_script`.
    :param survive_signals: :data:`True` to have the shell that runs the
                            commands outlive SIGINT, SIGHUP and SIGTERM (it
                            traps them, so the commands still get the
                            default handling), as an interactive shell
                            outlives the signals that a terminal sends to
                            a job; the probes then still run.
    :returns: A list of arguments for :mod:`subprocess`.
    :raises: :exc:`ValueError` when `commands` is empty.

    The exit status is that of the *first* command (the command under
    test); the later ones are meant to be probes that look at the state of
    the namespace afterwards and print what they find, which lands on
    standard output after the first command's output.
    """
    if not commands:
        raise ValueError('At least one command is required!')
    lines = [namespace_script(fstab=fstab, crypttab=crypttab, path=path)]
    if survive_signals:
        lines.append('trap : INT HUP TERM')
    for index, command in enumerate(commands):
        if not isinstance(command, str):
            command = ' '.join(shlex.quote(os.fspath(argument)) for argument in command)
        lines.append(command)
        if index == 0:
            lines.append('rsb_status=$?')
    lines.append('exit $rsb_status')
    return UNSHARE_COMMAND + ['sh', '-c', '\n'.join(lines) + '\n']


def run_in_namespace(command, fstab=None, crypttab=None, path=(), probes=(), **options):
    """
    Run a command (and optionally probes) in a test namespace and capture its output.

    :param command: The command to run (a list of arguments).
    :param fstab: See :func:`namespace_script`.
    :param crypttab: See :func:`namespace_script`.
    :param path: See :func:`namespace_script`.
    :param probes: Commands to run after `command` in the same namespace
                   (see :func:`namespace_commands`).
    :param options: Passed on to :func:`subprocess.run` (e.g. ``env``,
                    ``timeout``). By default output is captured as text and
                    a timeout of 120 seconds applies.
    :returns: A :class:`subprocess.CompletedProcess` whose ``returncode`` is
              the exit status of `command`.
    """
    if probes:
        argv = namespace_commands([command] + list(probes), fstab=fstab, crypttab=crypttab, path=path)
    else:
        argv = namespace_command(command, fstab=fstab, crypttab=crypttab, path=path)
    options.setdefault('capture_output', True)
    options.setdefault('text', True)
    options.setdefault('timeout', 120)
    return subprocess.run(argv, check=False, **options)


def mount_probe(mount_point):
    """
    Shell code that reports whether a directory is a mount point.

    :param mount_point: The directory (a string or path-like object).
    :returns: Shell code (for :func:`namespace_commands`) that prints
              ``MOUNTED <mount_point>`` or ``NOT-MOUNTED <mount_point>``.
    """
    quoted = shlex.quote(os.fspath(mount_point))
    return 'if mountpoint -q %s; then echo MOUNTED %s; else echo NOT-MOUNTED %s; fi' % (quoted, quoted, quoted)


def mapper_probe(name):
    """
    Shell code that reports whether ``/dev/mapper/NAME`` exists (i.e. whether it is "unlocked").

    :param name: The crypttab target name.
    :returns: Shell code (for :func:`namespace_commands`) that prints
              ``UNLOCKED <name>`` or ``LOCKED <name>``.
    """
    quoted = shlex.quote(name)
    return 'if [ -e /dev/mapper/%s ]; then echo UNLOCKED %s; else echo LOCKED %s; fi' % (quoted, quoted, quoted)


def run_cli_in_namespace(arguments, fstab=None, crypttab=None, before=None, env=None, path=(), timeout=120):
    """
    Run ``python -m rsync_system_backup ARGUMENTS`` in a test namespace, without a terminal.

    :param arguments: The command line arguments (strings or paths).
    :param fstab: See :func:`namespace_script`.
    :param crypttab: See :func:`namespace_script`.
    :param before: Shell code that prepares the namespace before the command
                   runs (say, a systemd mount unit in the private ``/etc``);
                   the command runs only when it succeeds.
    :param env: Environment variables to add (a dict; see :func:`support.cli.command_environment()`).
    :param path: See :func:`namespace_script`.
    :param timeout: Seconds before the test fails.
    :returns: A :class:`support.cli.CommandResult`.
    """
    command = ' '.join(shlex.quote(argument) for argument in command_line(*arguments))
    argv = namespace_commands([before + ' && ' + command if before else command], fstab=fstab, crypttab=crypttab,
                              path=path)
    process = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             env=command_environment(**(env or {})), timeout=timeout)
    return CommandResult(process.returncode, process.stdout, process.stderr)
