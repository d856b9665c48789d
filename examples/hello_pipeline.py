"""A small headrace pipeline: mapping, ``>>`` ordering, retries and the run context.

Run it (state and staged results go to ``.headrace/`` in the working directory):

    headrace run examples/hello_pipeline.py --param punctuation='?'
    python examples/hello_pipeline.py

``fetch_greetings`` fails on its first try on purpose, so the retry policy shows:
the run still succeeds, on attempt 2, after the policy's delay.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from headrace import Context, Retry, pipeline, task


@task(
    retries=Retry(
        attempts=3, delay=timedelta(seconds=0.2), backoff=2.0, max_delay=timedelta(seconds=1)
    )
)
def fetch_greetings(ctx: Context) -> list[str]:
    """Pretend to call a flaky service: the first try fails, the retry succeeds."""
    if ctx.attempt == 1:
        raise ConnectionError("greeting service not ready yet (this example fails once on purpose)")
    ctx.log.info("fetched greetings for %s on attempt %d", ctx.ds, ctx.attempt)
    return ["hello", "hola", "bonjour", "hallo", "ciao"]


@task
def shout(ctx: Context, word: str) -> str:
    """One mapped element per greeting."""
    return word.upper() + ctx.params["punctuation"]


@task
def to_table(ctx: Context, words: list[str]) -> pa.Table:
    """Gather the mapped results into an Arrow table (staged as Parquet for the next task)."""
    for done, _ in enumerate(words, start=1):
        ctx.progress(done, len(words), "measuring")
    return pa.table({"word": words, "length": [len(w) for w in words]})


@task
def summarise(table: pa.Table) -> dict:
    """Arrow compute over the staged table: a small JSON result stored with the run."""
    longest = table.sort_by([("length", "descending")]).slice(0, 1).to_pylist()[0]
    return {
        "words": table.num_rows,
        "longest": longest["word"],
        "total_length": pc.sum(table["length"]).as_py(),
    }


@task
def announce(ctx: Context) -> str:
    """Runs after summarise (ordered with >>), exchanging no data."""
    ctx.log.info("run %s for %s is done", ctx.run_id, ctx.ds)
    print(f"greetings ready for {ctx.ds}")
    return f"done {ctx.ds}"


@pipeline(
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    params={"punctuation": "!"},
    defaults={"timeout": timedelta(minutes=5)},
    tags=["example"],
    owner="data-team",
    doc="Shouts a few greetings: fan-out with .map, gather, an Arrow table, and a final step.",
)
def hello():
    words = fetch_greetings()
    loud = shout.map(word=words)
    summarise(to_table(loud)) >> announce()


if __name__ == "__main__":
    from headrace.config import Settings
    from headrace.engine import Runner
    from headrace.state import open_store

    settings = Settings.from_env()
    with open_store(settings.state_url) as store:
        result = Runner(store, settings=settings).run(hello, logical_date=datetime(2024, 1, 1))
    print(f"run {result.run_id}: {result.state}")
    print("loud:", result.result_of("shout"))
    print("summary:", result.result_of("summarise"))
    print("fetch attempts:", result.task("fetch_greetings").attempt)
