"""Install size: headrace's core and ``all`` against Dagster, Prefect and Airflow.

Each candidate is installed alone into a fresh virtualenv under ``bench/.envs/pkgsize-NAME``
(``python -m venv``, then ``pip install`` of the candidate, no other packages), and the
script prints the disk use of its ``site-packages`` (like ``du``, pip and setuptools of
the fresh venv included, as a user sees it), the same less what an empty venv already
holds, and the number of distributions installed (pip and setuptools not counted). headrace is installed from a wheel built from this
checkout, so the figures are those of ``pip install headrace`` / ``headrace[all]``.

Run:  .venv/bin/python bench/install_size.py [core all dagster prefect airflow] [--keep] [--top N]

``--top N`` also lists the N largest distributions of each install (the files its
``RECORD`` names, ``__pycache__`` included), largest first.

Without ``--keep`` each environment is deleted after it is measured (they are large).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENVS = HERE / ".envs"

# name -> pip requirement; "{wheel}" is replaced by the wheel built from this checkout.
CANDIDATES = {
    "core": "{wheel}",
    "all": "headrace[all] @ file://{wheel}",
    "dagster": "dagster",
    "prefect": "prefect",
    "airflow": "apache-airflow",
}
BASELINE = {"pip", "setuptools"}  # what `python -m venv` puts in every environment


def build_wheel(out: Path) -> Path:
    """Build headrace's wheel from this checkout into ``out``.

    Returns:
        The wheel's path.
    """
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
    )
    return next(out.glob("headrace-*.whl"))


def disk_use(folder: Path) -> int:
    """Bytes of disk used by the files under ``folder`` (allocated blocks, as ``du``)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        total += os.lstat(dirpath).st_blocks * 512
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def distributions(site: Path) -> list[str]:
    """Names of the distributions installed in ``site`` (from their ``.dist-info``)."""
    names = []
    for info in site.glob("*.dist-info"):
        name = info.name[: -len(".dist-info")].rsplit("-", 1)[0]
        names.append(name.lower().replace("_", "-"))
    return sorted(names)


def largest(site: Path, top: int) -> list[tuple[int, str]]:
    """The ``top`` largest distributions in ``site``: (bytes on disk, name), largest first."""
    sizes, counted = [], set()
    for info in site.glob("*.dist-info"):
        total = 0
        with (info / "RECORD").open(newline="") as record:
            for row in filter(None, csv.reader(record)):
                path = (site / row[0]).resolve()
                if path not in counted and path.is_file():
                    counted.add(path)
                    total += os.lstat(path).st_blocks * 512
        sizes.append((total, info.name[: -len(".dist-info")].rsplit("-", 1)[0]))
    return sorted(sizes, reverse=True)[:top]


def measure(name: str, requirement: str | None, keep: bool, top: int = 0) -> tuple[int, int, float]:
    """Install ``requirement`` into a fresh venv ``pkgsize-<name>`` and measure it.

    Args:
        name: names the environment.
        requirement: what to pip install; None measures the empty venv.
        keep: keep the environment afterwards.
        top: print this many of the largest distributions (0: none).

    Returns:
        Bytes of site-packages, distributions installed (pip/setuptools excluded), and
        seconds the install took.
    """
    env = ENVS / f"pkgsize-{name}"
    if env.exists():
        shutil.rmtree(env)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    started = time.perf_counter()
    if requirement is not None:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
            check=True,
        )
    took = time.perf_counter() - started
    site = next((env / "lib").glob("python3*/site-packages"))
    size = disk_use(site)
    count = len([d for d in distributions(site) if d not in BASELINE])
    for size_, dist in largest(site, top):
        print(f"  {name}: {size_ / 2**20:7.1f} MB  {dist}", flush=True)
    if not keep:
        shutil.rmtree(env)
    return size, count, took


def main() -> None:
    """Measure the candidates named on the command line (default: all of them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"Any of {', '.join(CANDIDATES)} (default: all).")
    parser.add_argument("--keep", action="store_true", help="Keep the environments.")
    parser.add_argument("--top", type=int, default=0, help="List the N largest distributions.")
    args = parser.parse_args()
    args.names = args.names or list(CANDIDATES)
    unknown = [n for n in args.names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown {unknown}; choose from {', '.join(CANDIDATES)}")
    ENVS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp)) if {"core", "all"} & set(args.names) else None
        empty, _, _ = measure("empty", None, keep=False)
        print(f"an empty venv holds {empty / 2**20:.0f} MB (pip, setuptools)")
        print(
            f"{'install':<10} {'site-packages':>14} {'without pip':>12} {'packages':>9} {'install s':>10}"
        )
        for name in args.names:
            requirement = CANDIDATES[name].format(wheel=wheel)
            size, count, took = measure(name, requirement, args.keep, args.top)
            print(
                f"{name:<10} {size / 2**20:>11.0f} MB {(size - empty) / 2**20:>9.0f} MB "
                f"{count:>9} {took:>10.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
