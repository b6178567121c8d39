#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv with Python 3.12 and install
# bayescale with its development extras. Idempotent: re-installs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    local candidate
    for candidate in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 \
                     /usr/bin/python3.12 /usr/local/bin/python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    PY=$(find_python) || { echo "setup: Python 3.12 not found (tried python3.12 and pyenv versions)" >&2; exit 1; }
    echo "setup: creating .venv with $PY" >&2
    rm -rf .venv
    "$PY" -m venv .venv
fi

stamp=.venv/.bayescale-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing bayescale and its dependencies into .venv" >&2
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" \
            > .venv/pip-install.log 2>&1; then
        cat .venv/pip-install.log >&2
        echo "setup: pip install failed" >&2
        exit 1
    fi
    .venv/bin/python -c 'import bayescale, pymc, nutpie, arviz'

    echo "$want" > "$stamp"
fi
