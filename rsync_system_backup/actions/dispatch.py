"""
Running the action that the command line asks for: a read-only one, or keeping and releasing snapshots.

:func:`run_action()` gives the action's exit code or raises; :func:`.cli.exit_code_of()`
reports an error and turns it into an exit code, as it does for a backup.
"""


def perform(backup_set, action, value, show_progress=False):
    """
    Run one action on an open backup set.

    :param backup_set: A :class:`.BackupSet`.
    :param action: ``--list``, ``--verify``, ``--verify-all``, ``--diff``,
                   ``--max-age``, ``--keep`` or ``--release``.
    :param value: The action's value: ``json`` (a boolean) for ``--list``,
                  the old and the new snapshot for ``--diff``, seconds for
                  ``--max-age``, the name and the snapshot for ``--keep``,
                  the name for ``--release``.
    :param show_progress: :data:`True` to show progress on standard error (``--verify``).
    :returns: The exit code (an integer).
    """
    if action == '--list':
        from rsync_system_backup.actions.listing import list_snapshots
        return list_snapshots(backup_set, as_json=value)
    if action in ('--verify', '--verify-all'):
        from rsync_system_backup.actions.verify import verify_snapshots
        return verify_snapshots(backup_set, every=(action == '--verify-all'), show_progress=show_progress)
    if action == '--diff':
        from rsync_system_backup.actions.diff import diff_snapshots
        return diff_snapshots(backup_set, value)
    if action in ('--keep', '--release'):
        from rsync_system_backup.actions.keeping import change_kept
        return change_kept(backup_set, action, value)
    from rsync_system_backup.actions.max_age import check_max_age
    return check_max_age(backup_set, value)


def run_action(action, value, program_options, show_progress=False):
    """
    Open the destination's backup set, run an action on it and give the exit code.

    :param action: See :func:`perform()`.
    :param value: See :func:`perform()`.
    :param program_options: Keyword arguments for :class:`.RsyncSystemBackup` (the destination and options).
    :param show_progress: See :func:`perform()`.
    :returns: The action's exit code.
    :raises: :exc:`.RsyncSystemBackupError` for a known problem, and
             :exc:`.Interrupted` when a signal stops the action.
    """
    from rsync_system_backup import RsyncSystemBackup
    from rsync_system_backup.actions.set_view import open_backup_set
    from rsync_system_backup.processes.command_failures import explain_failures
    from rsync_system_backup.processes.signals import stop_on_signals
    with stop_on_signals(), explain_failures():
        program = RsyncSystemBackup(**program_options)
        program.ensure_supported_platform()
        with open_backup_set(program, action) as backup_set:
            return perform(backup_set, action, value, show_progress)
