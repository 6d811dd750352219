"""Tests of the documentation: the Sphinx build (warnings are errors) and the example script it shows."""

import importlib.util
import os
import pkgutil
import runpy
import subprocess
import sys

import pytest

import rsync_system_backup
from rsync_system_backup.usage import USAGE_TEXT
from support.trees import list_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')


@pytest.fixture(scope='module')
def html(tmp_path_factory):
    """
    Build the documentation as HTML, with warnings as errors, and return the output directory.

    This takes a while, so the tests that use it are marked slow.
    """
    if importlib.util.find_spec('sphinx') is None:
        pytest.skip("Sphinx is not installed (pip install -r requirements-tests.txt installs it)")
    output = tmp_path_factory.mktemp('docs-html')
    process = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html', '-d', str(output / '.doctrees'),
         DOCS, str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
    )
    assert process.returncode == 0, process.stdout.decode('utf-8', 'replace')
    return output


def read_page(html, name):
    """Read a built page."""
    with open(str(html / name), encoding='utf-8') as handle:
        return handle.read()


@pytest.mark.slow
def test_build_without_warnings(html):
    """sphinx-build -W succeeds and builds every page."""
    for name in ('index', 'installation', 'usage', 'scheduling', 'api', 'changelog'):
        assert (html / (name + '.html')).exists()


@pytest.mark.slow
def test_usage_page_is_the_usage_text(html):
    """The usage page shows the program's own usage text, line by line."""
    import html as html_module
    page = html_module.unescape(read_page(html, 'usage.html'))
    for line in USAGE_TEXT.splitlines():
        assert line.strip() in page


@pytest.mark.slow
def test_api_reference_covers_every_module(html):
    """Every public module of the package has a section in the API reference."""
    page = read_page(html, 'api.html')
    modules = [info.name for info in pkgutil.walk_packages(rsync_system_backup.__path__, 'rsync_system_backup.')
               if not info.name.rpartition('.')[2].startswith('_')]
    assert 'rsync_system_backup.backup' in modules and 'rsync_system_backup.reporting.summary' in modules
    for name in modules:
        assert 'id="module-%s"' % name in page, name
    assert 'rsync_system_backup.backup.RsyncSystemBackup.rotation_scheme' in page


@pytest.mark.slow
def test_other_pages_are_in_the_toctree(html):
    """Pages that other features add to docs/ (remote destinations, ...) are picked up by the index."""
    index = read_page(html, 'index.html')
    for name in os.listdir(DOCS):
        if name.endswith('.rst'):
            assert 'href="%s.html"' % name[:-4] in index or name == 'index.rst', name


def test_api_example(tmp_path, monkeypatch):
    """The script on the API page backs up two sources to two destinations with its own rotation."""
    monkeypatch.setenv('HOME', str(tmp_path))
    example = runpy.run_path(os.path.join(DOCS, 'examples', 'two_sources_two_destinations.py'))
    sources = {}
    for name in ('system', 'home'):
        directory = tmp_path / 'sources' / name
        directory.mkdir(parents=True)
        (directory / ('%s-file' % name)).write_text(name)
        sources[name] = str(directory)
    destinations = [str(tmp_path / 'disk'), str(tmp_path / 'server') + '/']
    assert example['back_up'](sources, destinations, example['ROTATION_SCHEME']) == 0
    for destination in ('disk', 'server'):
        for name in ('system', 'home'):
            backups = tmp_path / destination / name
            assert (backups / 'latest' / ('%s-file' % name)).read_text() == name
            assert len([entry for entry in list_names(backups) if entry[:1].isdigit()]) == 1
    assert example['ROTATION_SCHEME'] == dict(daily=14, weekly=8, monthly=12, yearly='always')


def test_api_example_counts_failures(tmp_path, monkeypatch):
    """A backup that fails is logged and counted, and the others still run."""
    monkeypatch.setenv('HOME', str(tmp_path))
    example = runpy.run_path(os.path.join(DOCS, 'examples', 'two_sources_two_destinations.py'))
    (tmp_path / 'present').mkdir()
    sources = {'missing': str(tmp_path / 'missing'), 'present': str(tmp_path / 'present')}
    assert example['back_up'](sources, [str(tmp_path / 'disk')], dict(daily=1)) == 1
    assert (tmp_path / 'disk' / 'present' / 'latest').is_dir()
