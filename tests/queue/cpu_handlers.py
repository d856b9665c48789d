"""Module-level handlers for process-pool tests (a spawned process imports them by name)."""

from __future__ import annotations

import os

from headrace.queue import JobInfo


def count_primes(info: JobInfo) -> dict[str, int]:
    """CPU-bound: count primes below ``info.data['below']``; report the process id."""
    below = int(info.data["below"])
    sieve = bytearray([1]) * below
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(below**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return {"primes": sum(sieve), "pid": os.getpid()}
