"""Backup disks: unlocking an encrypted device and mounting its filesystem, as /etc/crypttab and /etc/fstab say."""
