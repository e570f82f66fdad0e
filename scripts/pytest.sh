#!/usr/bin/env bash
# Run pytest on a test directory. pytest's exit code 5 ("no tests collected") is a failure here:
# a layer that silently runs nothing must not pass.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
rc=0
"$VENV/bin/python" -m pytest "$@" || rc=$?
[ $rc -eq 5 ] && die "pytest collected no tests in: $*"
exit $rc
