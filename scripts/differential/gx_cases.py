"""The messy table, the expectation matrix, and Great Expectations' verdicts (runs in the GX venv).

The table is generated with the standard library's seeded ``random`` and stored in the
fixture itself, so the test rebuilds exactly these rows without this generator. Each
expectation is declared twice: as headrace calls it and as the GX 1.x expectation users
would write; GX validates a pandas DataFrame made from the Arrow table with
``to_pandas()`` (what a user of both tools does).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

SEED = 20240604
ROWS = 1000
EMAIL = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"
UTC = dt.UTC


def _table() -> dict[str, dict[str, Any]]:
    """Column name -> {"type": arrow type, "values": [...]} (JSON-safe)."""
    rng = random.Random(SEED)
    ids: list[int | None] = list(range(1, ROWS + 1))
    rng.shuffle(ids)
    for i in rng.sample(range(ROWS), 20):
        ids[i] = ids[rng.randrange(ROWS)]  # duplicates
    for i in rng.sample(range(ROWS), 10):
        ids[i] = None
    good = [
        "anna.smith@example.com",
        "ben@mail.org",
        "café@exemple.fr",
        "日本語@例え.jp",
        "x_y@corp.co.uk",
    ]
    bad = [
        "anna.at.example.com",
        "a b@c.de",
        "a@b",
        "a@@b.c",
        "a@b.co\n",
        "a\xa0b@c.de",
        "@x.de",
        "b@c.de ",
    ]
    emails = [rng.choice(bad) if rng.random() < 0.06 else rng.choice(good) for _ in range(ROWS)]
    codes = [
        rng.choice(["１２３４５", "1234", "日本語", "a1234", "123456"])
        if rng.random() < 0.05
        else f"{rng.randrange(100000):05d}"
        for _ in range(ROWS)
    ]
    names = [
        rng.choice(["anna", "café", "日本語", "a b", "x_y", "R2D2", "\u2003", "Zoë"])
        for _ in range(ROWS)
    ]
    amount: list[Any] = [round(rng.uniform(-50, 1100), 2) for _ in range(ROWS)]
    for i in rng.sample(range(ROWS), 10):
        amount[i] = None
    for i in rng.sample(range(ROWS), 10):
        amount[i] = "NaN"
    qty = [None if rng.random() < 0.03 else rng.randrange(0, 12) for _ in range(ROWS)]
    big = [rng.randrange(2**53, 2**54) for _ in range(ROWS)]  # the sum passes 2**63
    flag = [None if rng.random() < 0.02 else rng.random() < 0.7 for _ in range(ROWS)]
    flag2 = [rng.random() < 0.7 for _ in range(ROWS)]
    country = [
        rng.choice(["DE", "FR", "US", "NL", "xx", "Deutschland"])
        if rng.random() < 0.1
        else rng.choice(["DE", "FR", "US"])
        for _ in range(ROWS)
    ]
    a = [None if rng.random() < 0.05 else rng.randrange(40) for _ in range(ROWS)]
    b = [None if rng.random() < 0.05 else rng.choice("pqrstuvw") for _ in range(ROWS)]
    start = dt.datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    created = [
        dt.datetime.fromtimestamp(start + rng.randrange(0, 6 * 365 * 86400), UTC)
        .isoformat()
        .replace("+00:00", "Z")
        for _ in range(ROWS)
    ]
    return {
        "id": {"type": "int64", "values": ids},
        "email": {"type": "string", "values": [None if rng.random() < 0.02 else e for e in emails]},
        "code": {"type": "string", "values": codes},
        "name": {"type": "string", "values": names},
        "amount": {"type": "float64", "values": amount},
        "qty": {"type": "int64", "values": qty},
        "big": {"type": "int64", "values": big},
        "flag": {"type": "bool", "values": flag},
        "flag2": {"type": "bool", "values": flag2},
        "country": {"type": "dictionary", "values": country},
        "a": {"type": "int64", "values": a},
        "b": {"type": "string", "values": b},
        "created_at": {"type": "timestamp[us, tz=UTC]", "values": created},
    }


def _e(
    ident: str, fn: str, args: list[Any], gx: str, gx_kwargs: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    return {
        "id": ident,
        "headrace": {"fn": fn, "args": args, "kwargs": kwargs},
        "gx": {"type": gx, "kwargs": gx_kwargs},
    }


def matrix() -> list[dict[str, Any]]:
    """Each expectation as headrace and GX spell it."""
    nn, uq, rx = (
        "ExpectColumnValuesToNotBeNull",
        "ExpectColumnValuesToBeUnique",
        "ExpectColumnValuesToMatchRegex",
    )
    bt, inset = "ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeInSet"
    return [
        _e("not_null id", "not_null", ["id"], nn, {"column": "id"}),
        _e("not_null email", "not_null", ["email"], nn, {"column": "email"}),
        _e("not_null amount (NaN is null)", "not_null", ["amount"], nn, {"column": "amount"}),
        _e(
            "not_null email mostly 0.97",
            "not_null",
            ["email"],
            nn,
            {"column": "email", "mostly": 0.97},
            mostly=0.97,
        ),
        _e(
            "not_null email mostly 0.99",
            "not_null",
            ["email"],
            nn,
            {"column": "email", "mostly": 0.99},
            mostly=0.99,
        ),
        _e("unique id", "unique", ["id"], uq, {"column": "id"}),
        _e(
            "unique id mostly 0.9",
            "unique",
            ["id"],
            uq,
            {"column": "id", "mostly": 0.9},
            mostly=0.9,
        ),
        _e(
            "unique a, b",
            "unique",
            ["a", "b"],
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["a", "b"]},
        ),
        _e(
            "regex email",
            "matches_regex",
            ["email", EMAIL],
            rx,
            {"column": "email", "regex": EMAIL},
        ),
        _e(
            "regex email mostly 0.9",
            "matches_regex",
            ["email", EMAIL],
            rx,
            {"column": "email", "regex": EMAIL, "mostly": 0.9},
            mostly=0.9,
        ),
        _e(
            "regex email mostly 0.99",
            "matches_regex",
            ["email", EMAIL],
            rx,
            {"column": "email", "regex": EMAIL, "mostly": 0.99},
            mostly=0.99,
        ),
        _e(
            "regex code digits",
            "matches_regex",
            ["code", r"^\d{5}$"],
            rx,
            {"column": "code", "regex": r"^\d{5}$"},
        ),
        _e(
            "regex code ascii digits",
            "matches_regex",
            ["code", r"^[0-9]{5}$"],
            rx,
            {"column": "code", "regex": r"^[0-9]{5}$"},
        ),
        _e(
            "regex name word",
            "matches_regex",
            ["name", r"^\w+$"],
            rx,
            {"column": "name", "regex": r"^\w+$"},
        ),
        _e(
            "regex name space",
            "matches_regex",
            ["name", r"\s"],
            rx,
            {"column": "name", "regex": r"\s"},
        ),
        _e(
            "regex name no space",
            "matches_regex",
            ["name", r"^\S+$"],
            rx,
            {"column": "name", "regex": r"^\S+$"},
        ),
        _e(
            "regex qty one digit",
            "matches_regex",
            ["qty", r"^\d$"],
            rx,
            {"column": "qty", "regex": r"^\d$"},
        ),
        _e(
            "regex country (category)",
            "matches_regex",
            ["country", r"^[A-Z]{2}$"],
            rx,
            {"column": "country", "regex": r"^[A-Z]{2}$"},
        ),
        _e(
            "between amount",
            "between",
            ["amount"],
            bt,
            {"column": "amount", "min_value": 0, "max_value": 1000},
            min=0,
            max=1000,
        ),
        _e(
            "between amount strict",
            "between",
            ["amount"],
            bt,
            {
                "column": "amount",
                "min_value": 0,
                "max_value": 1000,
                "strict_min": True,
                "strict_max": True,
            },
            min=0,
            max=1000,
            strict_min=True,
            strict_max=True,
        ),
        _e(
            "between amount mostly 0.9",
            "between",
            ["amount"],
            bt,
            {"column": "amount", "min_value": 0, "max_value": 1000, "mostly": 0.9},
            min=0,
            max=1000,
            mostly=0.9,
        ),
        _e(
            "between qty",
            "between",
            ["qty"],
            bt,
            {"column": "qty", "min_value": 1, "max_value": 9},
            min=1,
            max=9,
        ),
        _e(
            "between created_at naive bound",
            "between",
            ["created_at"],
            bt,
            {"column": "created_at", "min_value": "datetime:2021-01-01T00:00:00"},
            min="2021-01-01T00:00:00",
        ),
        _e(
            "between created_at aware bound",
            "between",
            ["created_at"],
            bt,
            {"column": "created_at", "min_value": "datetime:2021-01-01T00:00:00+00:00"},
            min="2021-01-01T00:00:00+00:00",
        ),
        _e(
            "in set country",
            "accepted_values",
            ["country", ["DE", "FR", "US"]],
            inset,
            {"column": "country", "value_set": ["DE", "FR", "US"]},
        ),
        _e(
            "in set flag True",
            "accepted_values",
            ["flag", [True]],
            inset,
            {"column": "flag", "value_set": [True]},
        ),
        _e(
            "in set flag2 False",
            "accepted_values",
            ["flag2", [False]],
            inset,
            {"column": "flag2", "value_set": [False]},
        ),
        _e(
            "in set flag2 text false",
            "accepted_values",
            ["flag2", ["false"]],
            inset,
            {"column": "flag2", "value_set": ["false"]},
        ),
        _e(
            "in set qty",
            "accepted_values",
            ["qty", [1, 2, 3, 4, 5]],
            inset,
            {"column": "qty", "value_set": [1, 2, 3, 4, 5]},
        ),
        _e(
            "row count",
            "row_count_between",
            [],
            "ExpectTableRowCountToBeBetween",
            {"min_value": 900, "max_value": 1100},
            min=900,
            max=1100,
        ),
        _e(
            "min amount",
            "stat_between",
            ["amount", "min"],
            "ExpectColumnMinToBeBetween",
            {"column": "amount", "min_value": -100, "max_value": 0},
            min=-100,
            max=0,
        ),
        _e(
            "max amount",
            "stat_between",
            ["amount", "max"],
            "ExpectColumnMaxToBeBetween",
            {"column": "amount", "min_value": 1000, "max_value": 1200},
            min=1000,
            max=1200,
        ),
        _e(
            "mean amount",
            "stat_between",
            ["amount", "mean"],
            "ExpectColumnMeanToBeBetween",
            {"column": "amount", "min_value": 500, "max_value": 600},
            min=500,
            max=600,
        ),
        _e(
            "median amount",
            "stat_between",
            ["amount", "median"],
            "ExpectColumnMedianToBeBetween",
            {"column": "amount", "min_value": 500, "max_value": 600},
            min=500,
            max=600,
        ),
        _e(
            "stddev amount",
            "stat_between",
            ["amount", "stddev"],
            "ExpectColumnStdevToBeBetween",
            {"column": "amount", "min_value": 300, "max_value": 350},
            min=300,
            max=350,
        ),
        _e(
            "sum big",
            "stat_between",
            ["big", "sum"],
            "ExpectColumnSumToBeBetween",
            {"column": "big", "min_value": 2**63},
            min=2**63,
        ),
        _e(
            "sum qty",
            "stat_between",
            ["qty", "sum"],
            "ExpectColumnSumToBeBetween",
            {"column": "qty", "min_value": 0},
            min=0,
        ),
    ]


def _arrow(columns: dict[str, dict[str, Any]]) -> Any:
    import pyarrow as pa

    arrays = {}
    for name, spec in columns.items():
        values = spec["values"]
        if spec["type"] == "float64":
            arrays[name] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif spec["type"] == "dictionary":
            arrays[name] = pa.array(values, pa.string()).dictionary_encode()
        elif spec["type"].startswith("timestamp"):
            stamps = [dt.datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
            arrays[name] = pa.array(stamps, pa.timestamp("us", tz="UTC"))
        else:
            arrays[name] = pa.array(
                values,
                {"int64": pa.int64(), "string": pa.string(), "bool": pa.bool_()}[spec["type"]],
            )
    return pa.table(arrays)


def _gx_value(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("datetime:"):
        return dt.datetime.fromisoformat(value.removeprefix("datetime:"))
    return value


def _json(value: Any) -> Any:
    """GX's observed value as JSON (big ints as text, to stay exact)."""
    if value is None or isinstance(value, bool | str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, int):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, float):
        return value if value == value else "NaN"
    return str(value)


