"""Benchmark: orchestration overhead per task and per run — headrace vs Dagster and Prefect 3.

Two workloads, each task doing almost nothing so only the orchestrator is measured:

* **chain**: 200 tasks, each returns its input + 1 (a strictly sequential graph);
* **fan-in**: 1,000 mapped tasks (each returns its element) gathered by one summing
  task (1,001 tasks).

Two per-run workloads, what a run costs beyond its tasks:

* **etl**: the reference customer-ETL shape, 4 chained tasks (extract, transform,
  validate, load) sleeping 0.3 + 0.3 + 0.2 + 0.1 s; the figure is the run's wall time
  minus those 0.9 s (headrace: process executor, the runner's warm pool; best of
  ``--repeat`` after one warm-up run; the cold first run is shown too);
* **backfill30**: 30 daily runs of a one-task pipeline, from a fresh process and store
  (headrace: ``Backfill`` with one warm process pool, pool start included).

Contenders, each in its own fresh subprocess, one warm-up run then the best of
``--repeat`` (5) timed runs (Dagster and Prefect: one timed run, they are slow):

* headrace in-process and headrace with the local process pool (2 workers here),
  with every state change persisted in a SQLite state store (WAL, as by default);
* Dagster ``job.execute_in_process()`` (ephemeral instance), fan-in with DynamicOut;
* Prefect 3 flow of tasks, default task runner, ``task.map`` for the fan-out.

Dagster and Prefect install into an isolated venv ``bench/.envs/orchestration``
(created on first use), never into the project's.

Run:  .venv/bin/python bench/orchestration.py [--repeat 5] [--skip-anchors]
Last line: one JSON object with headrace_inprocess_ms_per_task and
headrace_pool_ms_per_task (fan-in), dagster_over_headrace and prefect_over_headrace
(X's fan-in time divided by headrace in-process's; above 1 means headrace is faster),
the chain figures, headrace_run_overhead_s (etl wall minus task time, warm pool),
headrace_run_overhead_cold_s, headrace_backfill_30_s, and dagster_run_over_headrace /
prefect_run_over_headrace (X's etl run wall time over headrace's) with
dagster_backfill_30_over_headrace / prefect_backfill_30_over_headrace.
"""

from __future__ import annotations

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENV = HERE / ".envs" / "orchestration"
ANCHOR_PACKAGES = ["dagster", "prefect>=3,<4"]
CHAIN, FAN = 200, 1000
TASKS = {"chain": CHAIN, "fan": FAN + 1}
ETL_SLEEPS = (0.3, 0.3, 0.2, 0.1)  # extract, transform, validate, load
ETL_TASK_SECONDS = sum(ETL_SLEEPS)
BACKFILL_DAYS = 30
WORKLOADS = ("chain", "fan", "etl", "backfill30")

HEADRACE_FLOWS = textwrap.dedent(f"""
    import time
    from headrace import pipeline, task

    @task
    def inc(x: int) -> int:
        return x + 1

    @task
    def one(i: int) -> int:
        return i

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @pipeline
    def chain():
        value = inc(0)
        for _ in range({CHAIN - 1}):
            value = inc(value)

    @pipeline
    def fan():
        total(one.map(i=list(range({FAN}))))

    @task
    def extract() -> int:
        time.sleep({ETL_SLEEPS[0]})
        return 1

    @task
    def transform(x: int) -> int:
        time.sleep({ETL_SLEEPS[1]})
        return x + 1

    @task
    def validate(x: int) -> int:
        time.sleep({ETL_SLEEPS[2]})
        return x + 1

    @task
    def load(x: int) -> int:
        time.sleep({ETL_SLEEPS[3]})
        return x + 1

    @pipeline
    def etl():
        load(validate(transform(extract())))

    @task
    def tiny() -> int:
        return 1

    @pipeline(schedule="@daily")
    def daily():
        tiny()
""")


# --------------------------------------------------------------------------- contenders (subprocess side)


def run_headrace(executor: str, workload: str, repeat: int) -> dict:
    """Best-of-``repeat`` seconds of one headrace workload, every state change in SQLite."""
    from datetime import UTC, datetime, timedelta

    from headrace.config import Settings
    from headrace.engine import Runner, load_pipelines
    from headrace.state import open_store

    folder = Path(tempfile.mkdtemp(prefix="hr-bench-"))
    (folder / "flows.py").write_text(HEADRACE_FLOWS)
    settings = Settings(home=folder, state_url=f"sqlite:///{folder / 'state.db'}")
    flows = load_pipelines(folder / "flows.py")
    if workload == "etl":
        return _headrace_etl(flows["etl"], settings, executor, repeat)
    if workload == "backfill30":
        return _headrace_backfill(flows["daily"], settings, executor)
    times = []
    with (
        open_store(settings.state_url) as store,
        Runner(store, executor=executor, settings=settings) as runner,
    ):
        day = datetime(2024, 1, 1, tzinfo=UTC)
        for attempt in range(repeat + 1):  # the first run warms up
            began = time.perf_counter()
            result = runner.run(flows[workload], logical_date=day + timedelta(days=attempt))
            elapsed = time.perf_counter() - began
            assert str(result.state) == "success", result.run.error
            expected = CHAIN if workload == "chain" else sum(range(FAN))
            got = result.result_of("inc__200" if workload == "chain" else "total")
            assert got == expected, (got, expected)
            if attempt:
                times.append(elapsed)
            persisted = len(store.get_task_instances(result.run_id))
    return {"seconds": min(times), "task_instances_stored": persisted}


