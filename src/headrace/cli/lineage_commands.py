"""``headrace lineage DATASET``: the pipelines and datasets upstream and downstream of a
dataset, from the lineage every load records in the state store."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from headrace.cli.typer_app import app, console
from headrace.config import Settings
from headrace.errors import DefinitionError, HeadraceError, did_you_mean


@app.command("lineage")
def lineage(
    dataset: str = typer.Argument(
        ..., help="A dataset: its URI, its name, or the name's last parts (customers)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON: upstream and downstream datasets and jobs."
    ),
) -> None:
    """Show which pipelines and datasets feed DATASET (upstream) and which it feeds (downstream)."""
    from headrace.observe.lineage_graph import LineageGraph
    from headrace.state import open_store

    settings = Settings.load()
    with open_store(settings.state_url) as store:
        graph = LineageGraph.from_edges(store.list_lineage())
    found = graph.find(dataset)
    if not found:
        known = sorted({d.name for d in graph.datasets})
        raise HeadraceError(
            f"no recorded dataset matches {dataset!r}"
            + did_you_mean(dataset, known)
            + ("" if known else " (no load has recorded lineage yet)")
        )
    if len(found) > 1:
        raise HeadraceError(
            f"{dataset!r} matches {len(found)} datasets; name one: "
            + ", ".join(d.uri for d in found)
        )
    (ds,) = found
    up, down = graph.walk(ds, "up"), graph.walk(ds, "down")
    if as_json:
        print(
            json.dumps(
                {
                    "dataset": {**ds.to_dict(), "uri": ds.uri},
                    "upstream": up.to_dict(),
                    "downstream": down.to_dict(),
                },
                indent=2,
            )
        )
        return
    console.print(f"[bold]{escape(ds.uri)}[/]")
    for title, sub in (("upstream", up), ("downstream", down)):
        jobs = sub.jobs()
        others = sorted(uri for uri in sub.datasets if uri != ds.uri)
        console.print(f"\n[bold]{title}[/]: {len(jobs)} job(s), {len(others)} dataset(s)")
        for job in jobs:
            console.print(
                f"  job      {escape(job)}  (distance {abs(sub.depth[job])})", highlight=False
            )
        for uri in others:
            console.print(
                f"  dataset  {escape(uri)}  (distance {abs(sub.depth[uri])})", highlight=False
            )


@app.command("docs")
def docs(
    paths: list[str] = typer.Argument(..., help="Pipeline files or folders of them."),  # noqa: B008
    out: str = typer.Option(
        "catalog", "--out", "-o", help="Folder to write index.html and catalog.json to."
    ),
) -> None:
    """Build the catalog (like dbt docs): pipelines, datasets with columns, docs, checks, freshness, lineage."""
    from headrace.engine.loader import discover
    from headrace.observe.docs_catalog import build_catalog, write_catalog
    from headrace.state import open_store

    settings = Settings.load()
    # every file must load: a catalog that silently lacks a pipeline would mislead
    pipelines, errors = discover([Path(p) for p in paths])
    if errors:
        if len(errors) == 1:
            raise errors[0].error
        raise DefinitionError(
            f"{len(errors)} pipeline files failed to load; no catalog written:\n"
            + "\n".join(str(failed.error) for failed in errors),
            path=str(errors[0].file),
        )
    with open_store(settings.state_url) as store:
        catalog = build_catalog(pipelines.values(), store, settings)
    written = write_catalog(catalog, Path(out))
    console.print(
        f"catalog of {len(catalog['pipelines'])} pipeline(s) and {len(catalog['datasets'])} dataset(s): "
        + ", ".join(str(w) for w in written),
        highlight=False,
    )
