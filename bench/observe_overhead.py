"""Benchmark: what emitting lineage and metrics adds to a run.

Two workloads, each run alternately without and with observers (OpenLineage over HTTP
to a local receiver that accepts every event, and StatsD to a local UDP socket), so the
loaded machine's drift hits both sides alike; the figure is the median of ``--repeat``
runs each (the best is printed too). Each side has one warm Runner for all its runs, as
``bench/orchestration.py`` has (``--fresh-runner``: a new one per run, as the web UI, the
scheduler and MCP tools make; the process's emitters are shared by its Runners, so only a
process's first run starts their threads and opens the connection):

* **orchestration**: ``bench/orchestration.py``'s fan-in pipeline (1,000 mapped tasks
  plus one), in-process executor, SQLite state store: the run and its two tasks send
  START/COMPLETE events (mapped elements are one job with their parent), StatsD gets
  the run's and tasks' metrics and a sample of the element durations;
* **load**: a sync of ``--rows`` rows (CSV file -> Polars transform -> one quarantine
  check -> embedded DuckDB, replaced), the reference pipeline's shape; every run really
  loads (the transform adds the run id). The load emits datasets with schema, column
  lineage, row counts and check results, and records its lineage in the state store.

Rounds alternate which side goes first (off-on, on-off, ...), so whatever going first
does (starting right after the other side's flush, with the caches its senders used)
hits both sides alike; ``--fixed-order`` runs off first in every round, as before.

Run:  .venv/bin/python bench/observe_overhead.py [--repeat 100] [--rows 200000] [--only orchestration] [--fresh-runner] [--fixed-order]
Last line: one JSON object with the wall seconds of the run (``Runner.run``, as
bench/orchestration.py times it) and the CPU seconds of the process until the run's
events and metrics were sent (median of each side), and the overhead in percent; ``_best``
keys have the best of each side, ``_paired`` the median of each round's on minus off
over the median off, ``_paired_ci90`` a bootstrap 90% interval of that median. On a
shared machine use many repeats (100 for the orchestration workload: a run's CPU varies
by several percent there, so 30 rounds leave the paired figure ±1% or so).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from orchestration import HEADRACE_FLOWS  # noqa: E402

LOAD_FLOW = """
import polars as pl
from headrace import destination, file_source, full, sync
from headrace.quality import matches_regex


def enrich(ctx, df: pl.DataFrame) -> pl.DataFrame:
    # the run id makes every run's rows new: each run really loads (no replay no-op)
    return df.with_columns(contact=pl.col("name") + " <" + pl.col("email") + ">", run=pl.lit(ctx.run_id))


people = sync(
    "people", source=file_source({csv!r}), incremental=full(), transform=enrich,
    checks=[matches_regex("email", r".+@.+", severity="quarantine", reason="bad email")],
    destination=destination("warehouse", table="people", mode="replace",
                            columns={{"contact": {{"doc": "name and e-mail", "from": ["name", "email"]}}}}),
)
load = people.pipeline(name="load")
"""


RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Marquez behind a proxy would

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Receiver:
    """An OpenLineage endpoint in its own process (its CPU is not counted as ours)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def settings_for(folder: Path, observed: bool, receiver: Receiver, udp: str) -> Any:
    from headrace.config import LineageSettings, MetricsSettings, Settings

    base = Settings(home=folder, state_url=f"sqlite:///{folder / 'state.db'}")
    if not observed:
        return base
    return Settings(
        home=folder,
        state_url=base.state_url,
        lineage=LineageSettings(url=receiver.url, queue_size=10_000),
        metrics=MetricsSettings(statsd=udp),
    )


def sender_cpu() -> float:
    """CPU seconds so far of the emitters' background threads (Linux: /proc; else 0)."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name in ("headrace-openlineage", "headrace-statsd"):
            with contextlib.suppress(OSError):
                total += (
                    int(
                        Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text().split()[0]
                    )
                    / 1e9
                )
    return total


def timed_run(runner: Any, pipe: Any, day: int, check: Any) -> tuple[float, float, float]:
    """One run: wall seconds of ``runner.run`` (what bench/orchestration.py times), CPU
    seconds of every thread of the process until the run's events and metrics are sent
    (the flush waits for the receiver's answers after the wall clock stopped: that wait is
    the receiver's, not the run's; the CPU of sending is counted), and the part of that
    CPU spent by the emitters' background threads."""
    began, cpu, senders = time.perf_counter(), time.process_time(), sender_cpu()
    result = runner.run(pipe, logical_date=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day))
    wall = time.perf_counter() - began
    assert runner.flush_observers(30), "the events of the run were not sent"
    times = (wall, time.process_time() - cpu, sender_cpu() - senders)
    assert str(result.state) == "success", result.run.error
    check(result)
    return times


