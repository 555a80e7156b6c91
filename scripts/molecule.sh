#!/usr/bin/env bash
# Run every molecule scenario under extensions/molecule; fail if none ran.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH   # molecule needs ansible-config on PATH
scenarios=$(find extensions/molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -rn1 basename | sort)
[ -n "$scenarios" ] || { echo "no molecule scenario found" >&2; exit 1; }
passed=0; failed=0
for s in ${MOLECULE_SCENARIOS:-$scenarios}; do
  if molecule test -s "$s"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "molecule: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
