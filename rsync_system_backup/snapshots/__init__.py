"""Snapshots of ``latest``: their names, how each method makes them, and the filesystem features they need."""
