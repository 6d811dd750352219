"""
The read-only actions: ``--list``, ``--verify``, ``--verify-all``, ``--diff`` and ``--max-age``.

Each looks at a backup set (``latest`` and the snapshots beside it) and
changes nothing; :mod:`.actions.set_view` opens the set for them and
:mod:`.actions.dispatch` runs the one the command line asks for.
"""
