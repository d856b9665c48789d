"""Benchmark: how fast the command line and the package start — headrace vs Airflow, Prefect, Dagster.

Each figure is the median wall time of ``--repeat`` (20) fresh processes, after one
warm-up run (so the OS file cache is warm, as for a user's second command):

* ``headrace --help``, ``headrace list examples/`` (its per-file cache warm after the
  warm-up run, as for a user's second ``list``; ``list_cold_s`` with ``--no-cache``) and
  ``python -c "import headrace"`` (targets: 0.15 s, 0.4 s, 0.1 s), next to a bare
  ``python -c pass`` (``python_s``: what the machine charges any Python process);
* ``airflow --help`` / ``import airflow`` (venv ``bench/.envs/airflow``, with a
  temporary AIRFLOW_HOME), ``prefect --help`` / ``import prefect`` and
  ``dagster --help`` / ``import dagster`` (venv ``bench/.envs/orchestration``, as
  bench/orchestration.py makes it). A tool whose venv is missing is skipped
  (``--install`` creates the venvs: pip install apache-airflow / dagster prefect).

Run:  .venv/bin/python bench/startup.py [--repeat 20] [--skip-anchors] [--install]
Last line: one JSON object with python_s, help_s, list_s, list_cold_s, import_s (headrace) and, per tool X,
X_help_s, X_import_s and X_over_headrace_help (X's --help time divided by headrace's;
above 1 means headrace starts faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENVS = HERE / ".envs"
TARGETS = {"help_s": 0.15, "list_s": 0.4, "import_s": 0.1}
#: tool -> (venv, packages to install, module to import)
ANCHORS = {
    "airflow": ("airflow", ["apache-airflow"], "airflow"),
    "prefect": ("orchestration", ["dagster", "prefect>=3,<4"], "prefect"),
    "dagster": ("orchestration", ["dagster", "prefect>=3,<4"], "dagster"),
}


def median_seconds(argv: list[str], repeat: int, env: dict[str, str], cwd: Path) -> float:
    """The median wall time of ``repeat`` runs of ``argv`` (after one warm-up run)."""
    times = []
    for i in range(repeat + 1):
        started = time.perf_counter()
        done = subprocess.run(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}"
            )
        if i:
            times.append(elapsed)
    return statistics.median(times)


def headrace_figures(repeat: int) -> dict[str, float]:
    """help_s, list_s and import_s of headrace, from this checkout's source tree."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("COLUMNS", None)
    command = [sys.executable, "-c", "from headrace.cli import main; main()"]
    script = Path(sys.executable).with_name("headrace")
    if script.exists():  # the installed console script, as a user types it
        command = [str(script)]
    with tempfile.TemporaryDirectory() as home:
        env["HEADRACE_HOME"] = home  # the list cache lives here, not in the checkout
        return {
            "python_s": median_seconds([sys.executable, "-c", "pass"], repeat, env, ROOT),
            "help_s": median_seconds([*command, "--help"], repeat, env, ROOT),
            "list_s": median_seconds([*command, "list", "examples/"], repeat, env, ROOT),
            "list_cold_s": median_seconds(
                [*command, "list", "examples/", "--no-cache"], max(repeat // 4, 3), env, ROOT
            ),
            "import_s": median_seconds(
                [sys.executable, "-c", "import headrace"], repeat, env, ROOT
            ),
        }


def ensure_env(name: str, packages: list[str], install: bool) -> Path | None:
    """The python of venv ``bench/.envs/<name>``, created when ``install``; None if missing."""
    python = ENVS / name / "bin" / "python"
    if python.exists():
        return python
    if not install:
        return None
    subprocess.run([sys.executable, "-m", "venv", str(ENVS / name)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def anchor_figures(tool: str, repeat: int, install: bool) -> dict[str, float] | None:
    """X_help_s and X_import_s of one tool, or None when its venv is missing."""
    venv, packages, module = ANCHORS[tool]
    python = ensure_env(venv, packages, install)
    if python is None or not (python.parent / tool).exists():
        print(f"{tool}: no venv at {ENVS / venv} (use --install); skipped", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
        env.update(AIRFLOW_HOME=home, PREFECT_HOME=home, DAGSTER_HOME=home, HOME=home)
        cwd = Path(home)
        return {
            f"{tool}_help_s": median_seconds(
                [str(python.parent / tool), "--help"], repeat, env, cwd
            ),
            f"{tool}_import_s": median_seconds(
                [str(python), "-c", f"import {module}"], repeat, env, cwd
            ),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per figure (median)")
    parser.add_argument("--skip-anchors", action="store_true", help="only headrace")
    parser.add_argument("--install", action="store_true", help="create missing anchor venvs")
    args = parser.parse_args(argv)
    result: dict[str, float] = {k: round(v, 4) for k, v in headrace_figures(args.repeat).items()}
    for name, target in TARGETS.items():
        verdict = "ok" if result[name] <= target else "OVER TARGET"
        print(f"headrace {name} = {result[name]:.3f} s (target {target} s): {verdict}")
    if not args.skip_anchors:
        for tool in ANCHORS:
            figures = anchor_figures(tool, args.repeat, args.install)
            if figures is None:
                continue
            result.update({k: round(v, 4) for k, v in figures.items()})
            result[f"{tool}_over_headrace_help"] = round(
                figures[f"{tool}_help_s"] / result["help_s"], 1
            )
            print(
                f"{tool}: --help {figures[f'{tool}_help_s']:.3f} s, import {figures[f'{tool}_import_s']:.3f} s"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
