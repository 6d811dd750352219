"""
Tests of loading a configuration file (``config/loading.py`` with ``toml_file.py``, ``jobs.py``, ``keys.py``,
``arguments.py`` and ``report.py``; issue 24): ``--check-config``, and every refusal before any job runs.

Each bad file is refused with one line per problem that names the file,
the line and the key, and the fix; a normal ``--config`` run refuses the
same file before its first job writes anything.
"""

import os
import pwd
import textwrap
from pathlib import Path

import pytest

from rsync_system_backup.config.toml_file import find_lines
from rsync_system_backup.transfer.command import DEFAULT_EXCLUDED_ROOTS
from support.config_files import toml_string, write_config
from support.trees import list_names


@pytest.fixture
def places(tmp_path):
    """The directories a test's jobs name (their sets are created by nothing but a job that runs)."""
    source = tmp_path / 'source'
    source.mkdir()
    (source / 'file').write_text('data')
    return dict(source=toml_string(source), first=toml_string(tmp_path / 'first' / 'latest'),
                second=toml_string(tmp_path / 'second' / 'latest'), root=tmp_path)


def test_check_config_shows_each_job(run_cli, tmp_path, places):
    """--check-config shows each job's keys (inherited ones marked), the hook timeout and the command line; exit 0."""
    excludes = tmp_path / 'excludes'
    excludes.write_text('*.iso\n')
    config = write_config(tmp_path / 'backup.toml', """
        [defaults]
        exclude = ["*.tmp"]
        ionice = "idle"

        [jobs.home]
        source = {source}
        destination = {first}
        exclude-from = {excludes}
        daily = 30
        yearly = "always"
        manifest = false
        before = "echo hello"

        [jobs.server]
        destination = {second}
        rotate = false
        no-sudo = true
        ping-url = "https://hc-ping.com/5f1a"
        metrics-file = "/var/lib/node_exporter/backups.prom"
    """.format(excludes=toml_string(excludes), **places))
    result = run_cli('--config=%s' % config, '--check-config')
    assert result.returncode == 0, result
    assert result.stderr == ''
    assert result.stdout == """\
# {config}: no problems found; 2 jobs.

[jobs.home]
source = "{source}"
destination = "{first}"
daily = 30
yearly = "always"
ionice = "idle"  # from [defaults]
exclude = ["*.tmp"]  # from [defaults]
exclude-from = "{excludes}"
manifest = false
before = "echo hello"
hook-timeout = 3600  # the default
# runs: rsync-system-backup --daily=30 --yearly=always --ionice=idle '--exclude=*.tmp' --exclude-from={excludes} \
--no-manifest -- {source} {first}

[jobs.server]
destination = "{second}"
rotate = false
ionice = "idle"  # from [defaults]
no-sudo = true
exclude = ["*.tmp"]  # from [defaults]
ping-url = "https://hc-ping.com/5f1a"
metrics-file = "/var/lib/node_exporter/backups.prom"
# runs: rsync-system-backup --ionice=idle --no-sudo '--exclude=*.tmp' --backup --snapshot -- {second}
""".format(config=config, excludes=excludes, source=places['source'].strip('"'), first=places['first'].strip('"'),
           second=places['second'].strip('"'))
    assert list_names(tmp_path) == ['backup.toml', 'excludes', 'fake-bin', 'source']
    only_one = run_cli('--config=%s' % config, '--check-config', '--job=server')
    assert only_one.returncode == 0, only_one
    assert '[jobs.home]' not in only_one.stdout and '[jobs.server]' in only_one.stdout
    assert only_one.stdout.startswith('# %s: no problems found; 1 job.\n' % config)


def test_unknown_key_names_its_line(run_cli, tmp_path, places):
    """The brief's example: a misspelt key is refused with its line and the key it means; no job runs."""
    config = write_config(tmp_path / 'config.toml', """
        [jobs.system]
        source = {source}
        destination = {first}

        [jobs.home]
        source = {source}
        destination = {second}
        hourlly = 12
    """.format(**places))
    expected = ("Error: %s line 8: unknown key 'hourlly' in [jobs.home]; did you mean 'hourly'?\n" % config)
    for arguments in (['--check-config'], []):
        result = run_cli('--config=%s' % config, '--disable-notifications', *arguments)
        assert result.returncode == 1, result
        assert result.stderr == expected
        assert result.stdout == ''
        assert not (tmp_path / 'first').exists(), "the first job must not run"


