"""
Tests of the parallel link copy's program (``agent/link_copy.py``), run in this process.

``snapshots/parallel_copy.py`` runs it as a command of its own (see
``test_parallel_copy.py``); here its ``main()`` runs in the test's process,
which gets its working directory back afterwards, with a pipe for the
standard input that it watches.
"""

import io
import os
import threading
import time

import pytest

from rsync_system_backup.agent import link_copy
from rsync_system_backup.agent.link_copy import BATCH_BYTES, make_batches
from support.stand_ins import log_arguments, logged_calls, real_program, write_script
from support.trees import take_manifest, write_file


class WatchedInput(object):

    """A pipe for the program's standard input, open until :meth:`end()`."""

    def __init__(self):
        """Make the pipe."""
        reading, self.writing = os.pipe()
        self.stream = open(reading, 'rb')

    def end(self):
        """Close the writing end (once)."""
        if self.writing is not None:
            os.close(self.writing)
            self.writing = None

    def close(self):
        """Close both ends."""
        self.end()
        self.stream.close()


@pytest.fixture
def watched(tmp_path, monkeypatch):
    """A :class:`WatchedInput`; the test's working directory comes back afterwards."""
    monkeypatch.chdir(tmp_path)
    pipe = WatchedInput()
    yield pipe
    pipe.close()


def run_copy(stdin, latest, target, most=4):
    """Run the program in this process; give its exit code and messages."""
    stderr = io.StringIO()
    code = link_copy.main([str(latest), str(target), str(most), '0'], stdin, io.BytesIO(), stderr, None)
    return code, stderr.getvalue()


def make_latest(latest, directories=20):
    """Make a ``latest`` with directories at the top, files in them, a file and a symbolic link at the top."""
    for index in range(directories):
        write_file(latest / ('dir-%02i' % index) / 'file', b'%i' % index, mtime=1400000000 + index)
        os.chmod(str(latest / ('dir-%02i' % index)), 0o750)
        os.utime(str(latest / ('dir-%02i' % index)), (1300000000 + index, 1300000000 + index))
    write_file(latest / 'top file', b'top')
    os.symlink('dir-00', str(latest / 'link'))
    os.utime(str(latest), (1300000000, 1300000000))


def test_batches_are_cut_by_count_and_bytes():
    """No batch has more names than asked or more bytes than :data:`BATCH_BYTES`; every name comes once, in order."""
    names = [b'%04i' % index for index in range(100)]
    assert make_batches(names, 30) == [names[:30], names[30:60], names[60:90], names[90:]]
    long = [b'x' * 20000] * 7
    assert [len(batch) for batch in make_batches(long, 100)] == [3, 3, 1]
    assert all(sum(len(name) + 1 for name in batch) <= BATCH_BYTES for batch in make_batches(long, 100))
    assert make_batches([], 5) == []


def test_copy_with_several_cp(tmp_path, watched, fake_bin, monkeypatch):
    """The copy is what cp --archive --link makes, linked by more than one cp, and the directories' attributes."""
    latest = tmp_path / 'latest'
    make_latest(latest)
    log_arguments(fake_bin / 'cp', tmp_path / 'cp-calls', real_program('cp'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    assert run_copy(watched.stream, latest, tmp_path / 'copy') == (0, '')
    assert take_manifest(tmp_path / 'copy') == take_manifest(latest)
    assert os.lstat(str(tmp_path / 'copy' / 'dir-03' / 'file')).st_ino == os.lstat(
        str(latest / 'dir-03' / 'file')).st_ino
    assert len(logged_calls(tmp_path / 'cp-calls')) > 1


def test_one_cp_gets_one_batch(tmp_path, watched, fake_bin, monkeypatch):
    """Where only one cp may run, it gets every name at once: a small tree costs one process, not eight."""
    latest = tmp_path / 'latest'
    make_latest(latest)
    log_arguments(fake_bin / 'cp', tmp_path / 'cp-calls', real_program('cp'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    assert run_copy(watched.stream, latest, tmp_path / 'copy', most=1) == (0, '')
    assert take_manifest(tmp_path / 'copy') == take_manifest(latest)
    assert len(logged_calls(tmp_path / 'cp-calls')) == 1


def test_end_of_input_stops_every_cp(tmp_path, watched, fake_bin, monkeypatch):
    """When the standard input ends the copy fails at once, and no cp outlives it; other input goes unheeded."""
    latest = tmp_path / 'latest'
    make_latest(latest)
    write_script(fake_bin / 'cp', 'echo $$ >> %s\nexec sleep 60\n' % (tmp_path / 'pids'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    os.write(watched.writing, b'anything but the end')

    def end_when_cp_runs():
        while not (tmp_path / 'pids').exists():
            time.sleep(0.05)
        watched.end()
    ender = threading.Thread(target=end_when_cp_runs)
    ender.start()
    started = time.monotonic()
    try:
        assert run_copy(watched.stream, latest, tmp_path / 'copy') == (1, '')
    finally:
        ender.join()
    assert time.monotonic() - started < 30
    for pid in (tmp_path / 'pids').read_text().split():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_failed_cp_starts_no_more(tmp_path, watched, fake_bin, monkeypatch):
    """After a cp fails no more batches start, and the copy fails."""
    latest = tmp_path / 'latest'
    make_latest(latest, directories=200)
    write_script(fake_bin / 'cp', 'echo call >> %s\nexit 1\n' % (tmp_path / 'calls'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    assert run_copy(watched.stream, latest, tmp_path / 'copy', most=1) == (1, '')
    assert (tmp_path / 'calls').read_text() == 'call\n'


def test_existing_target(tmp_path, watched):
    """A target that exists fails the copy with one message and stays as it was."""
    write_file(tmp_path / 'latest' / 'file', b'')
    write_file(tmp_path / 'copy' / 'mine', b'mine')
    code, message = run_copy(watched.stream, tmp_path / 'latest', tmp_path / 'copy')
    assert (code, message) == (1, "Failed to copy %s to %s: [Errno 17] File exists: '%s'\n"
                               % (tmp_path / 'latest', tmp_path / 'copy', tmp_path / 'copy'))
    assert os.listdir(str(tmp_path / 'copy')) == ['mine']
