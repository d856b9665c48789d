#!/usr/bin/env bash
# Set up the project's virtualenv (if needed) and run the example customer ETL,
# embedded: SQLite demo source, DuckDB warehouse, SQLite run state, no servers.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e . -c requirements/dev-lock.txt
.venv/bin/headrace run examples/customer_etl.py "$@"
