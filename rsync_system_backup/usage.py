"""The usage text of the ``rsync-system-backup`` command (kept apart so ``--help`` imports nothing else)."""

USAGE_TEXT = """\
Usage: rsync-system-backup [OPTIONS] [SOURCE] DESTINATION

Back up a Linux system (or any directory) with rsync, keep timestamped
hard-link snapshots of it and rotate old snapshots away.

SOURCE is the directory to back up; it defaults to '/', the root filesystem
(other filesystems mounted below it are left out unless --multi-fs is given).

DESTINATION is the directory that receives the backup, written the way rsync
writes locations:

  /backups/latest                            a directory on this system
  [USER@]HOST:/backups/latest                a directory on HOST, over SSH
  [USER@]HOST::MODULE[/DIRECTORY]            an rsync daemon
  rsync://[USER@]HOST[:PORT]/MODULE[/DIR]    an rsync daemon

When DESTINATION is left out, $RSYNC_MODULE_PATH is used: this is how an
rsync daemon's 'post-xfer exec' command snapshots and rotates its module.

A run has three steps, all enabled by default:

  1. backup:   rsync mirrors SOURCE into DESTINATION (files deleted from
               SOURCE are deleted from DESTINATION too).
  2. snapshot: 'cp --archive --link' copies DESTINATION into a directory
               named after the current time, next to DESTINATION.
  3. rotate:   old snapshots are removed according to the rotation scheme
               (24 hourly, 7 daily, 4 weekly and all monthly snapshots are
               kept; the newest snapshot is always kept).

Try --dry-run first: swapping SOURCE and DESTINATION by mistake makes rsync
delete the files you meant to back up.

Options:

  -b, --backup
      Run the backup step. Naming any of -b, -s and -r runs only the steps
      named.

  -s, --snapshot
      Run the snapshot step (see -b).

  -r, --rotate
      Run the rotate step (see -b).

  -m, --mount=DIRECTORY
      Mount DIRECTORY (which needs an entry in /etc/fstab) before the backup
      if it isn't mounted yet, and unmount it afterwards. A local
      DESTINATION must be inside DIRECTORY.

  -c, --crypto=NAME
      Unlock the encrypted filesystem NAME (an entry in /etc/crypttab) with
      cryptdisks_start before the backup if it is locked, and lock it again
      with cryptdisks_stop afterwards. When its disk isn't connected and no
      terminal is attached (cron, systemd), the run is skipped quietly with
      exit code 0. A key file in /etc/crypttab makes the unlocking unattended.

  -t, --tunnel=[USER@]HOST[:PORT]
      Reach the rsync daemon of DESTINATION through an SSH tunnel to HOST
      (PORT is the SSH port), which encrypts the daemon's traffic.

  -i, --ionice=CLASS
      Run rsync, cp and rm with the I/O scheduling class CLASS: 'idle',
      'best-effort' or 'realtime' (see the ionice manual).

  -u, --no-sudo
      Don't use sudo. By default a user other than root runs rsync, cp and
      rm with sudo, so that every file can be read and every owner kept.

  -n, --dry-run
      Change nothing: rsync reports what it would transfer, and the snapshot
      and rotation steps report what they would do.

  --multi-fs
      Let rsync cross filesystem boundaries (rsync is run with
      --one-file-system unless this is given).

  -x, --exclude=PATTERN
      Leave out files matching PATTERN (rsync's exclude syntax). Can be
      repeated.

  -f, --force
      Run on an operating system other than Linux.

  --disable-notifications
      Show no desktop notifications (by default notify-send announces the
      start, the end and failures).

  -v, --verbose
      Say more. Can be repeated.

  -q, --quiet
      Say less. Can be repeated.

  -h, --help
      Show this text and exit.

Exit codes:

  0  success, or skipped because the backup disk isn't connected (no terminal)
  1  an error; the message says what went wrong and what to do
"""
"""The text shown by ``rsync-system-backup --help``."""
