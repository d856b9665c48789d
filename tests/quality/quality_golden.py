"""Loading the golden fixture files of tests/quality/golden into tables and expectations."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

import headrace.quality as quality

GOLDEN = Path(__file__).parent / "golden"
ENGINES = ("memory", "duckdb", "postgresql")

_SIMPLE = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "bool": pa.bool_(),
    "date32": pa.date32(),
}
_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_DECIMAL = re.compile(r"^decimal128\((\d+), (\d+)\)$")


def arrow_type(spec: str) -> pa.DataType:
    if spec in _SIMPLE:
        return _SIMPLE[spec]
    if m := _TIMESTAMP.match(spec):
        return pa.timestamp(m[1], tz=m[2])
    if m := _DECIMAL.match(spec):
        return pa.decimal128(int(m[1]), int(m[2]))
    raise ValueError(f"golden: unknown type {spec!r}")


def _value(raw: Any, type_: pa.DataType) -> Any:
    if raw is None:
        return None
    if pa.types.is_floating(type_):
        return float(raw)  # "NaN" -> nan
    if pa.types.is_timestamp(type_):
        return dt.datetime.fromisoformat(raw)
    if pa.types.is_date(type_):
        return dt.date.fromisoformat(raw)
    if pa.types.is_decimal(type_):
        return decimal.Decimal(raw)
    return raw


def build_table(columns: dict[str, dict[str, Any]]) -> pa.Table:
    arrays, names = [], []
    for name, spec in columns.items():
        type_ = arrow_type(spec["type"])
        arrays.append(pa.array([_value(v, type_) for v in spec["values"]], type_))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


@dataclass
class Case:
    file: str
    name: str
    table: pa.Table
    checks_spec: list[dict[str, Any]]
    expected: dict[str, dict[str, Any]]
    engines: tuple[str, ...]
    quarantined_rows: list[int] | None = None
    reference_name: str | None = None
    reference: pa.Table | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"

    def checks(self, in_database: bool) -> list[quality.Expectation]:
        """Expectations of the case; ``@reference`` is the reference table (or its name in SQL)."""
        built = []
        for spec in self.checks_spec:
            args = [
                (self.reference_name if in_database else self.reference) if a == "@reference" else a
                for a in spec.get("args", [])
            ]
            kwargs = dict(spec.get("kwargs", {}))
            if isinstance(kwargs.get("now"), str):
                kwargs["now"] = dt.datetime.fromisoformat(kwargs["now"])
            built.append(getattr(quality, spec["fn"])(*args, **kwargs))
        return built


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(GOLDEN.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for raw in data["cases"]:
            reference = raw.get("reference")
            cases.append(
                Case(
                    file=path.stem,
                    name=raw["name"],
                    table=build_table(raw["columns"]),
                    checks_spec=raw["checks"],
                    expected=raw["expected"],
                    engines=tuple(raw.get("engines", ENGINES)),
                    quarantined_rows=raw.get("quarantined_rows"),
                    reference_name=reference["name"] if reference else None,
                    reference=build_table(reference["columns"]) if reference else None,
                )
            )
    return cases
