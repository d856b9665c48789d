"""Whether the process driving a run is still there: a pid on this host, a heartbeat elsewhere.

Used by the engine (refusing to drive a run twice, taking over a dead one) and by the
store (giving back the pool slots of dead drivers).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from headrace.state.store_base import RunRecord, RunState

HOSTNAME = socket.gethostname()


def driver_alive(
    run: RunRecord, now: datetime | None = None, stale_after: timedelta = timedelta(seconds=60)
) -> bool:
    """Whether the process driving a RUNNING run still exists.

    On this host the pid decides (a process killed with -9 is gone). For a run driven
    from another host, a heartbeat older than ``stale_after`` means it is dead.
    """
    if RunState(run.state) != RunState.RUNNING:
        return False
    if run.hostname == HOSTNAME and run.pid:
        if run.pid == os.getpid():
            return True
        try:
            os.kill(run.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _is_zombie(run.pid)
    if run.heartbeat_at is None:
        return False
    now = now or datetime.now(UTC)
    return now - run.heartbeat_at < stale_after


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
