#!/usr/bin/env bash
# ansible-test sanity needs the collection at ansible_collections/dualboot/db and a git-free copy of
# exactly the tracked files; it runs here with the venv's tools (--local), no containers.
#   scripts/sanity.sh [--core 2.16] [ansible-test sanity options]
# --core runs the ansible-test of an older supported ansible-core (its venv from scripts/setup.sh);
# tests/sanity/ignore-<minor>.txt is that release's ignore file, where one is needed.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
test_venv=$VENV
skip=()
if [ "${1:-}" = "--core" ]; then
  test_venv=$LOCAL_CACHE/venv-core-$2
  # ansible-test 2.16, 2.17 and 2.18 pin astroid 3.0.0 / 3.1.0 / 3.3.5, which take every call of a
  # function named _alias for typing._alias and crash on the one-argument pg_sync._alias(item) (IndexError
  # in brain_typing.infer_typing_alias); an ignore file cannot express a crash. 2.19 (astroid 3.3.10) runs
  # pylint. Renaming pg_sync._alias would let the older ones run it too.
  case $2 in 2.16 | 2.17 | 2.18) skip=(--skip-test pylint) ;; esac
  shift 2
  [ -x "$test_venv/bin/ansible-test" ] || die "no ansible-core venv at $test_venv: run make setup"
fi
# ansible-test finds its Python (--python 3.11) on PATH: the one beside it, not the test venv's.
export PATH="$test_venv/bin:$PATH"
# ansible-test bootstraps pip in its per-test venvs with a script from a host we cannot reach; each
# release pins its own pip version, which names the cached script.
pip_version=$("$test_venv/bin/python" -c '
from ansible_test._internal.python_requirements import get_venv_packages
class Python: version = "3.11"
print(get_venv_packages(Python())["pip"])')
mkdir -p "$HOME/.ansible/test/cache"
install -m 0644 "$ROOT/scripts/ansible-test-get-pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
# A private copy per run: two runs at once must not delete each other's tree.
work=$(mktemp -d "$LOCAL_CACHE/sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/dualboot/db
mkdir -p "$dest"
# Tracked and new (not ignored) files only: what a build or a commit would contain.
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest" || exit 1
git init -q . && git add -A
"$test_venv/bin/ansible-test" sanity --local --python 3.11 --color no "${skip[@]}" "$@"
