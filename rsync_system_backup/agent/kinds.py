"""
What kind of entry each of some names is in ``latest``: the check after a planned transfer, on the destination's side.

:func:`describe()` answers with one letter per question, in order: the kind
of an entry as rsync's ``%i`` names it (``f``, ``d``, ``L``, ``D``, ``S``) or
``-`` when there is none, and for a pair of names ``=`` when both are the same
inode, ``-`` otherwise. Names are looked up without following symbolic links
(see :mod:`.agent.tree`).
"""

import os
import stat

from rsync_system_backup.agent.tree import Tree

KIND_LETTERS = ((stat.S_ISREG, b'f'), (stat.S_ISDIR, b'd'), (stat.S_ISLNK, b'L'), (stat.S_ISCHR, b'D'),
                (stat.S_ISBLK, b'D'), (stat.S_ISFIFO, b'S'), (stat.S_ISSOCK, b'S'))
"""Tests of an entry's mode and the letter of each kind."""


def kind_of(info):
    """
    Name the kind of an entry.

    :param info: Its :func:`os.lstat()` result, or :data:`None` when there is none.
    :returns: One letter (bytes): see the module documentation.
    """
    if info is not None:
        for test, letter in KIND_LETTERS:
            if test(info.st_mode):
                return letter
    return b'-'


def encode_questions(names, pairs):
    """
    Write the questions as :func:`describe()` reads them.

    :param names: Names whose kinds are asked (bytes).
    :param pairs: Pairs of names (bytes) that should be the same inode.
    :returns: NUL-terminated records (bytes): ``K`` and a name, or ``=`` and a name followed by the other name.
    """
    records = [b'K' + name for name in names]
    for name, other in pairs:
        records.extend((b'=' + name, other))
    return b''.join(record + b'\0' for record in records)


def describe(latest, questions):
    """
    Answer the questions about ``latest``.

    :param latest: Its pathname (bytes or a string).
    :param questions: What :func:`encode_questions()` wrote.
    :returns: One letter per question (bytes).
    """
    tree = Tree(latest)
    answers = []
    try:
        records = iter(questions.split(b'\0'))
        for record in records:
            if record[:1] == b'K':
                answers.append(kind_of(look(tree, record[1:])))
            elif record[:1] == b'=':
                first, second = look(tree, record[1:]), look(tree, next(records))
                same = first is not None and second is not None and \
                    (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)
                answers.append(b'=' if same else b'-')
    finally:
        tree.close()
    return b''.join(answers)


def look(tree, name):
    """
    Look at an entry, taking one that can't be looked at for a missing one.

    :param tree: A :class:`.Tree`.
    :param name: The entry's name (bytes).
    :returns: An :func:`os.lstat()` result or :data:`None`.
    """
    try:
        return tree.lstat(name)
    except OSError:
        return None


def main(arguments, stdin, stdout, stderr, shield):
    """
    Answer as a program: ``kinds LATEST``, with the questions on standard input.

    :param arguments: The command line's arguments (strings).
    :param stdin: The questions (a binary stream).
    :param stdout: For the answers (a binary stream).
    :param stderr: For a message (a text stream).
    :param shield: Unused: nothing here needs shielding from signals.
    :returns: The exit code: 0, or 1 when ``latest`` can't be opened (with a message).
    """
    try:
        answers = describe(os.fsencode(arguments[0]), stdin.read())
    except OSError as error:
        stderr.write("Failed to look into %s: %s\n" % (arguments[0], error))
        return 1
    stdout.write(answers)
    return 0