@pytest.mark.parametrize('body, problem', [
    ('hourly = true', "line 4: hourly in [jobs.home] is true (a boolean): give a whole number of snapshots or "
                      "\"always\"."),
    ('exclude = [1, 2]', "line 4: exclude in [jobs.home] is an array with other things than strings: give a string "
                         "or an array of strings."),
    ('no-sudo = "yes"', "line 4: no-sudo in [jobs.home] is 'yes' (a string): give true or false."),
    ('before = []', "line 4: before in [jobs.home] is an array: give a command: a string (run with bash -c) or an "
                    "array of the program and its arguments."),
    ('hook-timeout = "1h"', "line 4: hook-timeout in [jobs.home] is '1h' (a string): give a number of seconds."),
    ('ionice = "sometimes"', "line 4: ionice in [jobs.home]: Invalid --ionice class 'sometimes': use idle, "
                             "best-effort or realtime."),
    ('daily = -1', "line 4: daily in [jobs.home]: Invalid --daily value '-1': give a number of snapshots (0 or more) "
                   "or 'always'."),
    ('snapshot-method = "zfs"', "line 4: snapshot-method in [jobs.home]: Unknown snapshot method 'zfs'"),
    ('tunnel = "-oProxyCommand=x"', "line 4: tunnel in [jobs.home]: The tunnel '-oProxyCommand=x' names the host "
                                    "'-oProxyCommand=x', which starts with '-'"),
    ('exclude = ["a\\nb"]', "line 4: exclude in [jobs.home]: The exclude pattern 'a\\nb' contains a line break"),
    ('exclude-from = "/nonexistent/excludes"', "line 4: exclude-from in [jobs.home]: Can't read the exclude file "
                                               "/nonexistent/excludes (--exclude-from): No such file or directory."),
    ('mount = "mnt/backups"', "line 4: mount in [jobs.home]: 'mnt/backups' is a relative path: give an absolute one "
                              "(a job doesn't run in the directory of the file)."),
    ('hook-timeout = 0', "line 4: hook-timeout in [jobs.home]: give a number of seconds more than 0."),
    ('after = "  "', "line 4: after in [jobs.home]: the command is empty: give one, or leave the key out."),
    ('ping-url = "hc-ping.com/abc"', "line 4: ping-url in [jobs.home]: The ping URL must start with http:// or "
                                     "https:// (it has no scheme): give the whole address that the monitoring "
                                     "service shows, such as https://hc-ping.com/UUID."),
    ('metrics-file = "/var/lib/backups.txt"', "line 4: metrics-file in [jobs.home]: The metrics file "
                                              "/var/lib/backups.txt doesn't end in NAME.prom, so node_exporter's "
                                              "textfile collector would never read it: name it like "
                                              "/var/lib/prometheus/node-exporter/rsync-system-backup.prom."),
    ('dry-run = true', "line 4: unknown key 'dry-run' in [jobs.home]; --dry-run says how to run the jobs: give it on "
                       "the command line, with --config."),
    ('no-manifest = true', "line 4: unknown key 'no-manifest' in [jobs.home]; write manifest = false."),
    ('keep = "x"', "line 4: unknown key 'keep' in [jobs.home]; --keep is not a setting of a job "
                   "(docs/configuration.rst lists the keys)."),
    ('backup = false\nsnapshot = false\nrotate = false',
     "line 1: [jobs.home] turns off backup, snapshot and rotate: turn on at least one step."),
    ('daily = = 3', "Invalid value (at line 4, column 9): fix the TOML syntax there (docs/configuration.rst shows "
                    "examples)."),
])
def test_bad_values_are_refused_before_any_job_runs(run_cli, tmp_path, places, body, problem):
    """Wrong types, values the command line refuses, keys that aren't a job's, TOML errors: one line each, no run."""
    config = write_config(tmp_path / 'config.toml', '[jobs.home]\nsource = %s\ndestination = %s\n%s\n'
                          % (places['source'], places['first'], body))
    for arguments in (['--check-config'], []):
        result = run_cli('--config=%s' % config, '--disable-notifications', *arguments)
        assert result.returncode == 1, result
        separator = ': ' if problem.startswith('Invalid value') else ' '
        assert result.stderr.startswith('Error: %s%s%s' % (config, separator, problem)), result
        assert len(result.stderr.splitlines()) == 1, result
        assert not (tmp_path / 'first').exists()


def test_every_problem_is_named_once(run_cli, tmp_path, places):
    """Problems of several jobs are all listed; a wrong key of [defaults] is named once, at its own line."""
    config = write_config(tmp_path / 'config.toml', """
        [defaults]
        ionice = "never"

        [jobs.one]
        source = {source}
        destination = {first}

        [jobs.two]
        source = {source}

        [jobs.three]
        destination = {first}

        [jobs."no good"]
        destination = "/backups/four/latest"

        [servers]
        x = 1
    """.format(**places))
    result = run_cli('--config=%s' % config, '--check-config')
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [
        "Error: %s line 17: unknown table or key 'servers'; the file holds a [defaults] table and a [jobs.NAME] "
        "table per job." % config,
        "Error: %s line 8: [jobs.two] has no destination: add destination = \"/mnt/backups/two/latest\" (the "
        "directory that receives the backup)." % config,
        "Error: %s line 14: the job name 'no good' doesn't fit: use letters, digits, '_' and '-', starting with a "
        "letter or a digit (at most 64 characters)." % config,
        "Error: %s line 2: ionice in [defaults]: Invalid --ionice class 'never': use idle, best-effort or "
        "realtime." % config,
        "Error: %s line 12: [jobs.three] writes the backup set %s, as [jobs.one] does (%s line 6): give each job a "
        "set of its own, such as %s/three/latest (their snapshots and rotations would mix)."
        % (config, places['root'] / 'first', config, places['root'] / 'first'),
    ]


