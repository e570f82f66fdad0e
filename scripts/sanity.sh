#!/usr/bin/env bash
# ansible-test sanity needs the collection at ansible_collections/dualboot/db and a git-free copy of
# exactly the tracked files; it runs here with the venv's tools (--local), no containers.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
# ansible-test bootstraps pip in its per-test venvs with a script from a host we cannot reach.
pip_version=$("$VENV/bin/python" -c 'from ansible_test._internal.python_requirements import PIP_VERSION; print(PIP_VERSION)' 2>/dev/null || echo 24.2)
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
"$VENV/bin/ansible-test" sanity --local --python 3.11 --color no "$@"
