"""
Tests of the restore recipes in ``docs/restore.rst``: each marked block is run against a real backup.

The blocks are read from the page itself (each follows a ``.. recipe: NAME``
comment), so the page can't drift from what is tested. They run with
``sh -eu`` and the variables the page tells users to set; over SSH, rsync
reaches the test sshd through ``$RSYNC_RSH``.
"""

import os
import subprocess

import pytest

from support.servers import LOCALHOST
from support.trees import make_system_tree, snapshot_names, take_manifest, write_file

RESTORE_PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'restore.rst')
"""The page with the recipes."""

RECIPE_MARKER = '.. recipe: '
"""The comment that names the code block after it."""

RECREATED = (b'dev', b'proc', b'sys', b'run', b'mnt', b'media', b'tmp', b'var/tmp', b'var/cache')
"""The directories that the whole-system recipes create (backups leave them out)."""


def read_recipes(pathname=RESTORE_PAGE):
    """
    Read the marked code blocks of a page.

    :param pathname: The reStructuredText file (a string).
    :returns: A dict from recipe name to shell code (a string).
    """
    recipes = {}
    name = None
    with open(pathname, encoding='utf-8') as handle:
        lines = iter(handle.read().splitlines())
    for line in lines:
        if line.startswith(RECIPE_MARKER):
            name = line[len(RECIPE_MARKER):].strip()
        elif name and line.startswith('.. code-block:: sh'):
            code = []
            for line in lines:
                if line and not line.startswith('   '):
                    break
                code.append(line[3:])
            recipes[name] = '\n'.join(code).strip() + '\n'
            name = None
    return recipes


RECIPES = read_recipes()
"""The recipes of :data:`RESTORE_PAGE`."""


@pytest.fixture
def source(tmp_path):
    """A small system: hard links, ACLs, xattrs, owners without names, a setuid file, a sparse file, links."""
    return make_system_tree(tmp_path / 'source')


@pytest.fixture
def snapshot(run_cli, source, backups):
    """A real backup of :func:`source`: the pathname of its snapshot."""
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    (name,) = snapshot_names(backups)
    return backups / name


@pytest.fixture(params=['local', 'ssh'])
def run_recipe(request, snapshot, tmp_path):
    """
    Run a recipe for a local backup or, over SSH, for a backup on the test sshd.

    Returns a function that takes the part of the recipe's name before the
    transport (``file``, ``directory``, ``system``) and the target directory.
    """
    environment = dict(os.environ, BACKUPS=str(snapshot.parent), SNAPSHOT=snapshot.name)
    if request.param == 'ssh':
        server = request.getfixturevalue('ssh_server')
        environment.update(HOST=LOCALHOST, RSYNC_RSH=' '.join([
            'ssh', '-F', '/dev/null', '-p', str(server.port), '-i', server.identity_file, '-l', 'root',
            '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no',
            '-o', 'UserKnownHostsFile=%s' % (tmp_path / 'known_hosts'), '-o', 'BatchMode=yes']))

    def run(kind, target):
        code = RECIPES['%s-%s' % (kind, request.param)]
        process = subprocess.run(['sh', '-eu', '-c', code], env=dict(environment, TARGET=str(target)),
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert process.returncode == 0, (code, process.stderr)
    return run


def below(manifest, prefix):
    """The part of a :func:`take_manifest()` result below a directory, relative to it (without hard link groups)."""
    return {path[len(prefix) + 1:]: entry[:7] for path, entry in manifest.items() if path.startswith(prefix + b'/')}


def test_recipes_are_marked():
    """The page has the six recipes the tests expect, each a shell block."""
    assert sorted(RECIPES) == sorted('%s-%s' % (kind, transport) for kind in ('file', 'directory', 'system')
                                     for transport in ('local', 'ssh'))
    assert all('rsync ' in code and '--numeric-ids' in code for code in RECIPES.values())


def test_restore_one_file(run_recipe, snapshot, tmp_path):
    """A damaged file comes back with its content, mode and owner (hard links to it elsewhere stay apart)."""
    target = tmp_path / 'target'
    write_file(target / 'etc' / 'fstab', b'damaged', mode=0o600)
    run_recipe('file', target)
    expected = take_manifest(snapshot, times='seconds')[b'etc/fstab'][:-1]
    assert take_manifest(target, times='seconds')[b'etc/fstab'][:-1] == expected


def test_restore_a_directory(run_recipe, snapshot, tmp_path):
    """A directory comes back exactly: missing and changed files restored, newer ones removed, ACLs and xattrs kept."""
    target = tmp_path / 'target'
    write_file(target / 'home' / 'alice' / 'notes', b'changed\n')
    write_file(target / 'home' / 'alice' / 'new since the backup', b'new')
    run_recipe('directory', target)
    assert below(take_manifest(target, times='seconds'), b'home/alice') == \
        below(take_manifest(snapshot, times='seconds'), b'home/alice')


def test_restore_a_whole_system(run_recipe, snapshot, tmp_path):
    """An empty root filesystem gets everything back (hard links, owners, setuid, sparse) and the left-out dirs."""
    target = tmp_path / 'target'
    target.mkdir()
    run_recipe('system', target)
    restored = take_manifest(target, times='seconds')
    for name in RECREATED:
        assert restored.pop(name)[0:2] == (0o040000, 0o1777 if name.endswith(b'tmp') else 0o755)
    assert restored == take_manifest(snapshot, times='seconds')
    assert os.stat(str(target / 'var' / 'lib' / 'image')).st_blocks * 512 < 1024 * 1024  # Still sparse.
