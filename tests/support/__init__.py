"""Everything the tests share: servers on loopback ports, mount namespaces, loop filesystems, trees, runners."""
