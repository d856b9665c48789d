#!/usr/bin/env bash
# Build the sdist and wheel (the wheel from the sdist), install the wheel alone — the
# core, no extras — into a fresh virtualenv, and run the embedded demo from it in a
# temporary folder. Catches a module or data file missing from the package, and a core
# that needs an extra's package.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset PYTHONPATH
started=$SECONDS

# python -m build: the project venv has it (dev extra); otherwise a throwaway one.
if [ -x .venv/bin/python ] && .venv/bin/python -c "import build" 2>/dev/null; then
  builder=.venv/bin/python
else
  python3 -m venv "$tmp/buildenv"
  "$tmp/buildenv/bin/python" -m pip install -q build
  builder="$tmp/buildenv/bin/python"
fi
"$builder" -m build --outdir "$tmp/dist" "$root" >"$tmp/build.log" 2>&1 || {
  cat "$tmp/build.log"
  exit 1
}
ls "$tmp"/dist/headrace-*.tar.gz >/dev/null
wheel=$(ls "$tmp"/dist/headrace-*.whl)

# Every file of the package (modules, templates, py.typed) is in the wheel.
python3 - "$wheel" <<'PY'
import sys
import zipfile
from pathlib import Path

packed = set(zipfile.ZipFile(sys.argv[1]).namelist())
wanted = {
    p.relative_to("src").as_posix()
    for p in Path("src/headrace").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
}
if wanted - packed:
    raise SystemExit(f"missing from the wheel: {sorted(wanted - packed)}")
PY

python3 -m venv "$tmp/core"
"$tmp/core/bin/python" -m pip install -q --disable-pip-version-check "$wheel" \
  -c "$root/requirements/dev-lock.txt" 2>&1 \
  | { grep -v "^WARNING: Location .* is ignored" || true; }

# The core must stay lean: no extra's package may come with it.
"$tmp/core/bin/python" - <<'PY'
import importlib.util
extras = ["psycopg", "adbc_driver_postgresql", "connectorx", "pymysql", "redis", "bullmq",
          "fastapi", "uvicorn", "jinja2", "fastavro", "prometheus_client", "pandas", "polars",
          # left out of the core for its size (bench/install_size.py): stdlib sqlite3 and
          # urllib, pyarrow compute do their work
          "numpy", "adbc_driver_manager", "adbc_driver_sqlite", "httpx"]
present = [m for m in extras if importlib.util.find_spec(m) is not None]
if present:
    raise SystemExit(f"the core install pulled packages of extras: {present}")
PY

mkdir "$tmp/work"
cp -r examples "$tmp/work/examples"
rm -rf "$tmp/work/examples/.headrace"
cd "$tmp/work"
"$tmp/core/bin/headrace" --help >/dev/null
"$tmp/core/bin/headrace" list examples/ >/dev/null
"$tmp/core/bin/headrace" run examples/customer_etl.py >"$tmp/demo.log" 2>&1 || {
  cat "$tmp/demo.log"
  echo "check_wheel: the embedded demo failed from the core wheel" >&2
  exit 1
}
grep -q ": success" "$tmp/demo.log"
echo "check_wheel: $(basename "$wheel") and sdist built; core install ran the embedded demo ($((SECONDS - started)) s)"
