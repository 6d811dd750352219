"""What a run tells its user: the summary, desktop notifications and the system log."""
