"""The source of a backup: read-only btrfs snapshots to transfer from (see :mod:`.sources.snapshots`)."""
