"""The transfer step: the rsync command line, its output and progress, and what its failures mean."""
