#!/usr/bin/env bash
# Install detectron2 v0.6 as a pure-Python package, without a compiler: `make d2`.
#
# detectron2 is not on PyPI; `pb1-detectron2==0.6` is an sdist of its v0.6 Python
# sources whose setup.py compiles C++ ops that the sdist does not ship. This script
# downloads it (checked against a pinned sha256), swaps its setup.py for one that
# builds a plain wheel of the `detectron2` package (model-zoo configs included), and
# pip-installs that wheel, so `pip show/uninstall pb1-detectron2` work as usual.
# projects/Detectron2Transfer/d2_transfer/d2_compat.py covers the missing compiled ops at import time.
# Idempotent: does nothing when detectron2 (any build, official included) is installed.
#
# usage: tools/install_detectron2.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail

PY=${1:-.venv/bin/python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONSTRAINTS="$ROOT/constraints.txt"
SDIST_SHA256=5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29
# Pure-Python packages detectron2 imports that ssl_lab does not already need.
DEPS="cloudpickle omegaconf"

# Where a module would import from, without importing it (detectron2 imports torch: slow).
where() {
  "$PY" -c "import importlib.util, sys; s = importlib.util.find_spec(sys.argv[1]); print(s.origin) if s else sys.exit(1)" "$1"
}

if D2=$(where detectron2) && where cloudpickle >/dev/null && where omegaconf >/dev/null; then
  echo "detectron2 already installed: $D2"
  exit 0
fi

"$PY" -m pip install -q -c "$CONSTRAINTS" $DEPS
if where detectron2 >/dev/null; then
  exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# pip prepares the sdist's metadata by running its setup.py, which imports torch:
# build isolation would hide the venv's torch.
"$PY" -m pip download -q --no-deps --no-build-isolation -c "$CONSTRAINTS" pb1-detectron2 -d "$TMP"
SDIST=$(ls "$TMP"/pb1-detectron2-*.tar.gz)
echo "$SDIST_SHA256  $SDIST" | sha256sum -c --quiet
tar -xzf "$SDIST" -C "$TMP"
SRC=$(ls -d "$TMP"/pb1-detectron2-*/)
rm -rf "$SRC"/*.egg-info
cat > "$SRC/setup.py" <<'EOF'
from setuptools import find_packages, setup

setup(
    name="pb1-detectron2",
    version="0.6",
    description="detectron2 v0.6 Python sources, without compiled ops (installed by ssl_lab)",
    packages=find_packages(include=["detectron2", "detectron2.*"]),
    package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},
    python_requires=">=3.6",
)
EOF
"$PY" -m pip install -q --no-deps --no-build-isolation "$SRC"
"$PY" -c "import sys; sys.path.insert(0, '$ROOT/projects/Detectron2Transfer'); from d2_transfer import Trainer; import detectron2; print('installed detectron2', detectron2.__version__, '@', detectron2.__file__)"
