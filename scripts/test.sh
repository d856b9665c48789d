#!/usr/bin/env bash
# Set up the project's virtualenv (if needed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# Versions pinned by requirements/dev-lock.txt (bash scripts/lock.sh refreshes it): a new
# release upstream cannot change what CI installs or send pip's resolver backtracking.
.venv/bin/python -m pip install -q -e '.[dev]' -c requirements/dev-lock.txt
.venv/bin/python -m pytest "$@"
