"""Branching, task groups, trigger rules and a pool in one small pipeline.

Run it (state and staged results go to ``.headrace/`` in the working directory):

    HEADRACE_POOL_WAREHOUSE=1 headrace run examples/branching_pipeline.py --param full_refresh=true
    python examples/branching_pipeline.py

* ``extract`` is a task group: its tasks are ``extract.customers`` and
  ``extract.orders``, and ``extract >> ...`` waits for both.
* ``load.choose`` is a branch task: it returns the id of the path to follow
  (``full_reload`` or ``incremental``); the other path is SKIPPED. The choice is
  stored with the run, so ``headrace resume`` keeps it.
* ``publish`` joins the two paths with ``trigger_rule="none_failed"`` (a skipped
  path is fine, a failed one is not); ``alert_on_failure`` runs only if something
  failed (``one_failed``); ``tidy_up`` always runs once the rest is done (``all_done``).
* Both load tasks use ``pool="warehouse"``: with ``HEADRACE_POOL_WAREHOUSE=1`` at
  most one task of that pool runs at a time, across every run sharing the state store.
"""

from __future__ import annotations

from datetime import datetime

from headrace import Context, pipeline, task
from headrace.pipeline import task_group


@task
def customers(ctx: Context) -> list[dict]:
    """Pretend extract: a few customers changed in the interval."""
    return [{"id": i, "name": f"customer {i}"} for i in range(1, 4)]


@task
def orders(ctx: Context) -> list[dict]:
    return [{"id": 10 + i, "customer_id": 1 + i % 3} for i in range(5)]


@task
def join_rows(people: list[dict], bought: list[dict]) -> list[dict]:
    counts = {p["id"]: 0 for p in people}
    for order in bought:
        counts[order["customer_id"]] += 1
    return [{**p, "orders": counts[p["id"]]} for p in people]


@task.branch
def choose(ctx: Context) -> str:
    """Pick the load path: a full reload when asked, otherwise an incremental merge."""
    return "full_reload" if ctx.params["full_refresh"] else "incremental"


@task(pool="warehouse")
def full_reload(ctx: Context, rows: list[dict]) -> str:
    ctx.log.info("replacing the table with %d rows", len(rows))
    return f"replaced with {len(rows)} rows"


@task(pool="warehouse")
def incremental(ctx: Context, rows: list[dict]) -> str:
    ctx.log.info("merging %d rows on id", len(rows))
    return f"merged {len(rows)} rows"


@task(trigger_rule="none_failed")
def publish(ctx: Context) -> str:
    return f"published {ctx.ds}"


@task(trigger_rule="one_failed")
def alert_on_failure() -> str:
    return "someone was told"


@task(trigger_rule="all_done")
def tidy_up() -> str:
    return "staging tidied"


@pipeline(
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    params={"full_refresh": False},
    tags=["example"],
)
def branching():
    with task_group("extract") as extract:
        rows = join_rows(customers(), orders())
    with task_group("load") as load:
        choose() >> [full_reload(rows), incremental(rows)]
    extract >> load
    done = publish()
    load >> done
    [load, done] >> alert_on_failure()
    done >> tidy_up()


if __name__ == "__main__":
    import dataclasses

    from headrace.config import Settings
    from headrace.engine import Runner
    from headrace.state import open_store

    settings = Settings.from_env()
    # The warehouse pool needs a size; one at a time unless the environment says otherwise.
    settings = dataclasses.replace(settings, pools={"warehouse": 1, **settings.pools})
    with open_store(settings.state_url) as store:
        runner = Runner(store, settings=settings)
        for day, full in ((datetime(2024, 1, 1), True), (datetime(2024, 1, 2), False)):
            result = runner.run(branching, logical_date=day, params={"full_refresh": full})
            states = {t.task_id: str(t.state) for t in result.tasks}
            print(f"{day:%Y-%m-%d} full_refresh={full}: {result.state}")
            print("  chose:", result.task("load.choose").result_json)
            print("  states:", ", ".join(f"{tid}={state}" for tid, state in sorted(states.items())))
