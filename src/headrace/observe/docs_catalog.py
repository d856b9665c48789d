"""The catalog ``headrace docs`` builds: pipelines and datasets as static HTML and JSON.

Like ``dbt docs generate``: one folder with ``catalog.json`` (everything) and
``index.html`` (the same, readable offline: inline CSS, inline SVG, no script, no CDN).

- **pipelines**: schedule, owner, tags, doc, each task's SLA, retries and doc, and the
  task graph;
- **datasets**: every table a sync loads (and every dataset the state store's lineage
  knows), with columns and types read from the destination, the docs declared on the
  sync's destination (``doc=``, ``columns={...}``), the checks declared and their
  latest results, freshness (latest load and rows) and lineage (writers, readers, and
  the upstream/downstream graph).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from headrace.config import Settings
from headrace.connectors.destinations import open_destination
from headrace.connectors.naming import default_warehouse
from headrace.errors import ConfigError
from headrace.observe.datasets import DatasetName, connection_dataset
from headrace.observe.lineage_graph import LineageGraph, Subgraph, render_svg
from headrace.pipeline import Pipeline
from headrace.state.store_base import StateStore


def build_catalog(
    pipelines: Iterable[Pipeline], store: StateStore | None, settings: Settings
) -> dict[str, Any]:
    """The catalog as JSON-ready data: ``{"generated_at", "pipelines": [...], "datasets": [...]}``."""
    edges = store.list_lineage() if store is not None and hasattr(store, "list_lineage") else []
    graph = LineageGraph.from_edges(edges)
    last_load = {
        DatasetName(e.namespace, e.name): e.recorded_at for e in edges if e.direction == "output"
    }
    datasets: dict[str, dict[str, Any]] = {}
    described = []
    for p in sorted(pipelines, key=lambda p: p.name):
        described.append(_pipeline(p))
        for tid in p.order:
            spec = getattr(p.tasks[tid].fn, "__headrace_sync__", None)
            if spec is not None:
                entry = _sync_dataset(spec, p, tid, store, settings)
                datasets.setdefault(entry["uri"], entry)
    for ds in graph.datasets:
        datasets.setdefault(
            ds.uri, {**ds.to_dict(), "uri": ds.uri, "doc": None, "columns": [], "checks": []}
        )
    for entry in datasets.values():
        ds = DatasetName(entry["namespace"], entry["name"])
        loaded = last_load.get(ds)
        entry["freshness"] = {
            "last_load": loaded.isoformat() if loaded else None,
            "rows": graph.last_rows.get(ds),
        }
        entry["writers"], entry["readers"] = graph.writers(ds), graph.readers(ds)
        entry["lineage"] = graph.around_dataset(ds).to_dict() if ds in graph.datasets else None
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "pipelines": described,
        "datasets": [datasets[k] for k in sorted(datasets)],
    }


def _pipeline(p: Pipeline) -> dict[str, Any]:
    tasks = []
    for tid in p.order:
        t = p.tasks[tid]
        tasks.append(
            {
                "id": tid,
                "upstream": list(p.upstream[tid]),
                "doc": t.doc,
                "owner": t.owner,
                "tags": list(t.tags),
                "sla_seconds": t.sla.total_seconds() if t.sla is not None else None,
                "retries": t.retries.attempts - 1,
                "timeout_seconds": t.timeout.total_seconds() if t.timeout else None,
                "sync": hasattr(t.fn, "__headrace_sync__"),
            }
        )
    return {
        "name": p.name,
        "schedule": p.schedule_text,
        "timezone": p.timezone,
        "owner": p.owner,
        "tags": list(p.tags),
        "doc": p.doc,
        "description": p.description,
        "file": p.file,
        "tasks": tasks,
    }


def _sync_dataset(
    spec: Any, p: Pipeline, tid: str, store: StateStore | None, settings: Settings
) -> dict[str, Any]:
    """A sync's destination table: name, declared docs, live columns, checks and results."""
    target = spec.destination
    url = target.connection
    if url == "warehouse" and not settings.has_connection(url):
        url = default_warehouse(settings)
    live: dict[str, Any] = {}
    error: str | None = None
    try:
        ds = connection_dataset(url, target.table, settings)
    except ConfigError as exc:
        # A connection this machine does not configure: the catalog still documents the
        # table (by the connection's name) and says why its columns could not be read.
        ds, error = DatasetName(url, target.table), f"{type(exc).__name__}: {exc}"
    else:
        try:
            live = open_destination(url, settings).columns(target.table) or {}
        except Exception as exc:  # noqa: BLE001 - a destination down still gets its declared docs
            error = f"{type(exc).__name__}: {exc}"
    declared = dict(target.columns)
    names = list(live) + [c for c in declared if c not in live]
    columns = [
        {
            "name": c,
            "type": live.get(c),
            "doc": declared.get(c, {}).get("doc"),
            "from": declared.get(c, {}).get("from") or [],
        }
        for c in names
    ]
    latest = _latest_results(store, p.name, tid)
    checks = [
        {
            "expectation": c.name,
            "column": getattr(c, "column", None),
            "severity": str(getattr(c.severity, "value", c.severity)),
            "describe": c.describe(),
            "latest": latest.get((c.name, getattr(c, "column", None))),
        }
        for c in spec.checks
    ]
    return {
        **ds.to_dict(),
        "uri": ds.uri,
        "table": target.table,
        "doc": target.doc,
        "columns": columns,
        "checks": checks,
        "loaded_by": f"{p.name}.{tid}",
        "mode": target.mode,
        "keys": list(target.keys),
        "error": error,
    }


