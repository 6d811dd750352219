"""Rotation of old snapshots: the retention scheme and the plan of what to keep and what to remove."""
