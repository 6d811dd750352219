"""
The configuration file of ``--config=FILE``: a machine's backup jobs, their hooks and their monitoring, in TOML.

Each job is a table ``[jobs.NAME]`` whose keys are the long options of the
command line (and the keys of the hooks and the monitoring), inheriting
from a table ``[defaults]``. The file is read with its line numbers
(:mod:`.config.toml_file`), its keys are checked (:mod:`.config.keys`), each
job is resolved (:mod:`.config.jobs`) and turned into the command line that
would run it (:mod:`.config.arguments`), so that every value meets the
command line's checks; :mod:`.config.loading` does all of that and the checks
between jobs, before any job runs. :mod:`.config.report` prints the result
for ``--check-config``; :mod:`.config.runner` runs the jobs with their hooks
(:mod:`.config.hooks`) and gives each job's outcome
(:mod:`.config.outcomes`).
"""
