"""
For the tests of ``--config``: writing configuration files, and hooks that record what they saw.

A recording hook is a command for a job's ``before``, ``after`` or
``on-error`` key that writes its environment into a file (NUL-separated,
so no value can break a line), and can list a directory or exit with a
status first; :func:`read_record()` reads such a file back.
"""

import json
import shlex
import textwrap


def write_config(path, text):
    """
    Write a configuration file (mode 0644, as the command wants it).

    :param path: The file's pathname (a path).
    :param text: The TOML text (a string; its common indentation is removed).
    :returns: `path`.
    """
    path.write_text(textwrap.dedent(text).lstrip('\n'))
    path.chmod(0o644)
    return path


def toml_string(value):
    """
    Write a string as TOML does (a basic string, escaped like JSON's).

    :param value: The string (or a path).
    :returns: The TOML text (a string).
    """
    return json.dumps(str(value))


def recording_hook(record, listing=None, exit_code=0):
    """
    Give a hook command (an array of TOML) that records its environment, and optionally lists a directory.

    :param record: The file that receives the environment (a path).
    :param listing: A directory whose entries the hook writes to ``RECORD.listing``, one per line, or :data:`None`.
    :param exit_code: The status the hook exits with (an integer).
    :returns: The TOML text of the array (a string).
    """
    script = 'env -0 > %s' % shlex.quote(str(record))
    if listing is not None:
        script += ' && ls -1 %s > %s' % (shlex.quote(str(listing)), shlex.quote('%s.listing' % record))
    script += ' && exit %i' % exit_code
    return '["sh", "-c", %s]' % toml_string(script)


def read_record(record):
    """
    Read what a recording hook saw.

    :param record: The file the hook wrote (a path).
    :returns: A dict of its ``RSB_*`` environment variables.
    """
    entries = record.read_bytes().decode('utf-8').split('\0')
    return dict(entry.split('=', 1) for entry in entries if entry.startswith('RSB_'))


def read_listing(record):
    """
    Read the directory listing of a recording hook.

    :param record: The file the hook wrote its environment to (a path).
    :returns: The names it listed (a sorted list of strings).
    """
    return sorted(record.parent.joinpath(record.name + '.listing').read_text().splitlines())


def write_one_job(path, source, destination, **keys):
    """
    Write a configuration file with one job, ``[jobs.home]``.

    :param path: The file's pathname (a path).
    :param source: The job's source (a path).
    :param destination: The job's destination (a path or string).
    :param keys: More keys, with ``_`` for ``-`` in their names, and their values as TOML text (strings).
    :returns: `path`.
    """
    lines = ['[jobs.home]', 'source = %s' % toml_string(source), 'destination = %s' % toml_string(destination)]
    lines.extend('%s = %s' % (key.replace('_', '-'), value) for key, value in keys.items())
    return write_config(path, '\n'.join(lines) + '\n')
