"""Connections to other hosts: the shared SSH connection and the SSH tunnel to an rsync daemon."""
