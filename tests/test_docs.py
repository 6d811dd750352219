"""Tests of the documentation: the Sphinx build (warnings are errors) and the example script it shows."""

import importlib.util
import os
import pkgutil
import pydoc
import re
import runpy
import subprocess
import sys

import pytest

import rsync_system_backup
from rsync_system_backup import RsyncSystemBackup
from rsync_system_backup.command_line import LONG_OPTIONS, SHORT_TO_LONG, parse_command_line
from rsync_system_backup.option_keywords import OPTION_KEYWORDS, format_option_table
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
def test_api_page_has_the_option_table(html):
    """The API page shows the table of options and keyword arguments, with the options' dashes intact."""
    import html as html_module
    page = html_module.unescape(read_page(html, 'api.html'))
    top = page[page.index('Options and keyword arguments'):page.index('A short example')]
    top = re.sub(r'\s+', ' ', re.sub(r'<[^>]*>', '', top))
    for options, keyword, _ in OPTION_KEYWORDS:
        assert options in top and (keyword or '(none)') in top, options
    assert '\u2013' not in top


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


SAMPLE_VALUES = {
    '--snapshot-method': 'hardlink', '--mount': '/mnt/backups', '--crypto': 'backup-disk', '--tunnel': 'backup-server',
    '--daemon-port': '8730', '--password-file': '/etc/backup.secret', '--log-file': '/var/log/backup.log',
    '--ionice': 'idle', '--exclude': '*.iso', '--diff': '2024-05-01_03-00-00', '--max-age': '26h',
    '--minutely': '5', '--hourly': '12', '--daily': '30', '--weekly': '8', '--monthly': '6', '--yearly': 'always',
    '--keep': 'before-upgrade', '--release': 'before-upgrade', '--source-snapshot': 'never',
    '--config': '/etc/rsync-system-backup.toml', '--job': 'home', '--exclude-from': 'excludes.txt',
}
"""A valid value for each option of the command line that takes one (the exclude file is in the test's directory)."""

COMPANIONS = {'--json': ['--list'], '--job': ['--config=/etc/rsync-system-backup.toml'],
              '--check-config': ['--config=/etc/rsync-system-backup.toml']}
"""The options that only go with another one, and what they go with."""

CONFIG_OPTIONS = ('--config', '--job', '--check-config')
"""The options of a configuration file, which take no DESTINATION."""

NOT_SETTINGS = {'summary'}
"""The writable properties of :class:`RsyncSystemBackup` that hold an outcome, not a setting."""


def table_options(cell):
    """The long and short options named in a cell of the table's first column (a list of strings)."""
    return re.findall(r'(?<![\w-])--?[a-z][a-z-]*', cell)


def test_option_table_names_every_option():
    """Every option of getopt and of the usage text has a row, with its short form; every option named exists."""
    named = [option for options, _, _ in OPTION_KEYWORDS for option in table_options(options)]
    long_options = ['--' + option.rstrip('=') for option in LONG_OPTIONS]
    assert sorted(option for option in named if option.startswith('--')) == sorted(long_options)
    option_lines = [line for line in USAGE_TEXT.splitlines() if re.match(r'  --?[a-z]', line)]
    assert len(option_lines) > 30
    for line in option_lines:
        for option in table_options(line):
            assert option in named, option
    for short, long in SHORT_TO_LONG.items():
        assert any(re.search(r'(^|, )%s, %s\b' % (short, long), options) for options, _, _ in OPTION_KEYWORDS), short


def test_option_table_names_every_keyword():
    """The keywords of the table are the settable properties of RsyncSystemBackup, each once."""
    keywords = [keyword for _, keyword, _ in OPTION_KEYWORDS if keyword]
    assert len(keywords) == len(set(keywords))
    properties = set(RsyncSystemBackup(destination='/mnt/backups/latest').find_properties(writable=True))
    assert set(keywords) == properties - NOT_SETTINGS


@pytest.mark.parametrize('options, keyword, value', [row for row in OPTION_KEYWORDS if not row[0].startswith('(')])
def test_option_table_matches_the_parser(options, keyword, value, tmp_path, monkeypatch):
    """Each option sets the keyword that its row names (flags to the value it says), or none when it names none."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / SAMPLE_VALUES['--exclude-from']).write_text('*.iso\n')
    if options in ('SOURCE', 'DESTINATION'):
        program_options = parse_command_line(['/src', '/dst'], environment={}).program_options
        assert program_options[keyword] == {'SOURCE': '/src', 'DESTINATION': '/dst'}[options]
        return
    for option in table_options(options):
        name = SHORT_TO_LONG.get(option, option)
        argument = '%s=%s' % (name, SAMPLE_VALUES[name]) if name + '=' in ['--' + o for o in LONG_OPTIONS] \
            else option
        arguments = COMPANIONS.get(name, []) + [argument] + ([] if name in CONFIG_OPTIONS else ['/dst'])
        program_options = parse_command_line(arguments, environment={}).program_options
        if keyword is None:
            assert set(program_options) <= {'destination'}, option
        else:
            assert keyword in program_options, option
            if isinstance(program_options[keyword], bool):
                # A row of two opposite flags says which gives which value: "False (--no-x); True (--x)".
                assert value.startswith(str(program_options[keyword])) \
                    or '%s (%s' % (program_options[keyword], name) in value, option


def test_help_shows_the_option_table():
    """help(RsyncSystemBackup) ends the class's description with the table."""
    text = pydoc.render_doc(RsyncSystemBackup, renderer=pydoc.plaintext)
    table = format_option_table()
    shown = '\n'.join(' |  ' + line for line in table.splitlines())
    assert shown in text
    assert text.index('Make a full system backup') < text.index(shown) < text.index('Method resolution order')
    for options, keyword, _ in OPTION_KEYWORDS:
        assert (keyword or '(none)') in table and options.split(', ')[0] in table


INSTALLED_PROGRAM = '/opt/rsync-system-backup/bin/rsync-system-backup'
"""Where README.rst and docs/installation.rst install the command."""


def test_examples_run_the_installed_program():
    """Every example that names the command by its pathname names the one that the installation instructions make."""
    texts = [os.path.join(ROOT, 'README.rst')]
    for directory, _, names in os.walk(DOCS):
        if '_build' not in directory:
            texts.extend(os.path.join(directory, name) for name in names if not name.endswith('.py'))
    found = 0
    for text in texts:
        with open(text, encoding='utf-8') as handle:
            for pathname in re.findall(r'(?<![\w/.-])/[\w./-]*/bin/rsync-system-backup(?![\w.-])', handle.read()):
                if not pathname.startswith('/path/to/'):
                    assert pathname == INSTALLED_PROGRAM, (text, pathname)
                    found += 1
    assert found > 10
