"""Failing tasks: retried, terminal, timed out, unsupported results."""

from __future__ import annotations

import time
from datetime import timedelta

from headrace import Context, Retry, pipeline, task
from headrace.errors import TerminalError


@task(
    retries=Retry(
        attempts=3, delay=timedelta(minutes=5), backoff=2.0, max_delay=timedelta(minutes=8)
    )
)
def flaky(ctx: Context) -> int:
    if ctx.attempt < ctx.params["succeed_on"]:
        raise ConnectionError(f"attempt {ctx.attempt} lost the connection")
    return ctx.attempt


@task
def after(value: int) -> int:
    return value * 10


@pipeline(params={"succeed_on": 3})
def retrying():
    after(flaky())


@task(retries=5)
def terminal() -> int:
    raise TerminalError("the source table does not exist")


@task
def downstream_a(value: int) -> int:
    return value


@task
def downstream_b(value: int) -> int:
    return value


@task
def independent() -> str:
    return "ran"


@pipeline
def broken():
    downstream_b(downstream_a(terminal()))
    independent()


@task(timeout=1, retries=Retry(attempts=2, delay=0))
def sleepy() -> str:
    time.sleep(30)
    return "woke"


@pipeline
def slow():
    sleepy()


@task
def odd_result() -> object:
    return object()


@pipeline
def odd():
    odd_result()
