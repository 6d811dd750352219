"""
Rotation schemes: checking them and changing them one frequency at a time.

A rotation scheme maps frequencies (:data:`FREQUENCIES`) to how many
snapshots of that frequency to keep: a positive count, or ``'always'`` to keep
one per period forever. The command line's ``--hourly=N`` style options
change the frequencies they name in :data:`.DEFAULT_ROTATION_SCHEME` and leave
the others alone; a count of 0 takes a frequency out of the scheme.

This module imports nothing heavy, so the command line can check its options
before it loads the libraries a backup needs.
"""

from rsync_system_backup.exceptions import InvalidOptionError

FREQUENCIES = ('minutely', 'hourly', 'daily', 'weekly', 'monthly', 'yearly')
"""The frequencies that rotate-backups knows, shortest first."""

KEEP_ALWAYS = 'always'
"""The retention value that keeps one snapshot of every period forever."""

INVALID_COUNT = "Invalid number of %s snapshots %r: give a whole number (0 or more) or 'always'."
"""The message for a count that rotation can't use (with the frequency and the count)."""


def parse_retention(frequency, value):
    """
    Turn the text given for a frequency into a retention value.

    :param frequency: One of :data:`FREQUENCIES` (used in the message).
    :param value: The text: a whole number of at least 0, or ``always``
                  (in any case).
    :returns: An integer or :data:`KEEP_ALWAYS`.
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    text = value.strip()
    if text.lower() == KEEP_ALWAYS:
        return KEEP_ALWAYS
    if text.isdigit() and text.isascii():
        return int(text)
    raise InvalidOptionError(INVALID_COUNT % (frequency, value))


def check_rotation_scheme(scheme):
    """
    Check a rotation scheme and leave out the frequencies whose count is 0.

    rotate-backups would keep *every* snapshot of a frequency whose count is
    0, which is the opposite of what 0 says; here it keeps none.

    :param scheme: A :class:`dict` from frequencies to counts (integers of
                   at least 0) or :data:`KEEP_ALWAYS`.
    :returns: A new :class:`dict` without the frequencies whose count is 0.
    :raises: :exc:`.InvalidOptionError` for an unknown frequency, a
             count that isn't a whole number of at least 0, or a scheme that
             keeps nothing.
    """
    checked = {}
    for frequency, count in scheme.items():
        if frequency not in FREQUENCIES:
            raise InvalidOptionError("Unknown rotation frequency %r: use %s." % (frequency, ', '.join(FREQUENCIES)))
        if count != KEEP_ALWAYS and not (isinstance(count, int) and not isinstance(count, bool) and count >= 0):
            raise InvalidOptionError(INVALID_COUNT % (frequency, count))
        if count != 0:
            checked[frequency] = count
    if not checked:
        raise InvalidOptionError("The rotation scheme keeps no snapshots at all: give at least one frequency "
                                 "a count above 0 (or 'always').")
    return checked


def override_rotation_scheme(scheme, overrides):
    """
    Change some frequencies of a rotation scheme.

    :param scheme: The scheme to start from (a :class:`dict`; not changed).
    :param overrides: A :class:`dict` with the counts of the frequencies to
                      change (0 takes a frequency out).
    :returns: The new scheme, checked by :func:`check_rotation_scheme()`
              and ordered from the shortest frequency to the longest.
    :raises: :exc:`.InvalidOptionError` as :func:`check_rotation_scheme()` does.
    """
    merged = dict(scheme)
    merged.update(overrides)
    checked = check_rotation_scheme(merged)
    return dict((frequency, checked[frequency]) for frequency in FREQUENCIES if frequency in checked)