def _latest_results(
    store: StateStore | None, pipeline: str, tid: str
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """(expectation, column) -> the latest result: the store's check results, else the ones
    a sync's result carries (a sync judges rows before its load, inside the task)."""
    if store is None:
        return {}
    for run in store.list_runs(pipeline, limit=20):
        found = store.get_check_results(run.run_id, tid)
        if found:
            return {
                (r.expectation, r.column): {
                    "status": r.status,
                    "failed": r.failed,
                    "total": r.total,
                    "run_id": r.run_id,
                    "at": r.created_at.isoformat() if r.created_at else None,
                }
                for r in found
            }
        ti = next(
            (
                t
                for t in store.get_task_instances(run.run_id)
                if t.task_id == tid and t.map_index < 0
            ),
            None,
        )
        result = ti.result_json if ti is not None else None
        outputs = (
            (result.get("lineage") or {}).get("outputs", []) if isinstance(result, dict) else []
        )
        carried = [c for o in outputs for c in o.get("checks", [])]
        if carried:
            at = ti.ended_at.isoformat() if ti is not None and ti.ended_at else None
            return {
                (c["expectation"], c["column"]): {
                    "status": c["status"],
                    "failed": c["failed"],
                    "total": c["total"],
                    "run_id": run.run_id,
                    "at": at,
                }
                for c in carried
            }
    return {}


def write_catalog(catalog: dict[str, Any], out: Path) -> list[Path]:
    """Write ``catalog.json`` and ``index.html`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.json").write_text(json.dumps(catalog, indent=2, default=str))
    (out / "index.html").write_text(render_html(catalog))
    return [out / "catalog.json", out / "index.html"]


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328}
header{background:#24292f;color:#fff;padding:10px 24px}
main{padding:16px 24px;max-width:1400px}
nav a{margin-right:12px}
h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}
.mono{font-family:ui-monospace,monospace;font-size:12.5px}
.muted{color:#656d76}
.passed{color:#116329;font-weight:600}.failed{color:#a40e26;font-weight:600}
section{margin-bottom:28px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_html(catalog: dict[str, Any]) -> str:
    """The catalog as one self-contained HTML page."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>headrace catalog</title>",
        f"<style>{_CSS}</style></head><body><header><b>headrace catalog</b> ",
        f"<span class='muted'>generated {_e(catalog['generated_at'])}</span></header><main>",
        "<nav><a href='#pipelines'>Pipelines</a><a href='#datasets'>Datasets</a></nav>",
        f"<h2 id='pipelines'>Pipelines ({len(catalog['pipelines'])})</h2>",
    ]
    parts += [_pipeline_html(p) for p in catalog["pipelines"]]
    parts.append(f"<h2 id='datasets'>Datasets ({len(catalog['datasets'])})</h2>")
    parts += [_dataset_html(d) for d in catalog["datasets"]]
    parts.append("</main></body></html>")
    return "".join(parts)


