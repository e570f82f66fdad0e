#!/usr/bin/env bash
# Run every molecule scenario (or the ones named: scripts/molecule.sh default pgbouncer).
# Called through with-dockerd.sh, so a Docker engine answers here.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
export PATH="$VENV/bin:$PATH"
export NO_COLOR=1
# Molecule's docker driver creates containers through community.docker, which the ansible package carries.
export ANSIBLE_COLLECTIONS_PATH="$LOCAL_CACHE/collections:$VENV/lib/python3.11/site-packages"
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for f in extensions/molecule/*/molecule.yml; do scenarios+=("$(basename "$(dirname "$f")")"); done
fi
[ ${#scenarios[@]} -gt 0 ] || die "no molecule scenarios found under extensions/molecule/"
failed=()
for s in "${scenarios[@]}"; do
  say "molecule scenario: $s"
  start=$(date +%s)
  if molecule test -s "$s"; then
    say "scenario $s passed in $(( $(date +%s) - start )) s"
  else
    failed+=("$s")
    say "scenario $s FAILED after $(( $(date +%s) - start )) s"
  fi
done
[ ${#failed[@]} -eq 0 ] || die "molecule scenarios failed: ${failed[*]}"
say "molecule: ${#scenarios[@]} scenario(s) passed: ${scenarios[*]}"
