"""The usage text of the ``rsync-system-backup`` command (kept apart so ``--help`` imports next to nothing)."""

import textwrap

from rsync_system_backup.transfer.command import DEFAULT_EXCLUDED_ROOTS

DEFAULT_EXCLUDES_BLOCK = textwrap.fill(' '.join(DEFAULT_EXCLUDED_ROOTS), width=78, initial_indent=' ' * 8,
                                       subsequent_indent=' ' * 8, break_long_words=False, break_on_hyphens=False)
"""The list of :data:`.DEFAULT_EXCLUDED_ROOTS` in the usage text (indented lines)."""

USAGE_TEXT = """\
Usage: rsync-system-backup [OPTIONS] [SOURCE] DESTINATION
       rsync-system-backup --config=FILE [--job=NAME] [OPTIONS]

Back up a Linux system (or any directory) with rsync, keep timestamped
snapshots of it and rotate old snapshots away.

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
The daemon's $RSYNC_EXIT_STATUS is honoured: after a failed transfer no
snapshot is made and nothing is rotated (exit code 1); after exit status
23 or 24 (some files were not transferred) the run goes on with a warning.

SSH destinations and tunnels use ssh as ~/.ssh/config sets it up (Host
aliases, HostName, Port, User, IdentityFile, known hosts and host key
checking); passwords can't be typed in, so log in with a key. An rsync
daemon's password comes from $RSYNC_PASSWORD or --password-file, never from
the command line.

A run has three steps, all enabled by default:

  1. backup:   rsync mirrors SOURCE into DESTINATION (files deleted from
               SOURCE are deleted from DESTINATION too).
  2. snapshot: DESTINATION is copied into a directory named after the
               current time, next to DESTINATION (see --snapshot-method;
               a later backup never changes an earlier snapshot).
  3. rotate:   old snapshots are removed according to the rotation scheme
               (24 hourly, 7 daily, 4 weekly and all monthly snapshots are
               kept; the newest snapshot is always kept, and so are the
               snapshots kept with --keep).

Try --dry-run first: swapping SOURCE and DESTINATION by mistake makes rsync
delete the files you meant to back up. A DESTINATION that is a backup set
itself (the forgotten /latest), a snapshot or lies inside one is refused, and
so is a new backup set where the backup disk looks unmounted (see -m and
--create-set).

Options:

  -b, --backup
      Run the backup step. Naming any of -b, -s and -r runs only the steps
      named.

  -s, --snapshot
      Run the snapshot step (see -b).

  -r, --rotate
      Run the rotate step (see -b).

  --snapshot-method=METHOD
      How snapshots are made, and with it how DESTINATION is written:
      'auto' (the default) picks the first that DESTINATION's filesystem
      supports of 'btrfs' (DESTINATION is a subvolume, snapshots are
      read-only subvolume snapshots), 'reflink' (cp --reflink=always, on XFS
      and btrfs) and 'safe-hardlink' (snapshots are hard links; rsync
      updates only the entries its dry run planned and writes each changed
      file anew, so no snapshot changes; needs python3 where DESTINATION is,
      else auto picks 'link-dest'). 'link-dest' writes a new DESTINATION beside the
      old one, hard-linking unchanged files (snapshots are hard links).
      'hardlink' is the flow of version 1.1 (rsync updates DESTINATION in
      place and snapshots are hard links), where a change of a file's mode,
      owner, timestamps, xattrs or ACLs changes the earlier snapshots too.
      docs/snapshot-methods.rst says what -b, -s and -r do under each.

  --minutely=N, --hourly=N, --daily=N, --weekly=N, --monthly=N, --yearly=N
      Keep N snapshots of that frequency, one per minute, hour, day, week,
      month or year, instead of what the default rotation scheme says. N is
      a number or 'always' (one per period, forever); 0 keeps none of that
      frequency. Frequencies not given keep their defaults, so --hourly=0
      --daily=30 keeps 30 daily, 4 weekly and all monthly snapshots.

  --prefer-recent
      Keep the newest snapshot of each minute, hour, day, ... instead of the
      oldest.

  --keep=NAME
      Keep the snapshot that this run makes under NAME, for good: rotation
      never removes it, and doesn't count it either (the other snapshots are
      kept and removed as if it weren't there), until --release=NAME lets it
      go. For example 'rsync-system-backup --keep=before-upgrade / DEST'
      before an upgrade. NAME is letters, digits, '.', '_', '+' and '-',
      starting with a letter or a digit (at most 64 characters), and keeps
      one snapshot per backup set. Needs the snapshot step;
      --keep=NAME:SNAPSHOT keeps an existing snapshot (see below).

  --relaxed
      Relaxed rotation: --daily=7 keeps the newest 7 days that have a
      snapshot, however long ago they were. By default (strict rotation) it
      keeps only snapshots of the 7 days before the newest snapshot.

  -m, --mount=DIRECTORY
      Mount DIRECTORY (which needs an entry in /etc/fstab) before the backup
      if it isn't mounted yet, and unmount it afterwards. A local
      DESTINATION must be inside DIRECTORY. When the device of its fstab
      entry isn't connected and no terminal is attached (cron, systemd), the
      run is skipped quietly with exit code 0, as with -c.

  -c, --crypto=NAME
      Unlock the encrypted filesystem NAME (an entry in /etc/crypttab) with
      cryptdisks_start before the backup if it is locked, and lock it again
      with cryptdisks_stop afterwards. When its disk isn't connected and no
      terminal is attached (cron, systemd), the run is skipped quietly with
      exit code 0. A key file in /etc/crypttab makes the unlocking unattended.

  -t, --tunnel=[USER@]HOST[:PORT]
      Reach the rsync daemon of DESTINATION through an SSH tunnel to HOST
      (PORT is the SSH port), which encrypts the daemon's traffic. A free
      port on 127.0.0.1 is forwarded to the daemon's port on HOST for the
      duration of the transfer, and rsync connects to it. DESTINATION must
      be an rsync daemon (HOST::MODULE or rsync://HOST/MODULE, without a
      port); snapshots and rotation are the daemon's job, so use -b.

  --daemon-port=PORT
      The port that the rsync daemon listens on at the far end of -t
      (default 873).

  --password-file=FILE
      Give rsync the daemon's password in FILE (rsync's --password-file;
      the file must not be readable by others). $RSYNC_PASSWORD works too.

  --log-file=FILE
      Also append the log messages to FILE, for example when an rsync
      daemon runs this program as its 'post-xfer exec' command and discards
      its output.

  -i, --ionice=CLASS
      Run rsync, cp and rm with the I/O scheduling class CLASS: 'idle',
      'best-effort' or 'realtime' (see the ionice manual).

  -u, --no-sudo
      Don't use sudo. By default a user other than root runs rsync, cp and
      rm with sudo, so that every file can be read and every owner kept;
      the run checks first that sudo works without a password.

  -n, --dry-run
      Change nothing: the summary counts the files rsync would transfer (and
      their size), the entries it would create and delete (with -v rsync
      lists each on standard output), the snapshot step names the snapshot
      it would make, and the rotation step lists the snapshots it would keep
      and remove.

  --multi-fs
      Let rsync cross filesystem boundaries (rsync is run with
      --one-file-system unless this is given).

  --source-snapshot=MODE
      'auto' (the default): when SOURCE is the top of a btrfs subvolume,
      take a read-only snapshot of it first and let rsync read that, so the
      backup holds SOURCE as it was at one instant, not files changed
      halfway through; the snapshot is kept in
      SOURCE/.rsync-system-backup.source-snapshots (only root can enter it;
      it is never backed up) for the next run, and holds on to the space
      of what changed since, until then. Other sources, dry runs and
      --multi-fs read the live SOURCE, with one line saying why. 'never'
      always reads the live SOURCE. With the parent snapshot that the
      backup equals, the transfer is planned from what changed between the
      two snapshots (btrfs send) instead of rsync's walk of all of SOURCE.

  --full-check
      Plan the transfer with rsync's dry run, which compares all of SOURCE
      with the backup, even when it could be planned from the source's
      snapshots (btrfs send, see --source-snapshot). Without this option a
      full check runs by itself when the last one is a week old.

  -x, --exclude=PATTERN
      Leave out files matching PATTERN (rsync's exclude syntax). Can be
      repeated. These absolute paths of this system are always left out
      where SOURCE holds them (pseudo filesystems, mount points of removable
      media, caches and temporary files; a directory of the same name
      deeper in the tree is kept):

{default_excludes}

  --exclude-from=FILE
      Leave out files matching the patterns in FILE, which has the syntax of
      rsync's --exclude-from: one pattern per line, blank lines and lines
      that start with ; or # are skipped. Can be repeated; the patterns take
      the option's place among those of -x. A FILE that can't be read is
      refused before anything is written.

  --show-excludes
      Show what a backup with these options leaves out, one pattern per
      line, and exit: the paths above, the backup itself when DESTINATION
      lies inside SOURCE, the directory of SOURCE's snapshots when it holds
      one (see --source-snapshot), then the patterns of -x. Changes nothing;
      give SOURCE DESTINATION, DESTINATION alone (SOURCE is then /) or
      neither.

  --accept-existing
      Let the first backup into DESTINATION replace the files it already
      holds. Without this, a DESTINATION that holds files but was never a
      backup target is refused, because rsync would replace its files with a
      copy of SOURCE (the swapped SOURCE and DESTINATION accident).

  --create-set
      Let the first backup create a new backup set where the backup disk
      looks unmounted. Without this, a new set is refused below a mount
      point of /etc/fstab (or of a systemd mount unit) that isn't mounted,
      and in an empty directory that looks like a mount point (in /mnt,
      /media or /run/media, or directly below /) with nothing mounted on
      it, because the backup would fill the filesystem underneath.

  --wait
      When another run is working on the same destination, wait for it to
      finish instead of exiting with code 75.

  -f, --force
      Run on an operating system other than Linux.

  --disable-notifications
      Show no desktop notifications (by default notify-send announces the
      start, the end and failures).

  --no-manifest
      Record only the snapshot method in the new snapshot's manifest. By
      default every entry of the snapshot (path, type, size, mode, owner,
      group, modification time, link target and the SHA-256 of its content)
      goes into a compressed manifest beside it (in
      .rsync-system-backup.manifests), for --verify and --diff. It is built
      from the previous manifest and the names the transfer changed, reading
      only new and changed files (see README's Performance section);
      --manifest asks for that default explicitly.

  -v, --verbose
      Say more: -v adds what each step does in detail (and a dry run's list
      of changes), -vv debug messages (every command run), -vvv everything.

  -q, --quiet
      Say less: -q shows only warnings and errors. Can be repeated.

  --version
      Show the version and exit.

  -h, --help
      Show this text and exit (also when no arguments are given).

Looking at backups (these change nothing; DESTINATION is given as for a
backup, or as the backup set's directory that holds latest and the
snapshots, and -i, -u, -m and -c apply):

  --list
      List the snapshots beside DESTINATION, oldest first: name, age, state
      (complete, or incomplete/removing when an interrupted run left it),
      exclusive size (what removing it alone would free: files it shares
      by hard links with DESTINATION or other snapshots don't count) and
      the snapshot method, and the names that keep it (see --keep); then
      DESTINATION, the free space and the newest snapshot's age. --json
      prints the same as JSON.

  --verify
      Read the newest snapshot back and compare it with its manifest (see
      --no-manifest): each changed, missing or extra entry gets a line saying
      what differs. Exit code 0 when it is intact, 2 when anything differs.
      Only the snapshot is read, with the -i/--ionice class.

  --verify-all
      The same for every snapshot that has a manifest.

  --diff=OLD[:NEW], --diff OLD [NEW] DESTINATION, --diff DESTINATION
      Show what was added, removed and changed between the snapshots OLD and
      NEW (by default the newest): from their manifests when both have
      entries, otherwise by comparing the metadata of the two trees. With
      DESTINATION alone, the newest snapshot against the one before it.

  --max-age=DURATION
      Check that the newest complete snapshot is younger than DURATION
      (such as 90s, 26h, 2d or 1d12h: numbers with the units s, m, h, d or
      w, which combine; a number without a unit is refused): exit code 0
      when it is, 2 when it is older or missing, with one line saying how
      old it is. Also 2 when there is no backup set (no marker file) or it
      lies below a mount point of /etc/fstab that isn't mounted. For
      monitoring systems and systemd timers (see docs/inspecting.rst).

  Over SSH these run python3 on the destination's system (nothing else
  needs to be installed there); for an rsync daemon, run them on the server.

Running the jobs of a configuration file:

  --config=FILE
      Run the backup jobs of FILE, a TOML file (see docs/configuration.rst),
      one after the other in the file's order: a table [jobs.NAME] per job,
      whose keys are the long options above (source and destination for
      SOURCE and DESTINATION), with a table [defaults] that they inherit
      from, and the commands to run before a job, after its snapshot and
      when it fails. A job that fails doesn't stop the later ones; each job
      writes its own summary, and the exit code is the worst job's (1, then
      75, then 2, then 0; a signal stops every job at once). FILE is checked
      as a whole first: a problem stops the run before any job starts. With
      --config, the command line takes no SOURCE or DESTINATION, and of the
      options only -n, -v, -q, --log-file, --wait, --full-check,
      --disable-notifications (these three for every job), --show-excludes
      and --list, --json, --verify, --verify-all and --max-age (these run for
      each job's backup set instead of the backup).

  --job=NAME
      Run only the job NAME of FILE. Can be repeated; the jobs named run in
      the file's order.

  --check-config
      Check the whole of FILE without running anything: its TOML syntax,
      unknown keys, values of the wrong type or that the command line would
      refuse, jobs without a destination, two jobs writing one backup set.
      Each problem is one line naming the key and its line in FILE (exit code
      1); without problems, each job's settings and the command line that
      runs it are shown (exit code 0).

Keeping snapshots that exist (DESTINATION alone, as above; these change
only which snapshots are kept, under the backup set's lock):

  --keep=NAME:SNAPSHOT
      Keep the snapshot SNAPSHOT (a name that --list shows) under NAME, as
      --keep=NAME does for the snapshot of a backup.

  --release=NAME
      Let the snapshot kept under NAME go: from then on rotation treats it
      like any other snapshot, so the next rotation may remove it.

Output:

  On a terminal, rsync's overall progress (files, bytes, rate, time left) is
  shown during the transfer, and a summary ends the run: the steps done, the
  files transferred and deleted, the bytes sent, the time of each step, the
  new snapshot, the snapshots kept and removed, and the free space left on
  the destination (-q leaves out both). Without a terminal (cron, systemd)
  there is no progress and no colour, and a run writes one summary line
  plus its warnings and errors (-v shows the steps' messages too; a dry run
  always shows what it would do).

  Warnings and errors also go to the system log, and so does the summary
  line when no terminal is attached (unless standard error goes to the
  systemd journal already). $RSYNC_SYSTEM_BACKUP_SYSLOG_SOCKET names a socket
  to use instead of /dev/log; COLOREDLOGS_SYSLOG=false turns the system log
  off.

Exit codes:

  0    success, or skipped because the backup disk (-c or -m) isn't
       connected (no terminal)
  1    an error; the message says what went wrong and what to do
  2    completed with errors: rsync couldn't transfer some files (its
       messages say which and why); the snapshot was made without them
  2    also: --verify found a snapshot that differs from its manifest, or
       --max-age found the newest snapshot too old
  75   another run is working on the same destination (see --wait)
  129  stopped by SIGHUP, 130 by SIGINT (Control-C), 143 by SIGTERM; every
       cleanup has run, no partial snapshot is left and older ones are intact

  With --config, the exit code is the worst of the jobs' (see --config).
""".format(default_excludes=DEFAULT_EXCLUDES_BLOCK)
"""The text shown by ``rsync-system-backup --help``."""
