"""
The actions: ``--list``, ``--verify``, ``--verify-all``, ``--diff`` and ``--max-age``, and keeping snapshots.

The read-only actions look at a backup set (``latest`` and the snapshots
beside it) and change nothing; ``--keep=NAME:SNAPSHOT`` and ``--release=NAME``
change only which snapshots are kept (see :mod:`.backup_set.kept`).
:mod:`.actions.set_view` opens the set for them and :mod:`.actions.dispatch`
runs the one the command line asks for.
"""
