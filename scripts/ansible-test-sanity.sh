#!/usr/bin/env bash
# ansible-test sanity on a real (not symlinked) ansible_collections/janitor/docker copy of the tree,
# with an offline stand-in for the get-pip script ansible-test would download.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv_python=${VENV_PYTHON:-$repo/.venv/bin/python}
# outside the repo: inside it, git would hide the copy (.cache is ignored) and ansible-test would skip everything
work="${SANITY_DIR:-/tmp/janitor-sanity}/ansible_collections/janitor/docker"
mkdir -p "$work"
rsync -a --delete --delete-excluded --filter=':- .gitignore' --exclude .hypothesis --exclude .cache --exclude .venv --exclude .git --exclude .pytest_cache --exclude '__pycache__' \
  --exclude tests/output --exclude demo/work --exclude 'benchmarks/results' "$repo/" "$work/"
pip_version=$("$venv_python" - <<'PY'
import re, ansible_test._internal.python_requirements as m
print(re.search(r"pip='([0-9.]+)'", open(m.__file__).read()).group(1))
PY
)
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cat > "$cache/get_pip_${pip_version//./_}.py" <<'PY'
"""Offline stand-in for get-pip.py: installs pip from the wheel bundled with ensurepip."""
import glob
import os
import runpy
import sys

import ensurepip

wheels = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
sys.path.insert(0, wheels[0])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__")
PY
cd "$work"
exec "$(dirname "$venv_python")/ansible-test" sanity --local --python 3.11 --color no "$@"
