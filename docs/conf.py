"""
Sphinx configuration of the rsync-system-backup documentation.

Build it with ``sphinx-build -W -b html docs docs/_build`` (no network is
needed). Three small directives keep the documentation in step with the code:

``.. usage-text::``
    The usage text of ``rsync-system-backup --help``, taken from
    :data:`rsync_system_backup.usage.USAGE_TEXT` at build time.

``.. package-modules:: PACKAGE``
    An ``automodule`` section for every module and subpackage of the package, found at
    build time, so a new module can't be left out of the API reference.

``.. option-keywords::``
    The table of the command line's options and the keyword arguments of
    ``RsyncSystemBackup`` they set, from
    :data:`rsync_system_backup.option_keywords.OPTION_KEYWORDS` (the class's
    docstring ends with the same table).
"""

import importlib
import os
import pkgutil
import sys

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# property-manager adds usage notes to the docstrings of properties while
# Sphinx runs; they refer to Python's documentation (:keyword:`del`), which
# can't be resolved without network access, so they are left out.
os.environ['PROPERTY_MANAGER_USAGE_NOTES'] = 'false'

from rsync_system_backup import __version__  # noqa: E402
from rsync_system_backup.option_keywords import format_option_table  # noqa: E402
from rsync_system_backup.usage import USAGE_TEXT  # noqa: E402

project = 'rsync-system-backup'
author = 'The rsync-system-backup developers'
copyright = '2026, %s' % author
version = release = __version__

extensions = ['sphinx.ext.autodoc', 'sphinx.ext.viewcode']
root_doc = 'index'
exclude_patterns = ['_build']
autodoc_member_order = 'bysource'
html_theme = 'alabaster'
# Typographic quotes and ellipses, but no dashes: '--backup' in the table of
# .. option-keywords:: (and in help()) must not become an en dash.
smartquotes_action = 'qe'


class UsageText(SphinxDirective):

    """Show the usage text of ``rsync-system-backup --help`` as a literal block."""

    def run(self):
        """Build the literal block."""
        return [nodes.literal_block(USAGE_TEXT, USAGE_TEXT, language='none')]


class PackageModules(SphinxDirective):

    """Document every public module of a package, each in a section of its own."""

    required_arguments = 1

    def run(self):
        """Generate the ``automodule`` sections and parse them in place."""
        package = importlib.import_module(self.arguments[0])
        lines = []
        prefix = package.__name__ + '.'
        for info in sorted(pkgutil.walk_packages(package.__path__, prefix), key=lambda info: info.name):
            name = info.name
            if any(part.startswith('_') for part in name.split('.')):
                continue
            title = ':mod:`%s`' % name
            lines.extend([title, '-' * len(title), '', '.. automodule:: %s' % name, '   :members:', ''])
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source='package-modules'), container)
        return container.children


class OptionKeywords(SphinxDirective):

    """Show the table of the command line's options and their keyword arguments."""

    def run(self):
        """Parse the table in place."""
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(format_option_table().splitlines(), source='option-keywords'),
                                 container)
        return container.children


def setup(app):
    """Register the directives."""
    app.add_directive('usage-text', UsageText)
    app.add_directive('package-modules', PackageModules)
    app.add_directive('option-keywords', OptionKeywords)
