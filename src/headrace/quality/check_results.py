"""Results of expectations: per expectation, per table, and the rows that go on.

:class:`CheckReport` holds the results of a set of expectations on one table (or of
SQL tests); :class:`CheckOutcome` adds the rows that pass and the rows quarantined.
Both turn into :class:`~headrace.state.store_base.CheckResultRecord` for the state store and
raise :class:`~headrace.quality.quality_errors.ExpectationsFailed` for ``fail`` severities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

from headrace.errors import did_you_mean
from headrace.quality.expectations import RowExpectation, Severity, TableExpectation
from headrace.quality.quality_errors import ExpectationDefinitionError, ExpectationsFailed
from headrace.quality.values import json_safe
from headrace.state.store_base import CheckResultRecord

SAMPLE_ROWS = 5
ROW_INDEX = "_hr_row"  # position of the row in the checked table, in samples


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


@dataclass
class ExpectationResult:
    """The outcome of one expectation.

    Row-level expectations count rows; a table-level one counts as one check
    (``total`` 1, ``failed`` 0 or 1) and reports what it saw in ``observed``. A SQL
    test only knows its failing rows, so its ``total`` equals ``failed`` and
    ``failed_pct`` is None.
    """

    name: str
    kind: str
    severity: Severity
    status: CheckStatus
    total: int
    failed: int
    column: str | None = None
    reason: str = ""
    sample: list[dict[str, Any]] = field(default_factory=list)
    observed: Any = None
    failed_pct: float | None = None

    def __post_init__(self) -> None:
        if self.failed_pct is None and self.kind != "sql_test":
            self.failed_pct = round(100.0 * self.failed / self.total, 4) if self.total else 0.0

    @property
    def passed(self) -> bool:
        return self.status is CheckStatus.PASSED

    def details(self) -> dict[str, Any]:
        """JSON-safe details stored with the record (percentage, reason, sample, observed)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "failed_pct": self.failed_pct,
            "reason": self.reason,
            "sample": json_safe(self.sample),
        }
        if self.observed is not None:
            out["observed"] = json_safe(self.observed)
        return out

    def to_record(self, run_id: str, task_id: str) -> CheckResultRecord:
        return CheckResultRecord(
            run_id=run_id,
            task_id=task_id,
            expectation=self.name,
            severity=self.severity.value,
            status=self.status.value,
            total=self.total,
            failed=self.failed,
            column=self.column,
            details=self.details(),
        )

    def line(self) -> str:
        """One line for messages: name, column, counts, why, and a short sample."""
        on = f" on column {self.column!r}" if self.column else ""
        if self.kind == "sql_test":
            counts = f"{self.failed} failing rows"
        elif self.observed is not None or self.kind in _TABLE_KINDS:
            counts = "failed"
        else:
            counts = f"{self.failed} of {self.total} rows ({self.failed_pct:.2f}%) failed"
        text = f"- {self.name}{on}: {counts}: {self.reason}"
        if self.sample:
            shown = "; ".join(json.dumps(json_safe(r), ensure_ascii=False) for r in self.sample[:3])
            text += f"\n    sample: {shown}"
        return text


_TABLE_KINDS = ("row_count_between", "stat_between", "freshness", "schema_is")


def row_result(
    check: RowExpectation, n_rows: int, failed: int, judged: int, sample: list[dict[str, Any]]
) -> ExpectationResult:
    """The result of a row-level expectation from its counts, wherever they were taken.

    Args:
        n_rows: rows checked.
        failed: rows that fail it.
        judged: rows ``mostly`` counts (``n_rows`` without ``mostly``).
        sample: some failing rows, JSON-safe.
    """
    ok, note = check.passes(failed, judged)
    return ExpectationResult(
        name=check.name,
        kind=check.kind,
        severity=check.severity,
        status=CheckStatus.PASSED if ok else CheckStatus.FAILED,
        total=n_rows,
        failed=failed,
        column=check.column,
        reason=check.row_reason() + note,
        sample=sample,
    )


def table_result(
    check: TableExpectation,
    values: list[Any],
    n_rows: int,
    schema: pa.Schema,
    where: Mapping[str, str | None],
) -> ExpectationResult:
    """Judge a table-level expectation on its aggregate ``values``; one check, passed or failed.

    Raises:
        ExpectationDefinitionError: the expectation cannot be judged on this table
            (located by ``where``'s fields: pipeline, task, table).
    """
    try:
        verdict = check.judge(values, n_rows, schema)
    except ExpectationDefinitionError as exc:
        raise exc.located(**where) from None  # the same error, located: nothing is lost
    return ExpectationResult(
        name=check.name,
        kind=check.kind,
        severity=check.severity,
        status=CheckStatus.PASSED if verdict.ok else CheckStatus.FAILED,
        total=1,
        failed=0 if verdict.ok else 1,
        column=check.column,
        reason=verdict.message if verdict.ok else (check.reason or verdict.message),
        observed=verdict.observed,
    )


def sample_rows(
    table: pa.Table, positions: Mapping[int, list[int]]
) -> dict[int, list[dict[str, Any]]]:
    """Per key, the rows at its positions as JSON-safe dicts with their row index first.

    Each row is read once, however many keys list it.
    """
    wanted = sorted({pos for listed in positions.values() for pos in listed})
    if not wanted:
        return {}
    rows: list[dict[str, Any]] | None = None
    if all(column.num_chunks <= 1 for column in table.columns):
        try:
            rows = table.take(wanted).to_pylist()  # one chunk: nothing to concatenate first
        except pa.ArrowNotImplementedError:  # a type take cannot gather
            rows = None
    if rows is None:
        # One-row slices are zero-copy; Table.take would first concatenate every chunk of
        # every column (tens of milliseconds on a multi-row-group Parquet table).
        rows = [row for pos in wanted for row in table.slice(pos, 1).to_pylist()]
    at = {pos: {ROW_INDEX: pos, **json_safe(row)} for pos, row in zip(wanted, rows, strict=True)}
    return {key: [dict(at[pos]) for pos in listed] for key, listed in positions.items()}


