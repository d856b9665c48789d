"""A dbt command as a task (``dbt test --select customers``), when dbt is installed."""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headrace.errors import ConfigError
from headrace.pipeline import Context, Task
from headrace.tasks.shell import run_command
from headrace.tasks.template import context_values

__all__ = ["DbtNotInstalled", "dbt_task"]


class DbtNotInstalled(ConfigError):
    """The ``dbt`` executable is not on PATH (terminal: retrying cannot help)."""


def dbt_task(
    command: str | Sequence[str],
    *,
    task_id: str,
    project_dir: str | Path,
    profiles_dir: str | Path | None = None,
    target: str | None = None,
    vars: Mapping[str, Any] | None = None,
    executable: str = "dbt",
    **options: Any,
) -> Task[..., str | None]:
    """A task running ``dbt <command>`` in ``project_dir``.

    The run context goes to dbt as ``--vars`` (``ds``, ``data_interval_start``,
    ``data_interval_end``, ``run_id``, the pipeline params, then ``vars``), read in
    models with ``{{ var('ds') }}``. Arguments are passed as a list, never through a
    shell. Whether dbt is installed is checked when the task runs (workers may differ
    from the machine that loads the file): :class:`DbtNotInstalled` says what to install.

    Args:
        command: e.g. ``"test --select customers"`` or ``["run", "-s", "orders"]``.
        task_id: the task's name.
        project_dir: the dbt project folder.
        profiles_dir: folder of ``profiles.yml`` (dbt's default when None).
        target: dbt target name.
        vars: extra dbt vars.
        executable: the dbt executable name or path.
        options: task policies passed to ``@task``.

    Example:
        >>> dbt_test = dbt_task("test --select customers", task_id="run_dbt_tests", project_dir="/opt/dbt")
    """
    args = shlex.split(command) if isinstance(command, str) else list(command)
    what = f"dbt task {task_id!r}"

    def run_dbt(ctx: Context) -> str | None:
        exe = shutil.which(executable)
        if exe is None:
            raise DbtNotInstalled(
                f"{what} of pipeline {ctx.pipeline!r}: {executable!r} is not on PATH. Install dbt "
                "with its adapter in the environment that runs tasks, e.g. "
                "`pip install dbt-core dbt-postgres` (or dbt-duckdb)."
            )
        values = context_values(ctx)
        params = values.pop("params")
        dbt_vars = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in values.items()
            if k not in ("map_index", "attempt", "task_id")
        }
        dbt_vars.update(params)
        dbt_vars.update(vars or {})
        argv = [
            exe,
            *args,
            "--project-dir",
            str(project_dir),
            "--vars",
            json.dumps(dbt_vars, default=str),
        ]
        if profiles_dir is not None:
            argv += ["--profiles-dir", str(profiles_dir)]
        if target is not None:
            argv += ["--target", target]
        ctx.log.info("$ %s", shlex.join(argv))
        return run_command(argv, ctx, what=what, cwd=project_dir)

    run_dbt.__name__ = run_dbt.__qualname__ = task_id
    run_dbt.__doc__ = f"dbt {' '.join(args)}"
    return Task(run_dbt, task_id=task_id, **options)
