#!/usr/bin/env bash
# Install everything the tests and the demo need. Idempotent: a second run only checks and reuses caches.
#   scripts/setup.sh            system packages, venv, FerretDB binary
#   scripts/setup.sh --image    ... and the molecule base images (needs dockerd; started and stopped here)
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

want_image=0
[ "${1:-}" = "--image" ] && want_image=1

# --- Debian packages -------------------------------------------------------------------------
pkgs=(shellcheck postgresql-15 postgresql-client-15 postgresql-contrib pgbouncer docker.io debootstrap rsync python3-venv patchelf)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
command -v go >/dev/null || missing+=(golang-go)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The packaged services are not ours to run: the harness starts its own clusters and pgbouncers.
  for svc in postgresql pgbouncer; do
    as_root service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# --- the unprivileged owner of local PostgreSQL clusters ------------------------------------
if [ "$(id -u)" -eq 0 ] && ! id "$PG_OS_USER" >/dev/null 2>&1; then
  say "creating system user $PG_OS_USER (PostgreSQL refuses to run as root)"
  useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER"
fi

# --- Python venv with the pinned tools ------------------------------------------------------
req_hash=$(hash_files "$ROOT/requirements.txt" "$ROOT/test-requirements.txt")
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-hash" 2>/dev/null)" != "$req_hash" ]; then
  say "installing the pinned tools into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$ROOT/test-requirements.txt"
  echo "$req_hash" > "$VENV/.requirements-hash"
else
  say "venv up to date"
fi

# --- older ansible-core releases, one venv each (controller side only: modules run on the main venv's Python)
for v in "${CORE_VERSIONS[@]}"; do
  venv=$(core_venv "$v")
  if [ "$("$venv/bin/ansible" --version 2>/dev/null | sed -n '1s/.*core \([0-9.]*\).*/\1/p')" != "$v" ]; then
    say "installing ansible-core $v into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "ansible-core==$v"
  fi
done

# --- ansible-builder in a venv of its own (tests/integration/test_execution_environment.py)
builder=$LOCAL_CACHE/venv-builder
if [ "$("$builder/bin/ansible-builder" --version 2>/dev/null)" != "$BUILDER_VERSION" ]; then
  say "installing ansible-builder $BUILDER_VERSION into $builder"
  rm -rf "$builder"
  python3 -m venv "$builder"
  "$builder/bin/pip" install -q "ansible-builder==$BUILDER_VERSION"
fi

# The collection must be importable as ansible_collections/dualboot/db without installing it.
coll="$LOCAL_CACHE/collections/ansible_collections/dualboot"
mkdir -p "$coll"
[ -L "$coll/db" ] || ln -sfn "$ROOT" "$coll/db"

# --- FerretDB (MongoDB protocol over SQLite) ------------------------------------------------
"$ROOT/scripts/build-ferretdb.sh"

# --- real third-party schemas for the restore rehearsal (from Debian packages) ------------------
"$ROOT/scripts/fetch-real-schemas.sh"

# --- PostgreSQL 13 (bullseye) and 17 (trixie) next to the host's 15, for the version tests -------
"$ROOT/scripts/fetch-pg-versions.sh"

if [ $want_image -eq 1 ]; then
  "$ROOT/scripts/with-dockerd.sh" "$ROOT/scripts/build-image.sh"
fi
say "setup complete"
