#!/usr/bin/env bash
# Run a command with a Docker engine available: start dockerd when none answers, and stop it
# afterwards only if we started it.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -gt 0 ] || die "usage: with-dockerd.sh COMMAND [ARGS...]"
started=0
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || die "dockerd not found: run 'make setup' (installs docker.io)"
  [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and starting dockerd needs root"
  say "starting dockerd (log: $CACHE_HOME/dockerd.log)"
  dockerd --pidfile "$CACHE_HOME/dockerd.pid" >"$CACHE_HOME/dockerd.log" 2>&1 &
  pid=$!
  started=1
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "dockerd exited at start; see $CACHE_HOME/dockerd.log"
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 30 s; see $CACHE_HOME/dockerd.log"
fi

# shellcheck disable=SC2317  # called through the EXIT trap
stop() {
  if [ "$started" -eq 1 ]; then
    say "stopping the dockerd we started"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
}
trap stop EXIT
rc=0
"$@" || rc=$?
exit $rc
