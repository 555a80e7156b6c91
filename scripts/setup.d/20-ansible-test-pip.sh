#!/usr/bin/env bash
# ansible-test bootstraps pip in its sanity venvs with a get-pip script fetched from ci-files.testing.ansible.com,
# which this machine cannot reach. Give it a bootstrap of our own that installs pip from PyPI's pip wheel.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n "s/^ *pip='\(.*\)',$/\1/p" .venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py)
target=$HOME/.ansible/test/cache/get_pip_${version//./_}.py
[ -f "$target" ] && exit 0
cache=/var/cache/arnab-testbed/wheels
mkdir -p "$cache" "$(dirname "$target")"
ls "$cache"/pip-"$version"-*.whl >/dev/null 2>&1 || .venv/bin/pip download -q --no-deps -d "$cache" "pip==$version"
cat > "$target" <<PY
# Stand-in for get-pip.py (written by arnab.testbed's setup): runs pip from its wheel to install pip itself.
import glob, runpy, sys
sys.path.insert(0, glob.glob("$cache/pip-$version-*.whl")[0])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
extra = [p for p, flag in (("setuptools", "--no-setuptools"), ("wheel", "--no-wheel")) if flag not in sys.argv]
sys.argv = ["pip", "install"] + args + extra
runpy.run_module("pip", run_name="__main__", alter_sys=True)
PY
echo "[setup] ansible-test pip bootstrap for pip $version at $target"
