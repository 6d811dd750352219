"""
Manifests: what each snapshot held when it was made, to verify and compare snapshots later.

The modules that describe, read and compare manifests use nothing but the
standard library, so that the manifests' program (:mod:`.agent.manifests`)
can take them along to an SSH destination's ``python3`` (see
:mod:`.manifests.remote`).
"""
