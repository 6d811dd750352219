#!/usr/bin/env bash
# Run the test suite that rsync-system-backup 1.1 ships in its wheel against the
# rsync-system-backup installed for PYTHON. The wheel is fetched from the
# package index at test time (its hash is checked); nothing of 1.1 is kept.
#
# Usage: original_suite.sh PYTHON [PYTEST_ARGUMENTS...]
#
# Two of 1.1's tests back up the whole root filesystem into
# /some/random/directory when the platform check ignores a `uname` on $PATH or
# execute() doesn't call execute_helper(). So the suite runs in a private mount
# namespace with a 64 MiB tmpfs on /some, where such a backup fails at once
# instead of copying the disk. Exit code: pytest's.
set -euo pipefail

python="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # absolute: the suite runs elsewhere
shift
work=$(mktemp -d /tmp/rsync-system-backup-1.1-suite.XXXXXX)
created_guard=0
cleanup() {
    if [ "$created_guard" = 1 ]; then rmdir /some 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo 'rsync-system-backup==1.1 --hash=sha256:96727367725f81f5cb23c46ec0ceae113753afe243fdd80e3d3db47704339ff9' \
    > "$work/requirements.txt"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --require-hashes \
    -r "$work/requirements.txt" -d "$work/wheel"
mkdir "$work/run"
"$python" - "$work/wheel"/rsync_system_backup-1.1-*.whl "$work/run/test_original.py" <<'PYTHON'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as wheel:
    data = wheel.read('rsync_system_backup/tests.py')
with open(sys.argv[2], 'wb') as handle:
    handle.write(data)
PYTHON

printf '[pytest]\naddopts = -p no:cacheprovider -rs\n' > "$work/run/pytest.ini"
# 1.1's suite calls skipTest("... %s ...", MOUNT_POINT), which unittest's
# skipTest() doesn't take: let those calls skip as their author meant.
cat > "$work/run/conftest.py" <<'PYTHON'
import unittest

import humanfriendly.testing


def skip_with_arguments(self, text, *arguments):
    raise unittest.SkipTest(text % arguments if arguments else text)


humanfriendly.testing.TestCase.skipTest = skip_with_arguments
PYTHON

cd "$work/run"
if [ ! -e /some ]; then
    mkdir /some
    created_guard=1
fi
unshare --mount --propagation private -- sh -c 'mount -t tmpfs -o size=64m guard /some && exec "$@"' \
    guard timeout --kill-after=30 600 "$python" -m pytest test_original.py "$@"