def test_two_jobs_writing_one_set(run_cli, tmp_path, places):
    """Destinations in one set directory (written differently) and one SSH set under two spellings are refused."""
    config = write_config(tmp_path / 'config.toml', """
        [jobs.a]
        destination = {first}

        [jobs.b]
        destination = "{root}/first/./other/"

        [jobs.c]
        destination = "root@Server:/backups/latest"

        [jobs.d]
        destination = "server:/backups//other"

        [jobs.e]
        destination = "server::module/latest"
    """.format(**places))
    result = run_cli('--config=%s' % config, '--check-config')
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result
    assert lines[0].startswith("Error: %s line 5: [jobs.b] writes the backup set %s, as [jobs.a] does (%s line 2)"
                               % (config, places['root'] / 'first', config))
    assert lines[1].startswith("Error: %s line 11: [jobs.d] writes the backup set /backups, as [jobs.c] does (%s "
                               "line 8)" % (config, config))


def test_files_others_may_change_are_refused(run_cli, tmp_path, places):
    """A file that another user owns or may write to is refused: its hooks would run as root."""
    config = write_config(tmp_path / 'config.toml', '[jobs.a]\ndestination = %s\n' % places['first'])
    config.chmod(0o666)
    result = run_cli('--config=%s' % config, '--check-config')
    assert result.returncode == 1, result
    assert result.stderr == ("Error: The configuration file %s can be changed by other users (mode 0666), who could "
                             "run commands as this user through its hooks: chmod go-w %s.\n" % (config, config))
    config.chmod(0o644)
    nobody = pwd.getpwnam('nobody').pw_uid
    os.chown(str(config), nobody, 0)
    result = run_cli('--config=%s' % config)
    assert result.returncode == 1, result
    assert result.stderr == ("Error: The configuration file %s belongs to the user %i, who could run commands as "
                             "this user through its hooks: give it to root (chown root %s).\n"
                             % (config, nobody, config))
    missing = run_cli('--config=%s' % (tmp_path / 'missing.toml'))
    assert missing.returncode == 1, missing
    assert missing.stderr == ("Error: Can't read the configuration file %s: No such file or directory.\n"
                              % (tmp_path / 'missing.toml'))
    assert not (tmp_path / 'first').exists()


@pytest.mark.parametrize('text, message', [
    ('', "Error: {config}: there are no jobs: add a table [jobs.NAME] with at least a destination (see "
         "docs/configuration.rst).\n"),
    ('[jobs]\nhome = "/backups"\n', "Error: {config} line 2: jobs.home is '/backups' (a string), not a table: write "
                                    "the job as a table [jobs.home].\n"),
    (b'[jobs.a]\ndestination = "/b\xe9/latest"\n', "Error: {config} line 2: the file is not UTF-8 text, which TOML "
                                                   "requires: save it as UTF-8.\n"),
])
def test_files_without_jobs(run_cli, tmp_path, text, message):
    """An empty file, a job that isn't a table, a file that isn't UTF-8."""
    config = tmp_path / 'config.toml'
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = run_cli('--config=%s' % config, '--check-config')
    assert result.returncode == 1, result
    assert result.stderr == message.format(config=config)


@pytest.mark.parametrize('arguments, message', [
    (['-x', '*.iso'], "Error: --exclude shapes a backup, so it doesn't go with --config: set exclude in the jobs' "
                      "tables of {config} (or in [defaults]) instead.\n"),
    (['--no-manifest'], "Error: --no-manifest shapes a backup, so it doesn't go with --config: set manifest in the "
                        "jobs' tables of {config} (or in [defaults]) instead.\n"),
    (['-b'], "Error: --backup shapes a backup, so it doesn't go with --config: set backup in the jobs' tables of "
             "{config} (or in [defaults]) instead.\n"),
    (['/backups/latest'], "Error: --config=FILE takes no SOURCE or DESTINATION (got '/backups/latest'): the jobs in "
                          "FILE name them.\n"),
    (['--diff=2024-05-01_03-00-00'], "Error: --diff works on one backup set, so it doesn't go with --config: give "
                                     "that set's DESTINATION instead.\n"),
    (['--json'], "Error: --json only goes with --list.\n"),
    (['--list', '--json'], "Error: --json with --config lists one job's backup set: add --job=NAME.\n"),
    (['--job=nothing'], "Error: --job=nothing: {config} has no job nothing; its jobs are a, b.\n"),
])
def test_command_line_with_config(run_cli, tmp_path, places, arguments, message):
    """With --config the command line takes only the options that say how to run the jobs."""
    config = write_config(tmp_path / 'config.toml', '[jobs.a]\ndestination = %s\n[jobs.b]\ndestination = %s\n'
                          % (places['first'], places['second']))
    result = run_cli('--config=%s' % config, *arguments)
    assert result.returncode == 1, result
    assert result.stderr == message.format(config=config)
    assert not (tmp_path / 'first').exists()


