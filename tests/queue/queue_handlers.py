"""Module-level handlers: process-pool tests and worker subprocesses import them by name."""

from __future__ import annotations

import asyncio
import os

from headrace.queue import Job, JobInfo


def count_primes(info: JobInfo) -> dict[str, int]:
    """CPU-bound: count primes below ``info.data['below']``; report the process id."""
    below = int(info.data["below"])
    sieve = bytearray([1]) * below
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(below**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return {"primes": sum(sieve), "pid": os.getpid()}


async def sleep_long(job: Job) -> str:
    """Hold the job for a minute (the test kills the worker meanwhile)."""
    await job.update_progress(1)  # tells the test the handler is running
    await asyncio.sleep(60)
    return "slept"


async def quick(job: Job) -> dict[str, object]:
    """Echo the job back with the worker's process id."""
    return {"pid": os.getpid(), "name": job.name, "data": job.data}


def report_steps(info: JobInfo) -> int:
    """In a pool process: report progress 25, 50, 100; fail after 50 if ``data['fail']``."""
    for pct in (25, 50, 100):
        info.update_progress({"pct": pct, "pid": os.getpid()})
        if pct == 50 and info.data.get("fail"):
            raise ValueError(f"job {info.data['n']} failed after 50%")
    return int(info.data["n"]) * 2


def bad_progress(info: JobInfo) -> None:
    """In a pool process: report progress that JSON cannot hold."""
    info.update_progress({"rows": {1, 2}})
