"""
Manifests: what each snapshot held when it was made, to verify and compare snapshots later.

The modules of this package use nothing but the standard library, so that
:mod:`.manifests.remote` can run them on an SSH destination with that
system's ``python3``.
"""
