#!/usr/bin/env bash
# Refresh requirements/dev-lock.txt: the exact versions scripts/test.sh, scripts/demo.sh and
# scripts/check_wheel.sh install (as pip constraints). Resolved by uv (in a throwaway venv)
# for Python 3.11 on this platform; pip alone backtracked for minutes through old moto /
# cfn-lint releases when boto3 moved ahead of aiobotocore's botocore pin (CI, stop 24).
# Run it after changing dependencies in pyproject.toml, then run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/uv"
"$tmp/uv/bin/python" -m pip install -q uv 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
"$tmp/uv/bin/uv" pip compile pyproject.toml --extra dev --python-version 3.11 \
  --no-header --annotation-style line -o requirements/dev-lock.txt "$@"
