"""
Tests of ``transfer/exclude_rules.py``: simple exclude rules matched in this process exactly as rsync matches them.

rsync is the oracle: random trees with awkward names (wildcard characters,
backslashes, spaces, bytes beyond ASCII) and random patterns made from
their names, with wildcards put in, go through rsync's own dry run over the
listed names (as :func:`.send_plan.ask_rsync()` runs it) and through
:func:`.excluded()`; both must take the same names.
"""

import os
import random

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.transfer.exclude_rules import excluded, parse_exclude_rules
from rsync_system_backup.transfer.send_plan import PlanBuilder, ask_rsync

PIECES = [b'a', b'b', b'ab', b'.', b'x.tmp', b'*', b'?', b'\\', b'\\*', b' ', b'caf\xc3\xa9', b'\xff', b'-', b'#']
"""What the random names are made of."""


def random_name(rng):
    """A random component of a name (bytes, never ``.`` or ``..``)."""
    name = b''.join(rng.choice(PIECES) for _ in range(rng.randint(1, 3)))
    return name + b'x' if name in (b'.', b'..') else name


def build_tree(rng, top):
    """Create a random tree below `top`; give its names (bytes, relative)."""
    names, directories = [], [b'']
    for _ in range(60):
        parent = rng.choice(directories)
        name = (parent + b'/' if parent else b'') + random_name(rng)
        if name in names:
            continue
        path = os.path.join(top, name)
        if rng.random() < 0.4:
            os.mkdir(path)
            directories.append(name)
        else:
            with open(path, 'wb'):
                pass
        names.append(name)
    return names


def random_pattern(rng, names):
    """A random pattern (a string) made from a name of the tree, with wildcards put in."""
    name = rng.choice(names).decode('latin-1')
    parts = name.split('/')
    anchored = rng.random() < 0.5
    parts = parts if anchored else parts[-1:]
    changed = []
    for part in parts:
        if rng.random() < 0.5 and part:
            start = rng.randrange(len(part))
            end = rng.randrange(start, len(part) + 1)
            part = part[:start] + rng.choice(['*', '?', '', '\\' + part[start:start + 1]]) + part[end:]
        changed.append(part)
    pattern = ('/' if anchored else '') + '/'.join(changed)
    return pattern + ('/' if rng.random() < 0.3 else '')


@pytest.mark.parametrize('seed', range(12))
def test_rules_match_as_rsync_does(tmp_path, seed):
    """Random names and random patterns from them: the names rsync takes are the names this module takes."""
    rng = random.Random(seed)
    top = str(tmp_path / 'top')
    os.mkdir(top)
    names = build_tree(rng, top.encode())
    for _ in range(10):
        patterns = [random_pattern(rng, names) for _ in range(rng.randint(1, 3))]
        options = ['--filter=- %s' % pattern if pattern.startswith('/') else '--exclude=%s' % pattern
                   for pattern in patterns]
        rules = parse_exclude_rules(options)
        if rules is None:
            continue
        taken = set(name for name in names if not excluded(
            rules, name, lambda name=name: os.path.isdir(os.path.join(top.encode(), name))))
        assert taken == ask_rsync(PlanBuilder(LocalContext(), top, top), top.encode(), set(names), options), patterns


@pytest.mark.parametrize('options', [
    ['--filter=- /a/**'], ['--exclude=a/b'], ['--exclude=[ab]'], ['--exclude=- a'], ['--exclude=+ a'],
    ['--filter=+ a'], ['--include=a'], ['--exclude=caf\xe9'], ['--exclude= a'], ['--exclude=a//'], ['--exclude=/'],
])
def test_other_rules_are_left_to_rsync(options):
    """Anything but a simple exclude rule makes the module step aside."""
    assert parse_exclude_rules(options) is None


def test_default_rules_are_simple():
    """The rules of a run with the default excludes and a ``-x`` pattern are matched here."""
    rules = parse_exclude_rules(['--filter=- /dev/', '--filter=- /home/*/.cache/', '--exclude=*.skip'])
    assert [(rule.parts, rule.anchored, rule.directories_only) for rule in rules] == [
        (['dev'], True, True), (['home', '*', '.cache'], True, True), (['*.skip'], False, False)]

    def directory():
        return True
    assert excluded(rules, b'home/ann/.cache', directory) and not excluded(rules, b'home/ann/x/.cache', directory)
    assert excluded(rules, b'a/b/c.skip', lambda: False) and not excluded(rules, b'dev', lambda: False)
