"""The prompt that asks an assistant to explain a failed run, with the evidence attached."""

from __future__ import annotations

import json

from headrace.mcp import read_tools
from headrace.mcp.mcp_context import McpContext

#: Log lines of each failed task put into the prompt.
LOG_TAIL = 40


def explain_failed_run(ctx: McpContext, run_id: str) -> str:
    """A prompt holding a run's error, its failed tasks with their log tails, and its failed checks.

    Args:
        ctx: the server's context.
        run_id: the run (id or unique prefix).
    """
    detail = read_tools.run_detail(ctx, run_id)
    run = detail["run"]
    failed = [
        t for t in detail["tasks"] if t["state"] in ("failed", "upstream_failed", "up_for_retry")
    ]
    parts = [
        f"Explain why run {run['run_id']} of pipeline {run['pipeline']!r} ended {run['state']}, "
        "what the root cause most likely is, and what to do next (fix, then `headrace resume "
        f"{run['run_id']}` or the resume_run tool). Be specific; quote the evidence you rely on.",
        "",
        f"Run error: {run['error'] or '(none recorded)'}",
        f"Logical date: {run['logical_date']}; params: {json.dumps(run['params'])}",
        "",
        "Tasks that did not succeed:",
    ]
    if not failed:
        parts.append("(none)")
    for task in failed:
        parts.append(
            f"- {task['task_id']}: {task['state']} after {task['attempt']} attempt(s); "
            f"{task['error_kind'] or ''} {task['error'] or ''}".rstrip()
        )
        if task["state"] != "upstream_failed" and task["map_index"] < 0:
            logs = read_tools.task_logs(ctx, run["run_id"], task["task_id"], LOG_TAIL, None)
            parts.append(
                "  logs (last lines):\n" + "\n".join("    " + line for line in logs.splitlines())
            )
    checks = read_tools.run_checks(ctx, run["run_id"], None)["checks"]
    bad = [c for c in checks if c["status"] != "passed"]
    parts += ["", "Checks that failed:" if bad else "Checks: all passed (or none ran)."]
    for check in bad:
        parts.append(
            f"- {check['task_id']}: {check['expectation']}"
            + (f" on {check['column']}" if check["column"] else "")
            + f" [{check['severity']}] {check['failed']} of {check['total']} rows"
        )
    return ctx.bounded("\n".join(parts))
