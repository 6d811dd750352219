"""
Everything the tests share, one job per module (see "The tests" in ``docs/architecture.rst``).

Running the command (:mod:`support.cli`), stand-ins for system programs
(:mod:`support.stand_ins`), trees and their manifests (:mod:`support.trees`),
processes (:mod:`support.processes`), servers on loopback ports
(:mod:`support.servers`, :mod:`support.rsync_daemon`, :mod:`support.remote`,
:mod:`support.sudo_server`, :mod:`support.process_guard`), mount namespaces
(:mod:`support.namespaces`) with their disk images, fake cryptdisks and
leak checks (:mod:`support.disk_images`, :mod:`support.fake_cryptdisks`,
:mod:`support.leaks`), loop filesystems (:mod:`support.loop_filesystems`)
and a real unprivileged user (:mod:`support.users`).
"""