def _headrace_etl(etl: Any, settings: Any, executor: str, repeat: int) -> dict:
    """Wall time of the 4-task ETL run: the cold first run, then the best warm one."""
    from datetime import UTC, datetime, timedelta

    from headrace.engine import Runner
    from headrace.state import open_store

    times = []
    with (
        open_store(settings.state_url) as store,
        Runner(store, executor=executor, settings=settings) as runner,
    ):
        for attempt in range(repeat + 1):
            began = time.perf_counter()
            result = runner.run(
                etl, logical_date=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=attempt)
            )
            times.append(time.perf_counter() - began)
            assert str(result.state) == "success" and result.result_of("load") == 4, (
                result.run.error
            )
    return {"seconds": min(times[1:]), "cold_seconds": times[0]}


def _headrace_backfill(daily: Any, settings: Any, executor: str) -> dict:
    """Seconds of a backfill of BACKFILL_DAYS one-task runs, pool start included."""
    from datetime import datetime, timedelta

    from headrace.scheduler import Backfill, InlineLauncher
    from headrace.state import open_store

    began = time.perf_counter()
    with open_store(settings.state_url) as store:
        launcher = InlineLauncher(store, settings, executor=executor)
        try:
            first = datetime(2024, 1, 1)
            report = Backfill(daily, store, launcher=launcher, max_active=1).run(
                first, first + timedelta(days=BACKFILL_DAYS - 1)
            )
        finally:
            launcher.shutdown()
    elapsed = time.perf_counter() - began
    assert report.succeeded == BACKFILL_DAYS, report.failed
    return {"seconds": elapsed}


def _dagster_per_run(workload: str, repeat: int) -> dict:
    from dagster import job, op

    @op
    def extract() -> int:
        time.sleep(ETL_SLEEPS[0])
        return 1

    @op
    def transform(x: int) -> int:
        time.sleep(ETL_SLEEPS[1])
        return x + 1

    @op
    def validate(x: int) -> int:
        time.sleep(ETL_SLEEPS[2])
        return x + 1

    @op
    def load(x: int) -> int:
        time.sleep(ETL_SLEEPS[3])
        return x + 1

    @op
    def tiny() -> int:
        return 1

    @job
    def etl():
        load(validate(transform(extract())))

    @job
    def daily():
        tiny()

    if workload == "backfill30":
        began = time.perf_counter()
        for _ in range(BACKFILL_DAYS):
            assert daily.execute_in_process().success
        return {"seconds": time.perf_counter() - began}
    times = []
    for _ in range(repeat + 1):
        began = time.perf_counter()
        assert etl.execute_in_process().success
        times.append(time.perf_counter() - began)
    return {"seconds": min(times[1:]), "cold_seconds": times[0]}


def _prefect_per_run(workload: str, repeat: int) -> dict:
    from prefect import flow, task

    @task
    def extract() -> int:
        time.sleep(ETL_SLEEPS[0])
        return 1

    @task
    def transform(x: int) -> int:
        time.sleep(ETL_SLEEPS[1])
        return x + 1

    @task
    def validate(x: int) -> int:
        time.sleep(ETL_SLEEPS[2])
        return x + 1

    @task
    def load(x: int) -> int:
        time.sleep(ETL_SLEEPS[3])
        return x + 1

    @task
    def tiny() -> int:
        return 1

    @flow
    def etl() -> int:
        return load(validate(transform(extract())))

    @flow
    def daily(day: int) -> int:
        return tiny()

    if workload == "backfill30":
        began = time.perf_counter()
        for day in range(BACKFILL_DAYS):
            assert daily(day) == 1
        return {"seconds": time.perf_counter() - began}
    times = []
    for _ in range(repeat + 1):
        began = time.perf_counter()
        assert etl() == 4
        times.append(time.perf_counter() - began)
    return {"seconds": min(times[1:]), "cold_seconds": times[0]}


