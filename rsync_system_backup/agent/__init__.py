"""
Programs that work on the destination's side, on ``latest`` and the snapshots.

Every module of this package uses the standard library only, so that it can
run in this process (a local destination that needs no ``sudo``) or be
shipped to the destination's ``python3`` by :mod:`.agent.shipping`.
"""
