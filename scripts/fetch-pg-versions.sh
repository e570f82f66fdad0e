#!/usr/bin/env bash
# PostgreSQL majors besides the host's 15, from Debian's own packages, runnable on this bookworm host
# without a container: 13 from bullseye, 17 from trixie (docs/postgresql-versions.md).
#
# Each major's packages and their whole dependency closure, its own C library included, are unpacked
# into a private root, $PG_ROOTS/<major> (the unprivileged cluster owner must reach it, and the patched
# paths are absolute: /var/cache/dualboot-db/pg when run as root, wherever the clone lives — a clone
# under /root would be out of its reach — else the work tree's .cache/pg); the programs in
# usr/lib/postgresql/<major>/bin are then pointed (patchelf) at that root's dynamic loader and
# libraries. So trixie's binaries, built against glibc 2.41, run on bookworm's 2.36, and bullseye's find
# their libicu67/libssl1.1 — nothing is installed on the host and nothing touches /usr.
# Idempotent: a root is rebuilt only when this script changes.
#   scripts/fetch-pg-versions.sh            13 and 17
#   scripts/fetch-pg-versions.sh 17         one major
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

declare -A SUITE=([13]=bullseye [17]=trixie)
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(13 17)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
script_hash=$(hash_files "$0")
PG_ROOTS=${DUALBOOT_PG_ROOTS:-$([ "$(id -u)" -eq 0 ] && echo /var/cache/dualboot-db/pg || echo "$LOCAL_CACHE/pg")}
command -v patchelf >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends patchelf

fetch_major() {
  local major=$1 suite=${SUITE[$1]:-}
  [ -n "$suite" ] || die "no Debian suite known for PostgreSQL $major (known: ${!SUITE[*]})"
  local top=$PG_ROOTS/$major root=$PG_ROOTS/$major
  if [ "$(cat "$top/.hash" 2>/dev/null)" = "$script_hash" ] && [ -x "$root/usr/lib/postgresql/$major/bin/postgres" ]; then
    say "PostgreSQL $major ($suite) up to date"
    return
  fi
  say "PostgreSQL $major: downloading $suite's packages into $top (once)"
  local apt=$PG_ROOTS/apt-$suite
  rm -rf "$root" "$apt/lists"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$apt/sources.list"
  : >"$apt/status" # nothing installed: apt resolves the whole closure, the C library included
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status" -o "Dir::Cache=$apt"
    -o "Dir::Cache::archives=$apt/archives" -o APT::Install-Recommends=false -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)
  apt-get "${opts[@]}" update >/dev/null
  apt-get "${opts[@]}" -y --download-only install "postgresql-$major" "postgresql-client-$major" >/dev/null
  for deb in "$apt"/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done
  relocate "$major" "$root"
  "$root/usr/lib/postgresql/$major/bin/postgres" --version >/dev/null || die "PostgreSQL $major does not run after unpacking into $root"
  chmod -R go+rX "$top" # the unprivileged cluster owner runs these
  rm -rf "$apt"
  echo "$script_hash" >"$top/.hash"
  say "PostgreSQL $major: $("$root/usr/lib/postgresql/$major/bin/postgres" --version)"
}

# Every ELF program of the major uses the root's loader; it and every library it loads search the root first.
relocate() {
  local major=$1 root=$2 f
  local ld=$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 # /lib64's link is absolute: the host's
  [ -e "$ld" ] || ld=$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
  [ -e "$ld" ] || die "no dynamic loader in $root"
  local rpath=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu:$root/usr/lib/postgresql/$major/lib
  for f in "$root/usr/lib/postgresql/$major/bin"/*; do
    if [ -L "$f" ] || ! patchelf --print-interpreter "$f" >/dev/null 2>&1; then continue; fi
    patchelf --set-interpreter "$ld" --force-rpath --set-rpath "$rpath" "$f"
  done
}

for m in "${majors[@]}"; do fetch_major "$m"; done