@pytest.mark.parametrize('arguments, message', [
    (['--job=home', '/backups/latest'], "Error: --job needs --config=FILE, the file that defines the jobs.\n"),
    (['--check-config'], "Error: --check-config needs --config=FILE, the file that defines the jobs.\n"),
])
def test_config_options_need_a_file(run_cli, arguments, message):
    """--job and --check-config without --config are usage errors."""
    result = run_cli(*arguments)
    assert result.returncode == 1, result
    assert result.stderr == message


def test_show_excludes_of_each_job(run_cli, tmp_path, places):
    """--show-excludes with --config shows each job's excludes after a comment line that names it."""
    excludes = tmp_path / 'excludes'
    excludes.write_text('b\n')
    config = write_config(tmp_path / 'config.toml', """
        [defaults]
        exclude = ["a"]

        [jobs.one]
        source = {source}
        destination = {first}
        exclude-from = {excludes}

        [jobs.two]
        source = {source}
        destination = {second}
    """.format(excludes=toml_string(excludes), **places))
    result = run_cli('--config=%s' % config, '--show-excludes')
    assert result.returncode == 0, result
    defaults = list(DEFAULT_EXCLUDED_ROOTS)
    assert result.stdout.splitlines() == ['# [jobs.one]'] + defaults + ['a', 'b'] + ['# [jobs.two]'] + defaults + ['a']
    assert list_names(tmp_path) == ['config.toml', 'excludes', 'fake-bin', 'source']


def test_lines_of_tables_and_keys():
    """The scan finds headers and keys past multi-line strings and arrays, with quoted and dotted keys."""
    text = '\n'.join([
        '# comment',                       # 1
        '[defaults]',                      # 2
        'exclude = [',                     # 3
        '  "a]", # ] [',                   # 4
        "  'b[',",                         # 5
        ']',                               # 6
        'before = """',                    # 7
        '[jobs.fake]',                     # 8
        'x = 1 \\"""',                     # 9
        '"""',                             # 10
        '[jobs."my-server"]  # a job',     # 11
        '"quoted key" = 1',                # 12
        'ping.url = "x"',                  # 13
        "after = '''it's'''",              # 14
        'on-error = """ a """"',           # 15
        'hook-timeout = 5',                # 16
    ])
    assert find_lines(text) == {
        ('defaults',): 2, ('defaults', 'exclude'): 3, ('defaults', 'before'): 7, ('jobs', 'my-server'): 11,
        ('jobs', 'my-server', 'quoted key'): 12,
        ('jobs', 'my-server', 'ping'): 13, ('jobs', 'my-server', 'ping', 'url'): 13,
        ('jobs', 'my-server', 'after'): 14, ('jobs', 'my-server', 'on-error'): 15,
        ('jobs', 'my-server', 'hook-timeout'): 16,
    }


def test_example_of_the_documentation(run_cli, tmp_path):
    """The example file of docs/configuration.rst passes the check, with the output that the page shows."""
    page = (Path(__file__).parent.parent / 'docs' / 'configuration.rst').read_text()
    example = page[page.index('.. code-block:: toml\n'):page.index('The ``system`` job')].split('\n', 2)[2]
    config = write_config(tmp_path / 'config.toml', example)
    shown = page[page.index('   $ rsync-system-backup --config=/etc/rsync-system-backup.toml --check-config --job'):]
    shown = shown[:shown.index('\n\n', shown.index('# runs:'))].split('\n', 1)[1]
    result = run_cli('--config=%s' % config, '--check-config', '--job=database')
    assert result.returncode == 0, result
    expected = textwrap.dedent(shown).replace('/etc/rsync-system-backup.toml', str(config)) + '\n'
    assert result.stdout == expected
    assert 'rsync-system-backup --daily=14 --weekly=8 --mount=/mnt/backups --crypto=backup-disk --ionice=idle' in \
        run_cli('--config=%s' % config, '--check-config', '--job=system').stdout
