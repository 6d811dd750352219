"""
Programs that work on the destination's side, on ``latest`` and the snapshots.

Each program is a module with a ``main()`` function (see
:mod:`.agent.shipping` for the convention): :mod:`.agent.protect`,
:mod:`.agent.kinds`, :mod:`.agent.update`, :mod:`.agent.link_copy`,
:mod:`.agent.link_limit` and :mod:`.agent.manifests`; :mod:`.agent.tree`
is the walk they share and :mod:`.agent.standalone` runs one in a process
of its own. All of them use the standard library only, so that
:mod:`.agent.shipping` (this process's side, the one module here that
doesn't) can run them in this process or ship their source to the
destination's ``python3``.
"""
