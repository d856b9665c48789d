"""Questions about a pipeline's past runs that the scheduler and retention both ask."""

from __future__ import annotations

from headrace.state.store_base import RunRecord, StateStore

#: triggers whose runs move a pipeline's schedule forward (manual runs do not)
AUTOMATED_TRIGGERS = ("scheduled", "backfill")


def last_automated_run(store: StateStore, pipeline: str, page: int = 50) -> RunRecord | None:
    """The newest scheduled or backfill run of ``pipeline`` (by logical date).

    The scheduler continues from its data interval's end; retention never purges it.
    """
    limit = page
    while True:
        runs = store.list_runs(pipeline, limit=limit)
        for run in runs:
            if run.trigger in AUTOMATED_TRIGGERS:
                return run
        if len(runs) < limit:
            return None
        limit *= 4  # only manual runs so far: look further back
