"""Benchmark: orchestration overhead per task — headrace vs Dagster and Prefect 3.

Two workloads, each task doing almost nothing so only the orchestrator is measured:

* **chain**: 200 tasks, each returns its input + 1 (a strictly sequential graph);
* **fan-in**: 1,000 mapped tasks (each returns its element) gathered by one summing
  task (1,001 tasks).

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
plus the chain figures.
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

HERE = Path(__file__).resolve().parent
ENV = HERE / ".envs" / "orchestration"
ANCHOR_PACKAGES = ["dagster", "prefect>=3,<4"]
CHAIN, FAN = 200, 1000
TASKS = {"chain": CHAIN, "fan": FAN + 1}

HEADRACE_FLOWS = textwrap.dedent(f"""
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
    times = []
    with open_store(settings.state_url) as store:
        runner = Runner(store, executor=executor, settings=settings)
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


def run_dagster(workload: str, repeat: int) -> dict:
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
    if not python.exists() or subprocess.run(
        [str(python), "-c", "import dagster, prefect"], capture_output=True
    ).returncode != 0:
        from rich.console import Console

        Console(stderr=True).print(f"installing {', '.join(ANCHOR_PACKAGES)} into {ENV} (once)…")
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    return python


def measure(python: str, contender: str, workload: str, repeat: int, env: dict[str, str]) -> dict:
    """Run one contender on one workload in a fresh subprocess; its last stdout line is JSON."""
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--one", contender, workload, "--repeat", str(repeat)],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{contender} {workload} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of headrace (best is kept)")
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
    plan = [("headrace-inprocess", sys.executable, args.repeat), ("headrace-process", sys.executable, args.repeat)]
    env = dict(os.environ)
    if not args.skip_anchors:
        anchor = str(ensure_env())
        prefect_home = tempfile.mkdtemp(prefix="prefect-home-")
        env.update(PREFECT_HOME=prefect_home, PREFECT_LOGGING_LEVEL="WARNING", DAGSTER_HOME=tempfile.mkdtemp())
        env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        plan += [("dagster", anchor, 1), ("prefect", anchor, 1)]
    results: dict[tuple[str, str], float] = {}
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("measuring", total=len(plan) * 2)
        for contender, python, repeat in plan:
            for workload in ("chain", "fan"):
                progress.update(bar, description=f"{contender} {workload}")
                figures = measure(python, contender, workload, repeat, env)
                results[(contender, workload)] = figures["seconds"]
                ms = figures["seconds"] * 1000 / TASKS[workload]
                console.print(f"{contender:>20} {workload:>5}: {figures['seconds']:.3f} s  {ms:.3f} ms/task")
                progress.advance(bar)

    table = Table(title=f"orchestration overhead (chain {CHAIN} tasks, fan-in {FAN}+1 tasks)")
    table.add_column("contender", no_wrap=True)
    for column in ("chain s", "chain ms/task", "fan-in s", "fan-in ms/task", "fan-in vs headrace"):
        table.add_column(column, justify="right")
    base = results[("headrace-inprocess", "fan")]
    for contender, _, _ in plan:
        chain, fan = results[(contender, "chain")], results[(contender, "fan")]
        table.add_row(
            contender, f"{chain:.3f}", f"{chain * 1000 / TASKS['chain']:.3f}", f"{fan:.3f}",
            f"{fan * 1000 / TASKS['fan']:.3f}", f"{fan / base:.1f}×",
        )
    console.print(table)
    summary = {
        "headrace_inprocess_ms_per_task": round(base * 1000 / TASKS["fan"], 4),
        "headrace_pool_ms_per_task": round(results[("headrace-process", "fan")] * 1000 / TASKS["fan"], 4),
        "dagster_over_headrace": round(results[("dagster", "fan")] / base, 1) if ("dagster", "fan") in results else None,
        "prefect_over_headrace": round(results[("prefect", "fan")] / base, 1) if ("prefect", "fan") in results else None,
        "headrace_inprocess_chain_ms_per_task": round(results[("headrace-inprocess", "chain")] * 1000 / CHAIN, 4),
        "headrace_pool_chain_ms_per_task": round(results[("headrace-process", "chain")] * 1000 / CHAIN, 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
