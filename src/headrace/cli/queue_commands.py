"""``headrace worker`` and ``headrace queue ...``: run workers, inspect and feed queues."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from headrace.cli.typer_app import app, console, load_settings
from headrace.config import mask_url
from headrace.errors import ConfigError, UnavailableError, UsageError, did_you_mean
from headrace.queue import JobOptions, Queue, QueueConnection, RateLimit, Worker
from headrace.queue.connection import DEFAULT_PREFIX, PREFIX_ENV, REDIS_URL_ENV
from headrace.queue.worker import DEFAULT_LOCK_DURATION_MS, DEFAULT_STALLED_INTERVAL_MS

TASK_QUEUE = "headrace-tasks"  # = headrace.executors.distributed.TASK_QUEUE, imported lazily

queue_app = typer.Typer(help="Inspect and feed BullMQ-compatible job queues.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")

_REDIS_URL = typer.Option(
    None, "--redis-url", envvar=REDIS_URL_ENV, help="Redis URL.", show_default=False
)
_PREFIX = typer.Option(DEFAULT_PREFIX, "--prefix", envvar=PREFIX_ENV, help="BullMQ key prefix.")


#: Seconds a command waits for Redis before it says it cannot reach it.
REACH_TIMEOUT = 3.0


def _connection(redis_url: str | None, prefix: str) -> QueueConnection:
    """The queue connection of a command, checked to answer (see :func:`ensure_reachable`)."""
    base = QueueConnection.from_env({})
    connection = QueueConnection(url=redis_url or base.url, prefix=prefix)
    ensure_reachable(connection.url)
    return connection


def ensure_reachable(url: str, timeout: float = REACH_TIMEOUT) -> None:
    """Ping Redis once, without retries; an unreachable server is one clear error at once.

    The queue clients retry a lost connection for minutes (right for a worker whose
    Redis restarts, wrong for a command a user just typed).

    Raises:
        UnavailableError: naming the URL (password masked) and the driver's reason.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise UnavailableError(
            f"Redis is unreachable: {str(exc).rstrip('.')}. Start it or pass --redis-url "
            f"(or set {REDIS_URL_ENV}).",
            service=mask_url(url),
        ) from exc
    finally:
        client.close()


def load_handler(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function``; clear errors naming what is missing."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--handler {spec!r}: expected 'package.module:function'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"--handler {spec!r}: cannot import module {module_name!r} ({exc}); "
            f"is it installed or on PYTHONPATH?"
        ) from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(
            f"--handler {spec!r}: module {module_name!r} has no function {attr!r}."
            + did_you_mean(attr, names)
        )
    return handler


@app.command("worker")
def worker_command(
    queue_name: str = typer.Argument(
        TASK_QUEUE, help="Queue to take jobs from (default: the pipeline task queue)."
    ),
    handler: str | None = typer.Option(
        None,
        "--handler",
        help="Job handler 'package.module:function'; without it, run pipeline tasks.",
    ),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, help="Jobs at the same time."),
    processes: int | None = typer.Option(
        None, "--processes", min=1, help="Run the handler in this many processes (CPU-heavy work)."
    ),
    rate_max: int | None = typer.Option(
        None, "--rate-max", min=1, help="Rate limit: jobs per window."
    ),
    rate_ms: int = typer.Option(
        1000, "--rate-ms", min=1, help="Rate limit window in milliseconds."
    ),
    lock_ms: int = typer.Option(DEFAULT_LOCK_DURATION_MS, "--lock-ms", help="Job lock duration."),
    stalled_ms: int = typer.Option(
        DEFAULT_STALLED_INTERVAL_MS, "--stalled-ms", help="Stalled-job check interval."
    ),
    name: str | None = typer.Option(None, "--name", help="Worker name (Redis CLIENT LIST)."),
    redis_url: str | None = _REDIS_URL,
    prefix: str = _PREFIX,
) -> None:
    """Process jobs of QUEUE until SIGTERM/SIGINT; running jobs finish first.

    Without --handler the worker runs pipeline task attempts sent by runs that use
    the distributed executor (each attempt in its own process).
    """
    connection = _connection(redis_url, prefix)
    if handler is None:
        from headrace.engine.attempt import run_work_item
        from headrace.executors.distributed import TaskWorker

        # The worker's own settings (connections, state store): jobs carry no secrets.
        task_worker = TaskWorker(connection, queue_name, concurrency=concurrency, name=name,
                                 run_item=run_work_item, settings=load_settings())  # fmt: skip
        _announce(task_worker.worker, "pipeline-task worker", queue_name, connection, concurrency)
        task_worker.run_sync()
        console.print("worker stopped")
        return
    worker = Worker(
        queue_name,
        load_handler(handler),
        connection=connection,
        concurrency=concurrency,
        processes=processes,
        limiter=RateLimit(rate_max, rate_ms) if rate_max else None,
        lock_duration_ms=lock_ms,
        stalled_interval_ms=stalled_ms,
        name=name,
    )
    _announce(worker, "worker", queue_name, connection, concurrency)
    worker.run_sync()
    console.print("worker stopped")


