"""
Reading a Prometheus metrics file back with prometheus_client's own text-format parser (the metrics file tests).
"""

from prometheus_client.parser import text_string_to_metric_families

SERIES = {
    'rsync_system_backup_last_run_timestamp_seconds': 'last_run',
    'rsync_system_backup_last_success_timestamp_seconds': 'last_success',
    'rsync_system_backup_exit_code': 'exit_code',
    'rsync_system_backup_duration_seconds': 'duration',
    'rsync_system_backup_transferred_bytes': 'transferred_bytes',
    'rsync_system_backup_snapshots': 'snapshots',
    'rsync_system_backup_free_bytes': 'free_bytes',
}
"""The series that the issue asks for, and the JobMetrics attribute of each."""


def parse_metrics(pathname):
    """
    Parse a metrics file with prometheus_client, and check what node_exporter needs.

    :returns: A dict from job names to dicts from JobMetrics attributes to values.
    """
    with open(str(pathname), encoding='utf-8') as handle:
        text = handle.read()
    assert text.endswith('\n')
    families = list(text_string_to_metric_families(text))
    names = [family.name for family in families]
    # node_exporter refuses a file that names a series twice (its samples must be together).
    assert len(names) == len(set(names)), names
    values = {}
    for family in families:
        assert family.name in SERIES, family.name
        assert family.type == 'gauge'
        assert family.documentation
        for sample in family.samples:
            assert sample.name == family.name
            assert list(sample.labels) == ['job']
            values.setdefault(sample.labels['job'], {})[SERIES[family.name]] = sample.value
    return values
