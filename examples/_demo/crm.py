"""A small CRM with realistic mess, as SQLite (the customer ETL's source when no
``HEADRACE_CONN_CRM`` is set) or as rows to seed any database with.

The mess is what the ETL must cope with: e-mails in mixed case with spaces, invalid
e-mails, missing e-mails; phones in many formats, some missing or with a country code;
missing addresses; zip codes as text, some without their leading zero ("2134") and
some real US ZIP+4 codes ("02134-1234", "78701-0042"); the same e-mail
on two customers with different ``updated_at``; accounts created before 2020.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path
from typing import Any

COLUMNS = (
    "customer_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "address",
    "city",
    "state",
    "zip_code",
    "created_at",
    "updated_at",
)
FIRST = [
    "anna",
    "BOB",
    "Carla",
    "dmitri",
    "Eve",
    "farah",
    "Goran",
    "hana",
    "Ivan",
    "júlia",
    "Kofi",
    "lin",
]
LAST = [
    "smith",
    "O'NEIL",
    "garcía",
    "Nguyen",
    "müller",
    "Okafor",
    "rossi",
    "TANAKA",
    "Kowalski",
    "dubois",
]
CITIES = [
    ("Boston", "MA", 2134),
    ("Newark", "NJ", 7102),
    ("Austin", "TX", 78701),
    ("Portland", "OR", 97201),
    ("Hartford", "CT", 6103),
    ("Denver", "CO", 80202),
]
DOMAINS = ["Example.com", "mail.example.org", "CORP.example.net", "example.io"]
T0 = dt.datetime(2020, 1, 1)


def _phone(rng: random.Random) -> str | None:
    a, b, c = rng.randint(200, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        [
            f"({a}) {b}-{c:04d}",
            f"{a}.{b}.{c:04d}",
            f"{a}-{b}-{c:04d}",
            f"{a}{b}{c:04d}",
            f" {a} {b} {c:04d} ",
            f"+1 {a} {b} {c:04d}",  # 11 digits: quarantined
            None,
            None,
        ]
    )


def customer(i: int, rng: random.Random, when: dt.datetime | None = None) -> tuple:
    """One messy customer row (values in ``COLUMNS`` order)."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(DOMAINS)
    clean_email = f"{first}.{last}{i}@{domain}"
    email: str | None = clean_email
    roll = rng.random()
    if roll < 0.03:
        email = f"{first}{i}.at.{domain}"  # no @
    elif roll < 0.05:
        email = None
    elif roll < 0.5:
        email = f"  {clean_email.upper() if rng.random() < 0.3 else clean_email.title()} "
    city, state, zip5 = rng.choice(CITIES)
    zip_code = str(zip5)  # leading zero lost, as a number column would store it
    if rng.random() < 0.2:  # a ZIP+4 code
        zip_code = f"{zip5:05d}-{rng.randint(1, 9999):04d}"
    created = T0 + dt.timedelta(days=rng.randint(0, 1400), seconds=rng.randint(0, 86399))
    if rng.random() < 0.03:
        created = dt.datetime(2018, 6, 1) + dt.timedelta(days=rng.randint(0, 400))  # before 2020
    updated = when or created + dt.timedelta(
        days=rng.randint(0, 300), seconds=rng.randint(0, 86399)
    )
    return (
        i,
        email,
        f"  {first} ",
        f"{last}  ",
        _phone(rng),
        None
        if rng.random() < 0.06
        else f"{rng.randint(1, 999)} {rng.choice(['Main', 'Oak', 'Elm'])} St",
        city,
        state,
        zip_code,
        created.isoformat(sep=" ", timespec="seconds"),
        updated.isoformat(sep=" ", timespec="seconds"),
    )


def demo_rows(n: int = 1000, seed: int = 7) -> list[tuple]:
    """``n`` messy customers; about 3% share an e-mail with an earlier customer."""
    rng = random.Random(seed)
    rows = [customer(i, rng) for i in range(1, n + 1)]
    for k in range(0, n, 33):  # duplicates: same person, other id, other case, other time
        if k + 1 < n and rows[k][1] and "@" in rows[k][1]:
            dup = list(rows[k + 1])
            dup[1] = rows[k][1].strip().lower()
            rows[k + 1] = tuple(dup)
    return rows


DDL = (
    "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, "
    "last_name TEXT, phone TEXT, address TEXT, city TEXT, state TEXT, zip_code TEXT, "
    "created_at TEXT, updated_at TEXT)"
)


def create_sqlite(path: Path, n: int = 1000) -> int:
    """Create the demo CRM at ``path`` (if absent); returns the number of customers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    conn.execute(DDL)
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", demo_rows(n))
    conn.commit()
    conn.close()
    tmp.rename(path)  # a half-written demo database never appears
    return n


def connection(ctx: Any) -> str:
    """The customer ETL's source: connection ``crm`` if configured, else the demo CRM
    under the headrace home (created on the first run; each later run's first attempt
    simulates a day of CRM activity in it, so there is something new to load)."""
    if ctx.settings.has_connection("crm"):
        return "crm"
    path = Path(ctx.settings.home) / "demo_crm.db"
    if not path.exists():
        n = create_sqlite(path)
        ctx.log.info("created the demo CRM %s with %d messy customers", path, n)
    elif ctx.attempt == 1:  # a retried task does not simulate a second day
        changed, new = simulate_activity(path, now=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        ctx.log.info("demo CRM activity: %d customers changed, %d signed up", changed, new)
    return f"sqlite:///{path}"


def simulate_activity(
    path: Path, *, now: dt.datetime, changed: int = 25, new: int = 10
) -> tuple[int, int]:
    """What a day in the CRM does: update ``changed`` customers, sign up ``new`` ones."""
    conn = sqlite3.connect(path)
    (top,) = conn.execute("SELECT max(customer_id) FROM customers").fetchone()
    rng = random.Random(top)
    stamp = now.replace(microsecond=0).isoformat(sep=" ")
    ids = rng.sample(range(1, top + 1), changed)
    conn.executemany(
        "UPDATE customers SET phone = ?, updated_at = ? WHERE customer_id = ?",
        [(_phone(rng), stamp, i) for i in ids],
    )
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [customer(i, rng, now.replace(microsecond=0)) for i in range(top + 1, top + new + 1)],
    )
    conn.commit()
    conn.close()
    return changed, new


def run_once(pipeline: Any) -> int:
    """``python examples/customer_etl.py``: run the pipeline once in this process, print its stats."""
    import sys

    from headrace.config import Settings
    from headrace.engine import Runner
    from headrace.state import open_store

    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    with open_store(settings.state_url) as store:
        result = Runner(store, executor="inprocess", settings=settings).run(pipeline)
    if result.state != "success":
        for t in result.tasks:
            if t.state == "failed":
                print(f"task {t.task_id} failed: {t.error}", file=sys.stderr)
        return 1
    s = result.result_of("customers")
    print(
        f"{pipeline.name} {result.run_id}: extracted {s['extracted']}, loaded {s['loaded']} "
        f"({s['replaced']} updated), quarantined {s['quarantined']}; warehouse has "
        f"{s['table_rows']} customers; {s['sql_tests_passed']} SQL tests passed"
    )
    return 0
