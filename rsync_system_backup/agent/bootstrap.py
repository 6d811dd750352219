"""
The first code of a shipped program: it loads the program's modules from standard input and starts it.

:mod:`.agent.shipping` runs this module's own source with ``python3 -I -S
-c`` (so it runs as ``__main__``; imported, it does nothing). Its standard
input starts with the modules, each behind a header line (see
:func:`.shipping.ship_modules()`): the module's name, the size of its source
in bytes, and ``package`` or ``module``; an empty line ends them. Each one
is created under its own name, in order, so a module's imports find those
before it. Then :func:`.standalone.run()` gets the program's name and
arguments from the command line; the rest of standard input is the
program's.
"""

import sys
import types

ENTRY_MODULE = 'rsync_system_backup.agent.standalone'
"""The module that runs a program in a process of its own; shipped first with every program."""


def load_modules(stream):
    """
    Create the shipped modules.

    :param stream: The binary standard input, at the first header line.
    """
    header = stream.readline().split()
    while header:
        module = types.ModuleType(header[0].decode())
        sys.modules[module.__name__] = module
        if header[2] == b'package':
            module.__path__ = []
        exec(compile(stream.read(int(header[1])), module.__name__, 'exec'), module.__dict__)
        header = stream.readline().split()


if __name__ == '__main__':
    load_modules(sys.stdin.buffer)
    sys.exit(sys.modules[ENTRY_MODULE].run(sys.argv[1], sys.argv[2:]))
