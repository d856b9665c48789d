"""Named points inside a load where tests make the process die for real.

The crash tests set ``HEADRACE_CRASHPOINT=<name>`` in a child process; when the load
reaches that point the process sends itself SIGKILL, exactly as an OOM kill or a
power loss would stop it — no ``finally`` block, no rollback from Python. Outside
tests the variable is unset and this costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "HEADRACE_CRASHPOINT"

#: The points a destination passes through, in order, for every write.
POINTS = ("after_stage", "after_apply", "after_quarantine", "before_commit", "after_commit")


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``HEADRACE_CRASHPOINT`` equals ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
