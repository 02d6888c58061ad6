#!/usr/bin/env bash
# Runs the whole test suite (tests/ and the doctests in src/bastion).
# pytest exits 5 when it collected no tests; that is a broken test set-up, never a pass,
# so it is reported as such and turned into a failure on purpose.
set -u
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; the suite is misconfigured, failing on purpose." >&2
  exit 1
fi
exit "$rc"
