#!/usr/bin/env bash
# Run two make targets at once: the second's output goes to a log printed whole when both have ended.
# make test runs `integration` beside `molecule`: integration keeps the cores about 93 % busy and molecule
# about 60 %, each mostly waiting on servers and on ansible-playbook, so together they end sooner than
# one after the other (docs/development.md has the measurements).
# Usage: scripts/side-by-side.sh FOREGROUND_TARGET BACKGROUND_TARGET
# shellcheck shell=bash source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
[ $# -eq 2 ] || die "usage: side-by-side.sh FOREGROUND_TARGET BACKGROUND_TARGET"
fg_target=$1 bg_target=$2
mkdir -p "$LOCAL_CACHE/logs"
log="$LOCAL_CACHE/logs/$bg_target.log"
say "make $bg_target runs beside make $fg_target; its output: $log (printed when both have ended)"
setsid make --no-print-directory "$bg_target" >"$log" 2>&1 &
bg=$!
# shellcheck disable=SC2317  # called through the traps
stop_bg() { kill -- "-$bg" 2>/dev/null || true; exit 130; }
trap stop_bg INT TERM
fglog="$LOCAL_CACHE/logs/$fg_target.log"
fg_rc=0
make --no-print-directory "$fg_target" 2>&1 | tee "$fglog" || fg_rc=$?
bg_rc=0
wait "$bg" || bg_rc=$?
trap - INT TERM
say "output of make $bg_target:"
cat "$log"
# The background log printed above pushes the foreground's failures out of a CI log's tail: repeat them last.
if [ "$fg_rc" -ne 0 ]; then
  say "make $fg_target FAILED (exit $fg_rc); the end of its output ($fglog):"
  tail -n 60 "$fglog"
  say "make $fg_target FAILED (exit $fg_rc)"
fi
[ "$bg_rc" -eq 0 ] || say "make $bg_target FAILED (exit $bg_rc)"
[ "$fg_rc" -eq 0 ] && [ "$bg_rc" -eq 0 ]