def run_dagster(workload: str, repeat: int) -> dict:
    if workload in ("etl", "backfill30"):
        return _dagster_per_run(workload, repeat)
    from dagster import DynamicOut, DynamicOutput, job, op

    @op
    def first() -> int:
        return 1

    @op
    def inc(x: int) -> int:
        return x + 1

    @op(out=DynamicOut(int))
    def elements():
        for i in range(FAN):
            yield DynamicOutput(i, mapping_key=str(i))

    @op
    def one(i: int) -> int:
        return i

    @op
    def total(values: list[int]) -> int:
        return sum(values)

    @job
    def chain():
        value = first()
        for n in range(CHAIN - 1):
            value = inc.alias(f"inc_{n}")(value)

    @job
    def fan():
        total(elements().map(one).collect())

    target = chain if workload == "chain" else fan
    times = []
    for attempt in range(repeat + 1):
        began = time.perf_counter()
        result = target.execute_in_process()
        elapsed = time.perf_counter() - began
        assert result.success
        if attempt:
            times.append(elapsed)
    return {"seconds": min(times)}


def run_prefect(workload: str, repeat: int) -> dict:
    if workload in ("etl", "backfill30"):
        return _prefect_per_run(workload, repeat)
    from prefect import flow, task

    @task
    def inc(x: int) -> int:
        return x + 1

    @task
    def one(i: int) -> int:
        return i

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @flow
    def chain() -> int:
        value = 0
        for _ in range(CHAIN):
            value = inc(value)
        return value

    @flow
    def fan() -> int:
        return total(one.map(list(range(FAN))))

    target = chain if workload == "chain" else fan
    times = []
    for attempt in range(repeat + 1):
        began = time.perf_counter()
        value = target()
        elapsed = time.perf_counter() - began
        assert value == (CHAIN if workload == "chain" else sum(range(FAN))), value
        if attempt:
            times.append(elapsed)
    return {"seconds": min(times)}


# --------------------------------------------------------------------------- driver


def ensure_env() -> Path:
    """The isolated venv of Dagster and Prefect, created on first use."""
    python = ENV / "bin" / "python"
    if (
        not python.exists()
        or subprocess.run(
            [str(python), "-c", "import dagster, prefect"], capture_output=True
        ).returncode
        != 0
    ):
        from rich.console import Console

        Console(stderr=True).print(f"installing {', '.join(ANCHOR_PACKAGES)} into {ENV} (once)…")
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    return python


