"""Checks made before a backup starts, so that bad input is refused before anything is written."""
