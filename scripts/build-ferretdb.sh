#!/usr/bin/env bash
# Build the FerretDB server from the Go module proxy through our tiny main (tools/ferretdb),
# cached by the hash of its sources; the result is linked as .cache/bin/ferretdb.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

src=$ROOT/tools/ferretdb
h=$(hash_files "$src/main.go" "$src/go.mod" "$src/go.sum")
bin=$CACHE_HOME/bin/ferretdb-$FERRETDB_VERSION-$h
if [ ! -x "$bin" ]; then
  go=$(command -v go || true)
  [ -n "$go" ] || die "Go is not installed and apt could not provide it; install golang-go"
  # FerretDB needs Go >= 1.22. An older distribution Go fetches a newer toolchain from the module proxy.
  if ! "$go" version | grep -Eq 'go1\.(2[2-9]|[3-9][0-9])'; then
    say "$("$go" version) is too old; fetching the go1.24.2 toolchain from the module proxy"
    tc=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod "$go" mod download -json golang.org/toolchain@v0.0.1-go1.24.2.linux-amd64 \
         | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    go=$tc/bin/go
    [ -x "$go" ] || die "could not fetch a Go toolchain from the module proxy"
  fi
  say "building FerretDB $FERRETDB_VERSION (first time takes a few minutes; cached afterwards)"
  mkdir -p "$CACHE_HOME/bin"
  (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" build -trimpath -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
else
  say "FerretDB binary cached"
fi
ln -sfn "$bin" "$LOCAL_CACHE/bin/ferretdb"
