# Shared by scripts/demo and scripts/test: create a virtual environment with Python 3.11+
# and install the project into it.
#   source scripts/_venv.sh [EXTRAS [PIP ARGS...]]
# The environment is .venv unless VENV names another; versions come from
# constraints/test.txt unless CONSTRAINTS names another file (or none).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=${VENV:-.venv}
if [ -n "${PYTHON:-}" ]; then py=$PYTHON
elif command -v python3.11 >/dev/null 2>&1; then py=python3.11
else py=python3
fi
"$py" -c 'import sys; assert sys.version_info >= (3, 11), "risk-assets needs Python 3.11 or newer, found " + sys.version.split()[0]'
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# The versions CI tested (constraints/*.txt, see scripts/lock); CONSTRAINTS=none resolves
# the newest versions pyproject.toml allows instead.
constraints=${CONSTRAINTS:-constraints/test.txt}
pin=()
if [ "$constraints" != "none" ]; then pin=(-c "$constraints"); fi
"$venv/bin/python" -m pip install --quiet -e ".${1:+[$1]}" "${pin[@]}" "${@:2}"