def measure(
    python: str, contender: str, workload: str, repeat: int, env: dict[str, str]
) -> dict | None:
    """Run one contender on one workload in a fresh subprocess; its last stdout line is JSON.

    headrace failing stops the benchmark; an anchor failing (Prefect's ephemeral API
    server answers 503 on a busy machine) is reported and its figure left out (None).
    """
    done = subprocess.run(
        [
            python,
            str(Path(__file__).resolve()),
            "--one",
            contender,
            workload,
            "--repeat",
            str(repeat),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if done.returncode != 0:
        message = f"{contender} {workload} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        if contender.startswith("headrace"):
            raise SystemExit(message)
        print(
            message.splitlines()[0] + " " + (done.stderr.strip().splitlines() or ["?"])[-1][:300],
            file=sys.stderr,
        )
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs of headrace (best is kept)"
    )
    parser.add_argument("--skip-anchors", action="store_true", help="measure headrace only")
    parser.add_argument("--one", nargs=2, metavar=("CONTENDER", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        contender, workload = args.one
        if contender.startswith("headrace-"):
            figures = run_headrace(contender.removeprefix("headrace-"), workload, args.repeat)
        elif contender == "dagster":
            figures = run_dagster(workload, args.repeat)
        else:
            figures = run_prefect(workload, args.repeat)
        print(json.dumps(figures))
        return

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console()
    plan = [
        ("headrace-inprocess", sys.executable, args.repeat),
        ("headrace-process", sys.executable, args.repeat),
    ]
    env = dict(os.environ)
    if not args.skip_anchors:
        anchor = str(ensure_env())
        prefect_home = tempfile.mkdtemp(prefix="prefect-home-")
        env.update(
            PREFECT_HOME=prefect_home,
            PREFECT_LOGGING_LEVEL="WARNING",
            DAGSTER_HOME=tempfile.mkdtemp(),
        )
        env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        # Its ephemeral API server needs more than the default 20 s to start on a busy machine.
        env.update(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
        plan += [("dagster", anchor, 1), ("prefect", anchor, 1)]
    results: dict[tuple[str, str], float] = {}
    cold: dict[str, float] = {}
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("measuring", total=len(plan) * len(WORKLOADS))
        for contender, python, repeat in plan:
            for workload in WORKLOADS:
                progress.update(bar, description=f"{contender} {workload}")
                runs = max(repeat, 2) if workload == "etl" else repeat
                figures = measure(python, contender, workload, runs, env)
                progress.advance(bar)
                if figures is None:
                    continue
                results[(contender, workload)] = figures["seconds"]
                if workload in TASKS:
                    ms = figures["seconds"] * 1000 / TASKS[workload]
                    console.print(
                        f"{contender:>20} {workload:>10}: {figures['seconds']:.3f} s  {ms:.3f} ms/task"
                    )
                elif workload == "etl":
                    cold[contender] = figures["cold_seconds"]
                    console.print(
                        f"{contender:>20} {workload:>10}: {figures['seconds']:.3f} s, overhead "
                        f"{figures['seconds'] - ETL_TASK_SECONDS:.3f} s (cold first run {figures['cold_seconds']:.3f} s)"
                    )
                else:
                    console.print(f"{contender:>20} {workload:>10}: {figures['seconds']:.3f} s")

    table = Table(title=f"orchestration overhead (chain {CHAIN} tasks, fan-in {FAN}+1 tasks)")
    table.add_column("contender", no_wrap=True)
    for column in ("chain s", "chain ms/task", "fan-in s", "fan-in ms/task", "fan-in vs headrace"):
        table.add_column(column, justify="right")
    base = results[("headrace-inprocess", "fan")]

    def cell(contender: str, workload: str, scale: float = 1.0) -> str:
        value = results.get((contender, workload))
        return "failed" if value is None else f"{value * scale:.3f}"

    for contender, _, _ in plan:
        fan = results.get((contender, "fan"))
        table.add_row(
            contender,
            cell(contender, "chain"),
            cell(contender, "chain", 1000 / TASKS["chain"]),
            cell(contender, "fan"),
            cell(contender, "fan", 1000 / TASKS["fan"]),
            "failed" if fan is None else f"{fan / base:.1f}×",
        )
    console.print(table)
    per_run = Table(
        title=f"per-run cost (4-task ETL, tasks {ETL_TASK_SECONDS:.1f} s; backfill of {BACKFILL_DAYS} runs)"
    )
    for column in (
        "contender",
        "etl run s",
        "overhead s",
        "cold run s",
        f"backfill {BACKFILL_DAYS} s",
    ):
        per_run.add_column(column, justify="right")
    for contender, _, _ in plan:
        etl = results.get((contender, "etl"))
        per_run.add_row(
            contender,
            cell(contender, "etl"),
            "failed" if etl is None else f"{etl - ETL_TASK_SECONDS:.3f}",
            f"{cold[contender]:.3f}" if contender in cold else "failed",
            cell(contender, "backfill30"),
        )
    console.print(per_run)
    print(json.dumps(_summary(results, cold)))


def _summary(results: dict[tuple[str, str], float], cold: dict[str, float]) -> dict[str, Any]:
    """The last line's figures."""
    base = results[("headrace-inprocess", "fan")]
    pool_etl = results[("headrace-process", "etl")]
    pool_backfill = results[("headrace-process", "backfill30")]

    def over(anchor: str, workload: str, reference: float) -> float | None:
        value = results.get((anchor, workload))
        return round(value / reference, 2) if value is not None else None

    return {
        "headrace_inprocess_ms_per_task": round(base * 1000 / TASKS["fan"], 4),
        "headrace_pool_ms_per_task": round(
            results[("headrace-process", "fan")] * 1000 / TASKS["fan"], 4
        ),
        "dagster_over_headrace": over("dagster", "fan", base),
        "prefect_over_headrace": over("prefect", "fan", base),
        "headrace_inprocess_chain_ms_per_task": round(
            results[("headrace-inprocess", "chain")] * 1000 / CHAIN, 4
        ),
        "headrace_pool_chain_ms_per_task": round(
            results[("headrace-process", "chain")] * 1000 / CHAIN, 4
        ),
        "headrace_run_overhead_s": round(pool_etl - ETL_TASK_SECONDS, 3),
        "headrace_run_overhead_cold_s": round(cold["headrace-process"] - ETL_TASK_SECONDS, 3),
        "headrace_backfill_30_s": round(pool_backfill, 3),
        "dagster_run_over_headrace": over("dagster", "etl", pool_etl),
        "prefect_run_over_headrace": over("prefect", "etl", pool_etl),
        "dagster_run_overhead_s": round(results[("dagster", "etl")] - ETL_TASK_SECONDS, 3)
        if ("dagster", "etl") in results
        else None,
        "prefect_run_overhead_s": round(results[("prefect", "etl")] - ETL_TASK_SECONDS, 3)
        if ("prefect", "etl") in results
        else None,
        "dagster_backfill_30_over_headrace": over("dagster", "backfill30", pool_backfill),
        "prefect_backfill_30_over_headrace": over("prefect", "backfill30", pool_backfill),
    }


if __name__ == "__main__":
    main()
