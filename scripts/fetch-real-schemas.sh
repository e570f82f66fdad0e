#!/usr/bin/env bash
# Real third-party application schemas for the restore rehearsal test (tests/integration/
# test_pg_schema_diff_restore.py), taken at setup time from Debian's own packages, never committed:
#   zabbix-server-pgsql  Zabbix 6.0 server schema (GPL-2.0-or-later, Debian bookworm), 173 tables.
# Each lands in .cache/real-schema/<package>-<version>.sql.gz; cached by package version.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

dest=$LOCAL_CACHE/real-schema
mkdir -p "$dest" "$CACHE_HOME/real-schema"
pkg=zabbix-server-pgsql
version=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^  Candidate: //p')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  as_root apt-get update -q >/dev/null
  version=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^  Candidate: //p')
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then die "Debian package $pkg not found: the real-schema rehearsal needs it (apt sources?)"; fi
safe=${version//[:+~]/_}
cached=$CACHE_HOME/real-schema/$pkg-$safe.sql.gz
if [ ! -s "$cached" ]; then
  say "fetching the Zabbix schema from Debian package $pkg $version (restore rehearsal test)"
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt downloads as _apt
  (cd "$tmp" && apt-get download -q "$pkg=$version" >/dev/null) || die "apt-get download $pkg failed"
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  cp "$tmp/x/usr/share/$pkg/schema.sql.gz" "$cached.tmp" && mv "$cached.tmp" "$cached"
  rm -rf "$tmp"
else
  say "real schema $pkg $version cached"
fi
ln -sfn "$cached" "$dest/zabbix-6.0.sql.gz"
