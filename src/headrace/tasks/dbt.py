"""A dbt command as a task (``dbt test --select customers``), when dbt is installed.

dbt's test results become headrace check results: after the command, the task reads
dbt's ``target/run_results.json`` (and ``manifest.json`` for the tested column and the
configured severity) and records one result per test, shown by ``headrace checks RUN``
and the web UI beside the pipeline's own expectations. dbt's ANSI colour codes are
stripped from the stored log lines, the returned line and error texts.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headrace.errors import ConfigError, QualityError
from headrace.pipeline import Context, Task
from headrace.state.store_base import CheckResultRecord
from headrace.tasks.shell import CommandError, run_command
from headrace.tasks.template import context_values, placeholders, render

__all__ = ["DbtNotInstalled", "DbtTestsFailed", "dbt_task", "strip_ansi", "dbt_test_results"]

# CSI sequences (colours, cursor moves) and the two-character escapes a terminal logger may write.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_TEST_PREFIXES = ("test.", "unit_test.")


class DbtNotInstalled(ConfigError):
    """The ``dbt`` executable is not on PATH (terminal: retrying cannot help).

    Args:
        executable: the executable looked for.
        location: pipeline, task as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(self, executable: str, **location: Any) -> None:
        self.executable = executable
        super().__init__(
            f"{executable!r} is not on PATH. Install dbt with its adapter in the environment that "
            "runs tasks, e.g. `pip install dbt-core dbt-postgres` (or dbt-duckdb).",
            **location,
        )


class DbtTestsFailed(QualityError):
    """dbt tests failed (or errored); their results are recorded as check results.

    Attributes:
        failed: names of the tests that did not pass.
    """

    def __init__(self, message: str, failed: list[str], **location: Any) -> None:
        super().__init__(message, **location)
        self.failed = failed


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (dbt colours its output).

    Example:
        >>> strip_ansi("\\x1b[32mPASS\\x1b[0m not_null_customers_id")
        'PASS not_null_customers_id'
    """
    return _ANSI.sub("", text)


def dbt_test_results(
    target_dir: Path, ctx: Context, since: float | None = None
) -> list[CheckResultRecord]:
    """dbt's test results in ``target_dir`` as check results of the running task.

    Args:
        target_dir: dbt's target folder (``run_results.json``, ``manifest.json``).
        ctx: the task's context (the run and task the results belong to).
        since: ignore a ``run_results.json`` written before this time (a stale one).

    Returns:
        One record per test node (``test.*`` and ``unit_test.*``); models are not checks.
        ``total`` is the number of failing rows dbt reports (dbt does not count the rows tested).
    """
    path = target_dir / "run_results.json"
    if not path.exists() or (since is not None and path.stat().st_mtime < since):
        return []
    results = json.loads(path.read_text()).get("results", [])
    nodes = _manifest_nodes(target_dir / "manifest.json")
    return [
        _record(result, nodes.get(str(result.get("unique_id")), {}), ctx)
        for result in results
        if str(result.get("unique_id", "")).startswith(_TEST_PREFIXES)
    ]


def _record(result: Mapping[str, Any], node: Mapping[str, Any], ctx: Context) -> CheckResultRecord:
    """One dbt test result as a check result."""
    uid = str(result["unique_id"])
    status = str(result.get("status", "")).lower()
    configured = str((node.get("config") or {}).get("severity") or "error").lower()
    failures = int(result.get("failures") or 0)
    message = result.get("message")
    name = node.get("name") or (uid.split(".")[2] if uid.count(".") >= 2 else uid)
    return CheckResultRecord(
        run_id=ctx.run_id,
        task_id=ctx.task_id,
        expectation=f"dbt {name}",
        severity="warn" if status == "warn" or configured == "warn" else "fail",
        status="passed" if status == "pass" else "skipped" if status == "skipped" else "failed",
        total=failures,
        failed=0 if status == "pass" else failures,
        column=node.get("column_name"),
        details={
            "source": "dbt",
            "dbt_status": status,
            "unique_id": uid,
            "message": strip_ansi(message) if isinstance(message, str) else None,
            "execution_time": result.get("execution_time"),
            "reason": f"dbt test {status}" + (f": {failures} failing rows" if failures else ""),
        },
    )


def _manifest_nodes(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("nodes", {}))
    except (ValueError, OSError):  # a manifest being rewritten: names then come from the ids
        return {}


def _target_dir(project_dir: Path, args: Sequence[str]) -> Path:
    """dbt's target folder: ``--target-path`` if given, else ``<project>/target``."""
    for i, arg in enumerate(args):
        if arg == "--target-path" and i + 1 < len(args):
            return project_dir / args[i + 1]
        if arg.startswith("--target-path="):
            return project_dir / arg.split("=", 1)[1]
    return project_dir / "target"


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

    Test results are recorded as check results (:func:`dbt_test_results`); when tests fail
    the task fails with :class:`DbtTestsFailed` naming them (not retried: the data is
    wrong, retrying cannot fix it).

    Args:
        command: e.g. ``"test --select customers"`` or ``["run", "-s", "orders"]``.
        task_id: the task's name.
        project_dir: the dbt project folder; may use ``{{ params.name }}`` and the other
            context placeholders (rendered when the task runs).
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
    placeholders(str(project_dir), task=task_id)  # an unknown {{ name }} fails when the file loads

    def run_dbt(ctx: Context) -> str | None:
        exe = shutil.which(executable)
        if exe is None:
            raise DbtNotInstalled(executable, pipeline=ctx.pipeline, task=task_id)
        # The folder may be a template (``{{ params.dbt_project_dir }}``), as Airflow's templated fields.
        folder = Path(render(str(project_dir), context_values(ctx), task=task_id, quote=str))
        argv = [
            exe,
            *args,
            "--project-dir",
            str(folder),
            "--vars",
            json.dumps(_dbt_vars(ctx, vars), default=str),
        ]
        if profiles_dir is not None:
            argv += ["--profiles-dir", str(profiles_dir)]
        if target is not None:
            argv += ["--target", target]
        ctx.log.info("$ %s", shlex.join(argv))
        started = time.time()
        failure: CommandError | None = None
        try:
            last = run_command(
                argv, ctx, what=what, cwd=folder, env={"DBT_USE_COLORS": "false"}, clean=strip_ansi
            )
        except CommandError as exc:
            last, failure = None, exc
        records = dbt_test_results(_target_dir(folder, args), ctx, since=started - 1)
        ctx.record_checks(records)
        failed = [r.expectation for r in records if r.status == "failed" and r.severity == "fail"]
        if failure is not None and failed:
            raise DbtTestsFailed(
                f"{len(failed)} of {len(records)} dbt tests failed: "
                f"{', '.join(failed)} (see headrace checks {ctx.run_id})",
                failed,
                pipeline=ctx.pipeline,
                task=task_id,
                run_id=ctx.run_id,
            ) from failure
        if failure is not None:
            raise failure
        return last

    run_dbt.__name__ = run_dbt.__qualname__ = task_id
    run_dbt.__doc__ = f"dbt {' '.join(args)}"
    return Task(run_dbt, task_id=task_id, **options)


def _dbt_vars(ctx: Context, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run context as dbt ``--vars``: macros, then the pipeline params, then ``extra``."""
    values = context_values(ctx)
    params = values.pop("params")
    dbt_vars = {
        k: (v.isoformat() if hasattr(v, "isoformat") else v)
        for k, v in values.items()
        if k not in ("map_index", "attempt", "task_id")
    }
    dbt_vars.update(params)
    dbt_vars.update(extra or {})
    return dbt_vars
