"""The files of ``docs/examples``: reading them, and the settings of a systemd unit file among them."""

import os

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'docs',
                        'examples')
"""The directory of the examples."""

DOCUMENTED_PROGRAM = '/opt/rsync-system-backup/bin/rsync-system-backup'
"""Where the examples expect the program (the installation steps in README.rst put it there)."""


def read_example(name):
    """
    Read a file of ``docs/examples``.

    :param name: The file's name (a string).
    :returns: Its text (a string).
    """
    with open(os.path.join(EXAMPLES, name)) as handle:
        return handle.read()


def unit_settings(name):
    """
    Read the settings of a systemd unit file of ``docs/examples``.

    :param name: The file's name (a string).
    :returns: A dict from the keys of its ``Key=value`` lines to their values (later lines win).
    """
    settings = {}
    for line in read_example(name).splitlines():
        if '=' in line and not line.startswith(('#', ';')):
            key, value = line.split('=', 1)
            settings[key.strip()] = value.strip()
    return settings