def median_ci(
    values: list[float], level: float = 0.9, resamples: int = 2000
) -> tuple[float, float]:
    """A bootstrap confidence interval of the median of ``values`` (seeded: the same
    figures give the same interval): how far the paired figure can move with the noise
    of a shared machine."""
    import random

    rng = random.Random(16)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    cut = int(resamples * (1 - level) / 2)
    return medians[cut], medians[-cut - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--only", choices=("orchestration", "load"), help="Run one workload only.")
    parser.add_argument(
        "--fixed-order",
        action="store_true",
        help="Off before on in every round (the order before 2026-12) instead of alternating "
        "which side goes first.",
    )
    parser.add_argument(
        "--fresh-runner",
        action="store_true",
        help="A new Runner for every run (as the web UI and scheduler make; the emitters are "
        "the process's, shared) instead of one warm Runner per side, as bench/orchestration.py uses.",
    )
    args = parser.parse_args()
    from headrace.engine import Runner, load_pipelines
    from headrace.state import open_store

    receiver = Receiver()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    udp = f"udp://127.0.0.1:{sink.getsockname()[1]}"
    folder = Path(tempfile.mkdtemp(prefix="hr-observe-"))
    (folder / "flows.py").write_text(HEADRACE_FLOWS)
    with open(folder / "people.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "email"])
        for i in range(args.rows):
            w.writerow([i, f"name{i}", f"p{i}@example.com" if i % 100 else "nope"])
    (folder / "load.py").write_text(LOAD_FLOW.format(csv=str(folder / "people.csv")))
    fan = load_pipelines(folder / "flows.py")["fan"]
    load = load_pipelines(folder / "load.py")["load"]

    def fan_ok(result: Any) -> None:
        assert result.result_of("total") == sum(range(1000))

    def load_ok(result: Any) -> None:
        stats = result.result_of("people")
        assert stats["loaded"] + stats["quarantined"] == args.rows and not stats["already_loaded"]

    figures: dict[str, dict[str, list[tuple[float, float, float]]]] = {
        "orchestration": {"off": [], "on": []},
        "load": {"off": [], "on": []},
    }
    workloads = [
        (name, pipe, ok)
        for name, pipe, ok in (("orchestration", fan, fan_ok), ("load", load, load_ok))
        if args.only in (None, name)
    ]
    with contextlib.ExitStack() as stack:
        runners: dict[str, Any] = {}
        for side in ("off", "on"):
            home = folder / side
            home.mkdir()
            s = settings_for(home, side == "on", receiver, udp)
            store = stack.enter_context(open_store(s.state_url))
            runners[side] = stack.enter_context(Runner(store, executor="inprocess", settings=s))
        for _name, pipe, ok in workloads:  # a warm-up run each: imports, first connections
            for side in ("off", "on"):
                timed_run(runners[side], pipe, -1, ok)
        for round_ in range(args.repeat):  # alternate sides: the machine's drift hits both
            # and which goes first (off-on, then on-off): a run right after the other side's
            # flush starts with the caches the senders just used, whichever side it is
            order = ("on", "off") if round_ % 2 and not args.fixed_order else ("off", "on")
            for side in order:
                for name, pipe, ok in workloads:
                    if args.fresh_runner:  # a runner made for this run only
                        with (
                            open_store(runners[side].store.url) as store,
                            Runner(
                                store, executor="inprocess", settings=runners[side].settings
                            ) as runner,
                        ):
                            figures[name][side].append(timed_run(runner, pipe, round_, ok))
                    else:
                        figures[name][side].append(timed_run(runners[side], pipe, round_, ok))
    receiver.close()
    out: dict[str, Any] = {"repeat": args.repeat, "rows": args.rows}
    for workload, sides in figures.items():
        if not sides["off"]:
            continue
        for i, unit in ((0, "s"), (1, "cpu_s")):
            for stat, pick in (("", statistics.median), ("_best", min)):
                off, on = pick(x[i] for x in sides["off"]), pick(x[i] for x in sides["on"])
                out[f"{workload}_off_{unit}{stat}"] = round(off, 4)
                out[f"{workload}_on_{unit}{stat}"] = round(on, 4)
                out[f"{workload}_overhead_{unit}_pct{stat}"] = round(100 * (on - off) / off, 2)
                print(
                    f"{workload:>14} {unit:>5} {stat or '_median':>7}: off {off:.4f}, on {on:.4f} "
                    f"({100 * (on - off) / off:+.2f}%)"
                )
            # each round's on minus its off (they ran back to back): drift cancels out
            diffs = [b[i] - a[i] for a, b in zip(sides["off"], sides["on"], strict=True)]
            paired = statistics.median(diffs)
            off = statistics.median(x[i] for x in sides["off"])
            low, high = median_ci(diffs)
            out[f"{workload}_overhead_{unit}_pct_paired"] = round(100 * paired / off, 2)
            out[f"{workload}_overhead_{unit}_pct_paired_ci90"] = [
                round(100 * low / off, 2),
                round(100 * high / off, 2),
            ]
            print(
                f"{workload:>14} {unit:>5}  paired: median(on - off) {paired * 1000:+.2f} ms "
                f"({100 * paired / off:+.2f}% of the median off; 90% CI "
                f"{100 * low / off:+.2f}%..{100 * high / off:+.2f}%)"
            )
        senders = statistics.median(x[2] for x in sides["on"])
        out[f"{workload}_sender_threads_cpu_ms"] = round(1000 * senders, 3)
        print(
            f"{workload:>14} cpu_s  of which the emitters' background threads: {1000 * senders:.2f} ms a run (median)"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
