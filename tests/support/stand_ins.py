"""Stand-ins for system programs: shell scripts that the command finds first on its ``$PATH``."""

import shlex
import shutil


def write_script(path, body):
    """
    Write an executable shell script.

    :param path: The script's pathname (a path), normally in the test's ``fake_bin`` directory.
    :param body: The shell code after the ``#!/bin/sh`` line (a string).
    :returns: `path`.
    """
    path.write_text('#!/bin/sh\n' + body)
    path.chmod(0o755)
    return path


def real_program(name):
    """
    Find the real program that a stand-in may run after doing its own thing.

    :param name: The program's name (a string).
    :returns: Its absolute pathname (a string).
    """
    program = shutil.which(name)
    assert program, "%s is not installed" % name
    return program


def log_arguments(path, log_directory, program):
    """
    Write a stand-in that records its arguments and then runs the real program.

    :param path: The stand-in's pathname (a path), normally in the test's ``fake_bin`` directory.
    :param log_directory: Where each call leaves a file with its arguments (a path; it is created).
    :param program: The real program's pathname (a string, see :func:`real_program()`).
    :returns: `path`.
    """
    log_directory.mkdir()
    return write_script(path, 'printf "%%s\\0" "$@" > "$(mktemp %s/call.XXXXXX)"\nexec %s "$@"\n'
                        % (shlex.quote(str(log_directory)), shlex.quote(program)))


def logged_calls(log_directory):
    """
    Read the arguments of the calls that :func:`log_arguments()` recorded.

    :param log_directory: The stand-in's log directory (a path).
    :returns: A list of lists of strings (in no particular order).
    """
    return [path.read_bytes().decode('utf-8', 'replace').split('\0')[:-1] for path in log_directory.iterdir()]