@dataclass
class CheckReport:
    """Results of the expectations on one table of one task.

    Args:
        results: one per expectation, in declaration order.
        pipeline: pipeline id, for messages.
        task: task id (or table name), for messages and records.
    """

    results: list[ExpectationResult]
    pipeline: str | None = None
    task: str | None = None

    def where(self) -> str:
        parts = []
        if self.pipeline:
            parts.append(f"pipeline {self.pipeline!r}")
        if self.task:
            parts.append(f"task {self.task!r}")
        return ", ".join(parts) or "checks"

    @property
    def failures(self) -> list[ExpectationResult]:
        """Failed expectations of severity ``fail`` (the ones that stop the task)."""
        return [r for r in self.results if not r.passed and r.severity is Severity.FAIL]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.passed and r.severity is Severity.WARN]

    def result(self, name: str) -> ExpectationResult:
        """The result of the expectation called ``name``."""
        for r in self.results:
            if r.name == name:
                return r
        raise ExpectationDefinitionError(
            f"no expectation named {name!r}." + did_you_mean(name, [r.name for r in self.results]),
            expectation=name,
            pipeline=self.pipeline or None,
            task=self.task or None,
        )

    def records(self, run_id: str, task_id: str | None = None) -> list[CheckResultRecord]:
        """Records for ``StateStore.record_check_results``."""
        task = task_id or self.task or ""
        return [r.to_record(run_id, task) for r in self.results]

    def summary(self) -> str:
        """Multi-line text: every failed expectation, with counts and sample rows."""
        failed = [r for r in self.results if not r.passed]
        head = f"{self.where()}: {len(self.results) - len(failed)} of {len(self.results)} expectations passed"
        return "\n".join([head, *(f"[{r.severity.value}] {r.line()[2:]}" for r in failed)])

    def raise_for_failures(self) -> None:
        """Raise :class:`ExpectationsFailed` if an expectation of severity ``fail`` failed."""
        failures = self.failures
        if not failures:
            return
        lines = [f"{len(failures)} expectation(s) with severity 'fail' failed:"]
        lines.extend(r.line() for r in failures)
        lines.append(
            "Fix the data upstream, or declare the expectation with severity='warn' (record "
            "only) or severity='quarantine' (set failing rows aside) to let the run go on."
        )
        raise ExpectationsFailed(
            "\n".join(lines), failures, pipeline=self.pipeline or None, task=self.task or None
        )


@dataclass
class CheckOutcome(CheckReport):
    """A :class:`CheckReport` plus the rows that go on and the rows set aside.

    Attributes:
        passed: rows that go on: the original columns, in the original order.
        quarantined: rows failing quarantine expectations, each once, with
            ``_hr_expectation`` and ``_hr_reason`` (``"; "``-joined when several); None if
            no row was quarantined.
        rows_in: rows of the checked table (= passed + quarantined).
    """

    passed: pa.Table = field(default_factory=lambda: pa.table({}))
    quarantined: pa.Table | None = None
    rows_in: int = 0

    @property
    def rows_quarantined(self) -> int:
        return 0 if self.quarantined is None else self.quarantined.num_rows


class ReportTally:
    """The results of the same expectations over successive batches, one result each.

    A streamed sync checks each batch alone; the store wants one result per expectation
    for the whole load: counts add up, samples keep the first :data:`SAMPLE_ROWS` failing
    rows (their ``_hr_row`` counted from the first batch), and an expectation failed if
    it failed on any batch.

    Example:
        >>> tally = ReportTally()
        >>> for batch in batches:
        ...     tally.add(apply_checks(batch, checks), rows=batch.num_rows)
        >>> store.record_check_results(tally.records(run_id, task_id))
    """

    def __init__(self) -> None:
        self._results: dict[str, ExpectationResult] = {}
        self._rows = 0

    def add(self, report: CheckReport, rows: int = 0) -> None:
        """Count ``report`` in; ``rows``: how many rows it checked (offsets the next samples)."""
        for result in report.results:
            sample = [{**row, ROW_INDEX: row[ROW_INDEX] + self._rows} if ROW_INDEX in row else row
                      for row in result.sample]  # fmt: skip
            seen = self._results.get(result.name)
            if seen is None:
                self._results[result.name] = ExpectationResult(
                    name=result.name, kind=result.kind, severity=result.severity, status=result.status,
                    total=result.total, failed=result.failed, column=result.column, reason=result.reason,
                    sample=sample[:SAMPLE_ROWS], observed=result.observed, failed_pct=result.failed_pct,
                )  # fmt: skip
                continue
            seen.total += result.total
            seen.failed += result.failed
            seen.sample = (seen.sample + sample)[:SAMPLE_ROWS]
            if not result.passed:
                seen.status, seen.reason = CheckStatus.FAILED, result.reason
            if seen.kind != "sql_test":
                seen.failed_pct = round(100.0 * seen.failed / seen.total, 4) if seen.total else 0.0
        self._rows += rows

    def clear(self) -> None:
        """Forget what was counted (the batches are read again)."""
        self._results.clear()
        self._rows = 0

    @property
    def results(self) -> list[ExpectationResult]:
        return list(self._results.values())

    def records(self, run_id: str, task_id: str) -> list[CheckResultRecord]:
        """Records for ``StateStore.record_check_results``."""
        return [r.to_record(run_id, task_id) for r in self._results.values()]
