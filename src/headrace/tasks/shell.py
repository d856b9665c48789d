"""A shell command as a task, templated with the run context and safely quoted."""

from __future__ import annotations

import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from headrace.errors import HeadraceError
from headrace.pipeline import Context, Task
from headrace.tasks.template import context_values, placeholders, render

__all__ = ["CommandError", "shell_task"]

_TAIL_LINES = 20


class CommandError(HeadraceError):
    """A command run by a built-in task exited with a failing code.

    Not marked terminal: a command may fail for a passing reason, so the task's
    retry policy decides. Carries the exit code and the last lines of output.
    """

    def __init__(self, message: str, *, exit_code: int, output_tail: str, **location: Any) -> None:
        super().__init__(message, **location)
        self.exit_code = exit_code
        self.output_tail = output_tail


def context_env(ctx: Context) -> dict[str, str]:
    """``HEADRACE_DS``, ``HEADRACE_RUN_ID`` ... for commands that read the environment."""
    env: dict[str, str] = {}
    for name, value in context_values(ctx).items():
        if name == "params":
            continue
        env[f"HEADRACE_{name.upper()}"] = (
            value.isoformat() if hasattr(value, "isoformat") else str(value)
        )
    return env


# Kills the command's whole process group once its stdin closes: when the task ends,
# or when the worker running the task dies (killed on timeout, kill -9). Without it a
# timed-out task's command and its children would live on as orphans, still writing.
# It starts before the command and learns the command's process group on its stdin,
# so only the write of one line separates the command's start from its protection.
_WATCHDOG = 'read -r pgid || exit 0; cat >/dev/null; kill -KILL "-$pgid" 2>/dev/null; exit 0'


def run_command(
    argv: Sequence[str],
    ctx: Context,
    *,
    what: str,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
    clean: Callable[[str], str] | None = None,
) -> str | None:
    """Run ``argv``, logging each output line to ``ctx.log``; return the last line.

    Args:
        clean: applied to every output line before it is logged or kept (dbt strips
            its ANSI colour codes with it).

    Raises:
        CommandError: the exit code is not in ``ok_codes``; names the task, the code
            and the last lines of output.
    """
    full_env = {**os.environ, **context_env(ctx), **(env or {})}
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    # stderr joins stdout so the log keeps the order the command wrote them in; the
    # command leads its own process group so the watchdog can stop all of it.
    watchdog = subprocess.Popen(
        ["/bin/sh", "-c", _WATCHDOG, "watchdog"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert watchdog.stdin is not None
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except BaseException:
        watchdog.stdin.close()
        watchdog.wait()
        raise
    watchdog.stdin.write(f"{proc.pid}\n".encode())
    watchdog.stdin.flush()
    with proc:
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                line = line.rstrip("\n")
                if clean is not None:
                    line = clean(line)
                ctx.log.info("%s", line)
                tail.append(line)

        # Read in a thread: a background process left by the command keeps the pipe
        # open, so end-of-output cannot be what tells that the command finished.
        reader = threading.Thread(target=pump, name=f"headrace-{what}-output", daemon=True)
        reader.start()
        try:
            code = proc.wait()
        finally:
            watchdog.stdin.close()  # the command is done: leftovers in its group go too
            watchdog.wait()
            reader.join(10)
    if code not in ok_codes:
        output = "\n".join(tail)
        shown = f"; last output:\n{output}" if output else " and printed nothing"
        raise CommandError(
            f"{what} exited with code {code}{shown}",
            exit_code=code,
            output_tail=output,
            pipeline=ctx.pipeline,
            run_id=ctx.run_id,
        )
    return tail[-1] if tail else None


def shell_task(
    command: str,
    *,
    task_id: str,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    shell: str = "/bin/sh",
    ok_codes: Sequence[int] = (0,),
    **options: Any,
) -> Task[..., str | None]:
    """A task that runs a shell command templated with the run context.

    ``{{ ds }}``, ``{{ data_interval_start }}``, ``{{ params.name }}`` ... are replaced
    by their values passed through :func:`shlex.quote`, so a value can never become
    shell syntax. Write placeholders outside quotes (``rm -f /tmp/x_{{ ds }}*``, not
    ``"{{ ds }}"``). The same values are in the environment as ``HEADRACE_DS``,
    ``HEADRACE_RUN_ID`` ...

    Args:
        command: the command line, run with ``shell -c``.
        task_id: the task's name.
        env: extra environment variables.
        cwd: working folder.
        shell: the shell to run the command with.
        ok_codes: exit codes counted as success.
        options: task policies passed to ``@task`` (retries, timeout, sla, pool, ...).

    Returns:
        A :class:`~headrace.pipeline.Task` whose result is the last output line.
        Define it at module level of the pipeline file and call it in the pipeline.

    Example:
        >>> cleanup = shell_task("rm -rf /tmp/staging/customers_{{ ds }}*", task_id="cleanup_temp_files")
    """
    what = f"shell task {task_id!r}"
    placeholders(command, task=task_id)  # unknown names fail when the file is loaded

    def run_shell(ctx: Context) -> str | None:
        rendered = render(command, context_values(ctx), task=task_id)
        ctx.log.info("$ %s", rendered)
        return run_command(
            [shell, "-c", rendered], ctx, what=what, cwd=cwd, env=env, ok_codes=ok_codes
        )

    run_shell.__name__ = run_shell.__qualname__ = task_id
    run_shell.__doc__ = f"Run: {command}"
    return Task(run_shell, task_id=task_id, **options)
