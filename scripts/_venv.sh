# Sourced by the Quick start scripts: create (once) and activate .venv with keras_sep installed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstall only when setup.cfg changed since the last install.
stamp=.venv/.keras_sep_installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ scripts/_venv.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