def compute() -> dict[str, Any]:
    """The whole fixture: the table, and GX's verdict on each expectation."""
    import logging

    import great_expectations as gx
    import great_expectations.expectations as gxe

    logging.disable(logging.WARNING)
    columns = _table()
    frame = _arrow(columns).to_pandas()
    context = gx.get_context(mode="ephemeral")
    try:  # progress bars on stderr for every expectation are noise here
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except ImportError:  # pragma: no cover - another GX layout
        pass
    batch = (
        context.data_sources.add_pandas("diff")
        .add_dataframe_asset("messy")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    cases = []
    for case in matrix():
        spec = case["gx"]
        expectation = getattr(gxe, spec["type"])(
            **{k: _gx_value(v) for k, v in spec["kwargs"].items()}
        )
        result = batch.validate(expectation)
        info = result.exception_info or {}
        raised = info.get("raised_exception") or any(
            isinstance(v, dict) and v.get("raised_exception") for v in info.values()
        )
        out: dict[str, Any] = {"success": bool(result.success)}
        if raised:
            message = info.get("exception_message") or next(
                (v.get("exception_message") for v in info.values() if isinstance(v, dict)), ""
            )
            out = {"error": str(message)[:200]}
        else:
            for key in ("unexpected_count", "element_count", "missing_count", "observed_value"):
                if key in result.result:
                    out[key] = _json(result.result[key])
        cases.append({**case, "gx_result": out})
    return {
        "reference": f"great_expectations {gx.__version__}",
        "description": "GX's verdicts on a seeded messy table; written by "
        "scripts/differential/airflow_gx.py, do not edit by hand",
        "counts": {"rows": ROWS, "expectations": len(cases)},
        "table": [{"name": k, **v} for k, v in columns.items()],
        "expectations": cases,
    }
