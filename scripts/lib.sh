# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Shared helpers for the project's scripts (sourced, not run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_HOME=${DUALBOOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dualboot-db}
LOCAL_CACHE=$ROOT/.cache
VENV=${DUALBOOT_VENV:-$ROOT/.venv}
FERRETDB_VERSION=v1.24.2
IMAGE_REPO=dualboot-db/base
# ansible-core releases the collection supports besides the pinned one of test-requirements.txt (2.19):
# each gets a venv .cache/venv-core-<minor> for sanity and one lifecycle run (meta/runtime.yml requires_ansible).
CORE_VERSIONS=(2.16.19 2.17.14 2.18.19)
BUILDER_VERSION=3.2.0
# Molecule scenarios that only make matrix runs (scripts/molecule.sh --matrix): sync is major_upgrade's
# flow on one major; postgresql@<suite> is the postgresql scenario on PostgreSQL 13 / Python 3.9 hosts
# (bullseye) and on 17 / 3.13 (trixie); mongodb@<suite> runs the MongoDB modules on Python 3.9 and 3.13.
MOLECULE_MATRIX=(sync postgresql@bullseye postgresql@trixie mongodb@bullseye mongodb@trixie)
core_venv() { echo "$LOCAL_CACHE/venv-core-${1%.*}"; }
# The unprivileged account that owns the test and demo PostgreSQL clusters when we run as root.
PG_OS_USER=${DUALBOOT_PG_OS_USER:-dualboot}

mkdir -p "$CACHE_HOME" "$LOCAL_CACHE/bin"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of the files that define a build step, so a cache entry is reused only while they are unchanged.
hash_files() { cat "$@" | sha256sum | cut -c1-16; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root for: $* (run it as root, or install sudo)"; fi
}
