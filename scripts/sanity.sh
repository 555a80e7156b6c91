#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/arnab/testbed: copy there the checkout's
# files (tracked and new, not git-ignored) that the collection ships, i.e. not matched by galaxy.yml's
# build_ignore (the emulated lab, molecule scenarios and dev scripts are not part of it), plus tests/, and run
# it with this machine's Python (no --docker here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
tree=$ROOT/build/ansible_collections/arnab/testbed
rm -rf "$tree"; mkdir -p "$tree"
git ls-files -co --exclude-standard | .venv/bin/python -c '
import fnmatch, sys, yaml
ignore = yaml.safe_load(open("galaxy.yml"))["build_ignore"]
def shipped(path):
    parts = path.split("/")
    return not any(fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(parts[0], pat) or pat in parts for pat in ignore)
sys.stdout.write("".join(p + "\0" for p in sys.stdin.read().splitlines() if shipped(p)))
' | rsync -a --from0 --files-from=- ./ "$tree/"
cd "$tree"
git init -q . && git add -A >/dev/null   # ansible-test lists the collection's files through git
export PATH=$ROOT/.venv/bin:$PATH
exec ansible-test sanity --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --requirements --color no "$@"
