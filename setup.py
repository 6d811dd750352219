#!/usr/bin/env python
"""Setup script for the `rsync-system-backup` package."""

import os
import re

from setuptools import find_packages, setup


def get_contents(*parts):
    """Read a file in this directory."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), *parts)) as handle:
        return handle.read()


def get_version():
    """Find the version number in the package."""
    return re.search(r"^__version__ = '(.+)'", get_contents('rsync_system_backup', '__init__.py'), re.M).group(1)


def get_requirements(filename):
    """Read the requirement lines of a requirements file."""
    return [line.strip() for line in get_contents(filename).splitlines() if line.strip() and not line.startswith('#')]


setup(
    name='rsync-system-backup',
    version=get_version(),
    description="Linux system backups with rsync, snapshots that never change, and rotation",
    long_description=get_contents('README.rst'),
    long_description_content_type='text/x-rst',
    license='MIT',
    packages=find_packages(exclude=['tests', 'tests.*', 'benchmarks']),
    install_requires=get_requirements('requirements.txt'),
    extras_require={'tests': get_requirements('requirements-tests.txt')},
    python_requires='>=3.9',
    entry_points={'console_scripts': ['rsync-system-backup = rsync_system_backup.cli:main']},
    classifiers=[
        'Environment :: Console',
        'Intended Audience :: System Administrators',
        'Operating System :: POSIX :: Linux',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.9',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
        'Topic :: System :: Archiving :: Backup',
    ],
)
