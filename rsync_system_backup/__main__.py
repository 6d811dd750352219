"""Run the command line interface with ``python -m rsync_system_backup``."""

from rsync_system_backup.cli import main

if __name__ == '__main__':
    main()
