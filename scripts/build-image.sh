#!/usr/bin/env bash
# Build the molecule base image without a registry: debootstrap Debian bookworm, add python3 with
# psycopg and pymongo, postgresql-15, pgbouncer and our FerretDB binary, then `docker import` it.
# Tagged by the hash of its inputs; a second run with unchanged inputs only checks the tag.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ferretdb=$(readlink -f "$LOCAL_CACHE/bin/ferretdb")
[ -x "$ferretdb" ] || die "FerretDB binary missing: run scripts/build-ferretdb.sh first"
tag=$(printf '%s\n' "$(hash_files "$0" "$ROOT/requirements.txt")" "$(basename "$ferretdb")" | sha256sum | cut -c1-12)
image=$IMAGE_REPO:$tag

if docker image inspect "$image" >/dev/null 2>&1; then
  say "image $image present"
else
  tarball=$CACHE_HOME/image-$tag.tar
  if [ ! -s "$tarball" ]; then
    rootfs=$(mktemp -d "$CACHE_HOME/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    say "debootstrap bookworm into $rootfs (a few minutes, once)"
    debootstrap --variant=minbase \
      --include=python3,python3-apt,sudo,iproute2,procps,ca-certificates,locales-all,curl,postgresql-15,postgresql-client-15,postgresql-contrib,pgbouncer \
      bookworm "$rootfs" "$mirror" >"$CACHE_HOME/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $CACHE_HOME/debootstrap.log"
    # Python libraries for the modules, as wheels for the image's Python 3.11, installed from outside the chroot.
    say "installing psycopg and pymongo into the image"
    "$VENV/bin/pip" install -q --no-compile --target "$rootfs/usr/local/lib/python3.11/dist-packages" \
      --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
      --only-binary=:all: --implementation cp -r "$ROOT/requirements.txt"
    install -m 0755 "$ferretdb" "$rootfs/usr/local/bin/ferretdb"
    # No systemd in the containers: nothing is started at install time, and the default cluster is
    # dropped so scenarios create exactly the clusters they describe.
    chroot "$rootfs" pg_dropcluster 15 main >/dev/null 2>&1 || true
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
  fi
  say "docker import $image"
  docker import --change 'CMD ["sleep", "infinity"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$image" >/dev/null
fi
docker tag "$image" "$IMAGE_REPO:latest"
say "molecule base image: $image (also $IMAGE_REPO:latest)"
