#!/usr/bin/env bash
# Run the molecule scenarios of make test, or the ones named, or make matrix's.
#   scripts/molecule.sh                       every scenario but the matrix-only ones (lib.sh MOLECULE_MATRIX)
#   scripts/molecule.sh default pgbouncer     the ones named
#   scripts/molecule.sh --matrix              MOLECULE_MATRIX: e.g. postgresql@bullseye runs the postgresql
#                                             scenario with MOLECULE_IMAGE=bullseye (its hosts on that image)
# Called through with-dockerd.sh, so a Docker engine answers here.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
export PATH="$VENV/bin:$PATH"
export NO_COLOR=1
# Molecule's docker driver creates containers through community.docker, which the ansible package carries.
export ANSIBLE_COLLECTIONS_PATH="$LOCAL_CACHE/collections:$VENV/lib/python3.11/site-packages"
scenarios=("$@")
if [ "${1:-}" = --matrix ]; then
  scenarios=("${MOLECULE_MATRIX[@]}")
elif [ ${#scenarios[@]} -eq 0 ]; then
  for f in extensions/molecule/*/molecule.yml; do
    s=$(basename "$(dirname "$f")")
    [[ " ${MOLECULE_MATRIX[*]} " == *" $s "* ]] || scenarios+=("$s")
  done
fi
[ ${#scenarios[@]} -gt 0 ] || die "no molecule scenarios found under extensions/molecule/"
failed=()
for s in "${scenarios[@]}"; do
  say "molecule scenario: $s"
  start=$(date +%s)
  # scenario@image: the scenario's hosts on dualboot-db/base:<image> (molecule.yml reads MOLECULE_IMAGE)
  if MOLECULE_IMAGE=$([[ $s == *@* ]] && echo "${s#*@}" || echo latest) molecule test -s "${s%@*}"; then
    say "scenario $s passed in $(( $(date +%s) - start )) s"
  else
    failed+=("$s")
    say "scenario $s FAILED after $(( $(date +%s) - start )) s"
  fi
done
[ ${#failed[@]} -eq 0 ] || die "molecule scenarios failed: ${failed[*]}"
say "molecule: ${#scenarios[@]} scenario(s) passed: ${scenarios[*]}"