def _announce(
    worker: Worker, kind: str, queue_name: str, connection: QueueConnection, concurrency: int
) -> None:
    worker.on(
        "completed",
        lambda job, result: console.print(
            f"[green]completed[/] {escape(str(job.name))} {escape(str(job.id))}"
        ),
    )
    worker.on(
        "failed",
        lambda job, err: console.print(
            f"[red]failed[/] {escape(str(job.name))} {escape(str(job.id))}: {escape(str(err))}"
        ),
    )
    worker.on(
        "stalled",
        lambda job_id: console.print(f"[yellow]recovered stalled job[/] {escape(str(job_id))}"),
    )
    console.print(
        f"{escape(kind)} on queue [bold]{escape(queue_name)}[/] at {escape(str(connection))}, concurrency {concurrency}"
    )


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@queue_app.command("counts")
def counts_command(
    queue_name: str = typer.Argument(..., help="Queue name."),
    redis_url: str | None = _REDIS_URL,
    prefix: str = _PREFIX,
) -> None:
    """Jobs per state."""

    async def body() -> dict[str, int]:
        async with Queue(queue_name, _connection(redis_url, prefix)) as queue:
            return await queue.counts()

    counts = _run(body())
    table = Table("state", "jobs", title=f"queue {queue_name}")
    for state, n in counts.items():
        table.add_row(state, str(n))
    console.print(table)


@queue_app.command("jobs")
def jobs_command(
    queue_name: str = typer.Argument(..., help="Queue name."),
    state: str = typer.Option(
        "failed", "--state", help="waiting, delayed, active, completed, failed, ..."
    ),
    limit: int = typer.Option(20, "--limit", min=1),
    redis_url: str | None = _REDIS_URL,
    prefix: str = _PREFIX,
) -> None:
    """The newest jobs in one state, with attempts and failure reasons."""

    async def body() -> list[tuple[str, ...]]:
        async with Queue(queue_name, _connection(redis_url, prefix)) as queue:
            return [
                (
                    j.id,
                    j.name,
                    str(j.attempts_made),
                    j.failed_reason or "",
                    json.dumps(j.return_value),
                )
                for j in await queue.jobs([state], 0, limit - 1)
            ]

    table = Table(
        "id", "name", "attempts", "failed reason", "result", title=f"{queue_name}: {state}"
    )
    for row in _run(body()):
        table.add_row(*(Text(str(cell)) for cell in row))
    console.print(table)


@queue_app.command("add")
def add_command(
    queue_name: str = typer.Argument(..., help="Queue name."),
    job_name: str = typer.Argument(..., help="Job name."),
    data: str = typer.Option("{}", "--data", help="Job payload as JSON."),
    attempts: int | None = typer.Option(None, "--attempts", min=1),
    delay_ms: int | None = typer.Option(None, "--delay-ms", min=0),
    job_id: str | None = typer.Option(None, "--job-id"),
    redis_url: str | None = _REDIS_URL,
    prefix: str = _PREFIX,
) -> None:
    """Add one job; prints its id."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--data is not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc

    async def body() -> str:
        async with Queue(queue_name, _connection(redis_url, prefix)) as queue:
            options = JobOptions(attempts=attempts, delay_ms=delay_ms, job_id=job_id)
            return (await queue.add(job_name, payload, options)).id

    console.print(Text(str(_run(body()))))


@queue_app.command("repeatables")
def repeatables_command(
    queue_name: str = typer.Argument(..., help="Queue name."),
    redis_url: str | None = _REDIS_URL,
    prefix: str = _PREFIX,
) -> None:
    """Registered repeatable jobs and their next run."""

    async def body() -> list[Any]:
        async with Queue(queue_name, _connection(redis_url, prefix)) as queue:
            return await queue.repeatables()

    table = Table(
        "id", "job name", "schedule", "next run (UTC)", title=f"{queue_name}: repeatables"
    )
    for r in _run(body()):
        schedule = r.pattern or f"every {r.every_ms} ms"
        next_run = (
            datetime.fromtimestamp(r.next_ms / 1000, tz=UTC).isoformat() if r.next_ms else "-"
        )
        table.add_row(Text(str(r.id)), Text(str(r.name)), Text(str(schedule)), Text(str(next_run)))
    console.print(table)
