#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/arnab/testbed: copy the checkout's
# files (tracked and new, not ignored) there and run it with this machine's Python (no --docker here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
tree=$ROOT/build/ansible_collections/arnab/testbed
rm -rf "$tree"; mkdir -p "$tree"
git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$tree/"
cd "$tree"
git init -q . && git add -A >/dev/null   # ansible-test lists the collection's files through git
export PATH=$ROOT/.venv/bin:$PATH
exec ansible-test sanity --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --requirements --color no "$@"
