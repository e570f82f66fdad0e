#!/usr/bin/env bash
# Build the molecule base images without a registry: debootstrap a Debian suite, add its python3 with
# psycopg and pymongo, its PostgreSQL, pgbouncer and our FerretDB binary, then `docker import` it.
#   scripts/build-image.sh                    all three, side by side (each mostly waits on downloads)
#   scripts/build-image.sh bullseye trixie    the ones named
# bookworm: PostgreSQL 15, Python 3.11 (dualboot-db/base:latest); bullseye: 13, 3.9
# (dualboot-db/base:bullseye); trixie: 17, 3.13 (dualboot-db/base:trixie).
# Each is tagged by the hash of its recipe (packages, Python, requirements.txt, FerretDB build); a second
# run with an unchanged recipe only checks the tag. The root file system is cached as a tarball.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

declare -A PG=([bullseye]=13 [bookworm]=15 [trixie]=17) PY=([bullseye]=3.9 [bookworm]=3.11 [trixie]=3.13)
ferretdb=$(readlink -f "$LOCAL_CACHE/bin/ferretdb")
[ -x "$ferretdb" ] || die "FerretDB binary missing: run scripts/build-ferretdb.sh first"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

packages() {
  echo "python3,python3-apt,sudo,iproute2,procps,ca-certificates,locales-all,curl,postgresql-$1,postgresql-client-$1,pgbouncer"
}

# The root file system of one suite as a tarball: debootstrap, then the Python libraries from outside the chroot.
build_rootfs() {
  local suite=$1 tarball=$2 pg=${PG[$1]} py=${PY[$1]} rootfs log=$CACHE_HOME/debootstrap-$1.log
  rootfs=$(mktemp -d "$CACHE_HOME/rootfs.XXXXXX")
  # shellcheck disable=SC2064  # the path is fixed now
  trap "rm -rf '$rootfs'" EXIT
  say "debootstrap $suite into $rootfs (a few minutes, once; log $log)"
  debootstrap --variant=minbase --include="$(packages "$pg")" "$suite" "$rootfs" "$mirror" >"$log" 2>&1 \
    || die "debootstrap $suite failed; see $log"
  say "installing psycopg and pymongo into the $suite image (Python $py)"
  "$VENV/bin/pip" install -q --no-compile --target "$rootfs/usr/local/lib/python$py/dist-packages" \
    --python-version "$py" --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --only-binary=:all: --implementation cp -r "$ROOT/requirements.txt"
  install -m 0755 "$ferretdb" "$rootfs/usr/local/bin/ferretdb"
  # No systemd in the containers: nothing is started at install time, and the default cluster is
  # dropped so scenarios create exactly the clusters they describe.
  chroot "$rootfs" pg_dropcluster "$pg" main >/dev/null 2>&1 || true
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
}

build_image() {
  local suite=$1 tag image tarball floating
  [ -n "${PG[$suite]:-}" ] || die "unknown suite $suite (known: ${!PG[*]})"
  tag=$(printf '%s\n' "$suite" "$(packages "${PG[$suite]}")" "${PY[$suite]}" "$(hash_files "$ROOT/requirements.txt")" \
    "$(basename "$ferretdb")" | sha256sum | cut -c1-12)
  image=$IMAGE_REPO:$tag tarball=$CACHE_HOME/image-$tag.tar
  if docker image inspect "$image" >/dev/null 2>&1; then
    say "image $image present"
  else
    [ -s "$tarball" ] || build_rootfs "$suite" "$tarball"
    say "docker import $image"
    docker import --change 'CMD ["sleep", "infinity"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$image" >/dev/null
  fi
  floating=$([ "$suite" = bookworm ] && echo latest || echo "$suite")
  docker tag "$image" "$IMAGE_REPO:$floating"
  say "molecule base image: $image (also $IMAGE_REPO:$floating): Debian $suite, PostgreSQL ${PG[$suite]}, Python ${PY[$suite]}"
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm bullseye trixie)
pids=()
for suite in "${suites[@]}"; do
  (build_image "$suite") &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
[ $rc -eq 0 ] || die "building a molecule base image failed (above)"