def _pipeline_html(p: dict[str, Any]) -> str:
    sub = Subgraph()
    depth: dict[str, int] = {}
    for t in p["tasks"]:  # topological order: a task is one column right of its deepest upstream
        depth[t["id"]] = 1 + max((depth[u] for u in t["upstream"]), default=-1)
        sub.depth[t["id"]] = depth[t["id"]]
        sub.edges |= {(u, t["id"]) for u in t["upstream"]}
    rows = "".join(
        f"<tr><td class='mono'>{_e(t['id'])}</td><td>{_e(t['owner'])}</td>"
        f"<td>{_e(_seconds(t['sla_seconds']))}</td><td>{t['retries']}</td><td>{_e(', '.join(t['tags']))}</td>"
        f"<td>{_e((t['doc'] or '').strip().splitlines()[0] if t['doc'] else '')}</td></tr>"
        for t in p["tasks"]
    )
    return (
        f"<section class='pipeline' id='pipeline-{_e(p['name'])}'><h3>{_e(p['name'])}</h3>"
        f"<p>schedule <span class='mono'>{_e(p['schedule'] or 'manual')}</span> ({_e(p['timezone'])}) · "
        f"owner {_e(p['owner'] or '-')} · tags {_e(', '.join(p['tags']) or '-')}</p>"
        f"<pre class='doc'>{_e(p['doc'] or '')}</pre>"
        f"<div class='graph'>{render_svg(sub)}</div>"
        "<table><tr><th>task</th><th>owner</th><th>SLA</th><th>retries</th><th>tags</th><th>doc</th></tr>"
        f"{rows}</table></section>"
    )


def _dataset_html(d: dict[str, Any]) -> str:
    cols = "".join(
        f"<tr><td class='mono'>{_e(c['name'])}</td><td class='mono'>{_e(c['type'] or '?')}</td>"
        f"<td>{_e(c['doc'])}</td><td class='mono'>{_e(', '.join(c['from']))}</td></tr>"
        for c in d.get("columns", [])
    )
    checks = "".join(
        f"<tr><td class='mono'>{_e(c['expectation'])}</td><td>{_e(c['severity'])}</td><td>{_e(c['describe'])}</td>"
        + (
            f"<td class='{_e(c['latest']['status'])}'>{_e(c['latest']['status'])} "
            f"({c['latest']['failed']}/{c['latest']['total']} failed)</td>"
            if c.get("latest")
            else "<td>-</td>"
        )
        + "</tr>"
        for c in d.get("checks", [])
    )
    fresh = d.get("freshness") or {}
    graph = ""
    if d.get("lineage"):
        lineage = d["lineage"]
        sub = Subgraph(
            {n["uri"]: n["depth"] for n in lineage["datasets"]}
            | {j["name"]: j["depth"] for j in lineage["jobs"]},
            {n["uri"]: DatasetName(n["namespace"], n["name"]) for n in lineage["datasets"]},
            {(a, b) for a, b in lineage["edges"]},
        )
        graph = f"<div class='graph'>{render_svg(sub, focus=d['uri'])}</div>"
    return (
        f"<section class='dataset' id='dataset-{_e(d['uri'])}'><h3 class='mono'>{_e(d['name'])}</h3>"
        f"<p class='muted mono'>{_e(d['namespace'])}</p><p class='doc'>{_e(d.get('doc') or '')}</p>"
        f"<p>last load {_e(fresh.get('last_load') or 'never recorded')} · rows {_e(fresh.get('rows'))} · "
        f"written by {_e(', '.join(d.get('writers') or []) or '-')} · read by {_e(', '.join(d.get('readers') or []) or '-')}</p>"
        + (
            f"<table class='columns'><tr><th>column</th><th>type</th><th>doc</th><th>from</th></tr>{cols}</table>"
            if cols
            else ""
        )
        + (
            f"<table class='checks'><tr><th>check</th><th>severity</th><th>what</th><th>latest</th></tr>{checks}</table>"
            if checks
            else ""
        )
        + graph
        + "</section>"
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    hours, rest = divmod(int(value), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
