"""Golden differential fixtures: Airflow's data intervals and Great Expectations' verdicts.

Not part of the test suite. It installs the reference tools into isolated venvs under
``bench/.envs/`` (``airflow``: apache-airflow 3.x; ``quality``: great_expectations 1.x,
shared with ``bench/quality.py``), runs itself inside each one, and writes what the
references answer as committed JSON fixtures:

- ``tests/pipeline/differential/airflow_intervals.json``: for a case matrix of schedules,
  time zones and start dates around the DST transitions of 2024 and 2025, the intervals
  of ``CronDataIntervalTimetable`` / ``DeltaDataIntervalTimetable.next_dagrun_info``
  (catchup on, and off at a given "now") and of ``infer_manual_data_interval``;
- ``tests/quality/differential/gx_results.json``: a seeded messy table (stored in the
  fixture itself) and, for an expectation matrix, each GX expectation's success,
  unexpected count and observed value.

``tests/pipeline/test_airflow_differential.py`` and ``tests/quality/test_gx_differential.py``
compare headrace with these on every run; the intentional differences are listed there.

Run:  /work/main/.venv/bin/python scripts/differential/airflow_gx.py [--only airflow|gx]
(installing Airflow into its venv takes several minutes the first time).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "bench" / ".envs"
sys.path.insert(0, str(Path(__file__).resolve().parent))

PARTS: dict[str, dict[str, Any]] = {
    "airflow": {
        "env": "airflow",
        "packages": ["apache-airflow>=3,<4"],
        "out": ROOT / "tests" / "pipeline" / "differential" / "airflow_intervals.json",
    },
    "gx": {
        "env": "quality",  # the benchmark's venv: same packages
        "packages": ["great_expectations>=1.0,<2", "pandera[polars]", "polars", "pyarrow"],
        "out": ROOT / "tests" / "quality" / "differential" / "gx_results.json",
    },
}


def ensure_env(name: str, packages: list[str]) -> Path:
    """The venv's interpreter, created and filled on first use."""
    python = ENVS / name / "bin" / "python"
    if not python.exists():
        print(
            f"creating {python.parent.parent} with {', '.join(packages)} (minutes)…",
            file=sys.stderr,
        )
        subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def write(out: Path, data: dict) -> None:
    """Write a fixture: one case per line, so diffs stay readable."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["{"]
    items = list(data.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            body = ",\n".join(
                "    " + json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value
            )
            lines.append(f"  {json.dumps(key)}: [\n{body}\n  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PARTS))
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)  # inside a venv
    args = parser.parse_args()
    if args.part == "airflow":
        import airflow_cases

        write(PARTS["airflow"]["out"], airflow_cases.compute())
        return
    if args.part == "gx":
        import gx_cases

        write(PARTS["gx"]["out"], gx_cases.compute())
        return
    for name, part in PARTS.items():
        if args.only and name != args.only:
            continue
        python = ensure_env(part["env"], part["packages"])
        subprocess.run(
            [str(python), __file__, "--part", name],
            check=True,
            env={
                "AIRFLOW_HOME": str(ENVS / "airflow-home"),
                "GX_ANALYTICS_ENABLED": "false",
                "PATH": "/usr/bin:/bin",
                "HOME": str(ENVS),
            },
        )


if __name__ == "__main__":
    main()
