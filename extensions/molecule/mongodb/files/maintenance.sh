#!/bin/sh
# dualboot_freeze_command / dualboot_thaw_command of the mongodb scenario: maintenance mode for the
# database of DUALBOOT_ENTRY. "on" raises the flag and waits until the writer (if it runs on this host)
# confirms that it no longer writes there; "off" lowers it.
set -eu
db="profiles_${DUALBOOT_ENTRY}"
case "$1" in
  on)
    rm -f "/run/demo-drained-$db"
    touch "/run/demo-frozen-$db"
    # Only a host whose writer runs has to drain (the container's PID 1 does not reap: a finished writer
    # leaves acked.done instead of a dead pid).
    [ -e /run/demo-writer.pid ] && [ ! -e /var/log/demo-writer.acked.done ] || exit 0
    for _ in $(seq 300); do [ -e "/run/demo-drained-$db" ] && exit 0; sleep 0.1; done
    echo "the writer did not drain $db within 30 s" >&2
    exit 1 ;;
  off)
    rm -f "/run/demo-frozen-$db" ;;
esac
