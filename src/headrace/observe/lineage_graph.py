"""The lineage graph recorded in the state store: which task read and wrote which
dataset, across pipelines; upstream and downstream of a dataset or a pipeline, and a
small server-rendered SVG of it (no JavaScript, no CDN).

Nodes are datasets (``DatasetName``) and jobs (``pipeline.task``); an edge goes from an
input dataset to the job and from the job to an output dataset.
"""

from __future__ import annotations

import html
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from headrace.observe.datasets import DatasetName, matches
from headrace.state.lineage_store import LineageEdge


@dataclass
class LineageGraph:
    """Every (job, dataset) edge ever recorded, deduplicated.

    Attributes:
        inputs / outputs: job (``pipeline.task``) -> datasets it read / wrote.
        last_rows: dataset -> rows of its latest recorded load.
    """

    inputs: dict[str, set[DatasetName]] = field(default_factory=lambda: defaultdict(set))
    outputs: dict[str, set[DatasetName]] = field(default_factory=lambda: defaultdict(set))
    last_rows: dict[DatasetName, int | None] = field(default_factory=dict)

    @classmethod
    def from_edges(cls, edges: Iterable[LineageEdge]) -> LineageGraph:
        graph = cls()
        for e in edges:
            job, ds = f"{e.pipeline}.{e.task_id}", DatasetName(e.namespace, e.name)
            (graph.inputs if e.direction == "input" else graph.outputs)[job].add(ds)
            if e.direction == "output":
                graph.last_rows[ds] = e.rows
        return graph

    @property
    def datasets(self) -> set[DatasetName]:
        return {d for found in (*self.inputs.values(), *self.outputs.values()) for d in found}

    def find(self, query: str) -> list[DatasetName]:
        """Datasets named by ``query`` (URI, name, or its last parts), sorted."""
        return sorted((d for d in self.datasets if matches(d, query)), key=lambda d: d.uri)

    def writers(self, dataset: DatasetName) -> list[str]:
        return sorted(j for j, found in self.outputs.items() if dataset in found)

    def readers(self, dataset: DatasetName) -> list[str]:
        return sorted(j for j, found in self.inputs.items() if dataset in found)

    def walk(self, start: DatasetName, direction: str) -> Subgraph:
        """Everything upstream (``up``) or downstream (``down``) of ``start``, with depths."""
        sub = Subgraph()
        sub.depth[start.uri] = 0
        sub.datasets[start.uri] = start
        todo: deque[tuple[DatasetName, int]] = deque([(start, 0)])
        sign = -1 if direction == "up" else 1
        while todo:
            ds, level = todo.popleft()
            jobs = self.writers(ds) if direction == "up" else self.readers(ds)
            for job in jobs:
                if direction == "up":
                    sub.edges.add((job, ds.uri))
                else:
                    sub.edges.add((ds.uri, job))
                if job in sub.depth:
                    continue
                sub.depth[job] = level + sign
                nexts = self.inputs[job] if direction == "up" else self.outputs[job]
                for other in nexts:
                    sub.edges.add((other.uri, job) if direction == "up" else (job, other.uri))
                    if other.uri not in sub.depth:
                        sub.depth[other.uri] = level + 2 * sign
                        sub.datasets[other.uri] = other
                        todo.append((other, level + 2 * sign))
        return sub

    def around_dataset(self, dataset: DatasetName) -> Subgraph:
        """Upstream and downstream of one dataset."""
        return self.walk(dataset, "up").merged(self.walk(dataset, "down"))

    def around_pipeline(self, pipeline: str) -> Subgraph:
        """The pipeline's jobs with what they read and wrote, and one step beyond each side."""
        sub = Subgraph()
        jobs = sorted({j for j in (*self.inputs, *self.outputs) if j.startswith(pipeline + ".")})
        for job in jobs:
            sub.depth[job] = 0
            for ds in self.inputs.get(job, ()):
                sub.add_dataset(ds, -1)
                sub.edges.add((ds.uri, job))
                for writer in self.writers(ds):
                    if not writer.startswith(pipeline + "."):
                        sub.depth.setdefault(writer, -2)
                        sub.edges.add((writer, ds.uri))
            for ds in self.outputs.get(job, ()):
                sub.add_dataset(ds, 1)
                sub.edges.add((job, ds.uri))
                for reader in self.readers(ds):
                    if not reader.startswith(pipeline + "."):
                        sub.depth.setdefault(reader, 2)
                        sub.edges.add((ds.uri, reader))
        return sub


@dataclass
class Subgraph:
    """Part of the graph: node -> column (negative: upstream), edges between node keys.

    Dataset nodes are keyed by URI (``datasets`` maps the key back); job nodes by
    ``pipeline.task``.
    """

    depth: dict[str, int] = field(default_factory=dict)
    datasets: dict[str, DatasetName] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)

    def add_dataset(self, ds: DatasetName, depth: int) -> None:
        self.datasets[ds.uri] = ds
        self.depth.setdefault(ds.uri, depth)

    def merged(self, other: Subgraph) -> Subgraph:
        out = Subgraph(dict(self.depth), dict(self.datasets), set(self.edges))
        for key, d in other.depth.items():
            out.depth.setdefault(key, d)
        out.datasets.update(other.datasets)
        out.edges |= other.edges
        return out

    def jobs(self) -> list[str]:
        return sorted(k for k in self.depth if k not in self.datasets)

    def to_dict(self) -> dict[str, Any]:
        """JSON: ``{"datasets": [...], "jobs": [...], "edges": [[from, to], ...]}``."""
        return {
            "datasets": [
                {**d.to_dict(), "uri": key, "depth": self.depth[key]}
                for key, d in sorted(self.datasets.items())
            ],
            "jobs": [{"name": j, "depth": self.depth[j]} for j in self.jobs()],
            "edges": sorted([a, b] for a, b in self.edges),
        }


_BOX_W, _BOX_H, _COL_GAP, _ROW_GAP, _PAD = 230, 44, 70, 18, 16


def render_svg(sub: Subgraph, focus: str | None = None) -> str:
    """The subgraph as an SVG drawing: columns by depth, datasets as rounded boxes, jobs
    as square ones, arrows from left to right; ``focus`` (a node key) is highlighted."""
    columns: dict[int, list[str]] = defaultdict(list)
    for key, d in sorted(sub.depth.items()):
        columns[d].append(key)
    order = sorted(columns)
    pos: dict[str, tuple[int, int]] = {}
    for ci, d in enumerate(order):
        for ri, key in enumerate(columns[d]):
            pos[key] = (_PAD + ci * (_BOX_W + _COL_GAP), _PAD + ri * (_BOX_H + _ROW_GAP))
    width = _PAD * 2 + max(len(order), 1) * (_BOX_W + _COL_GAP) - _COL_GAP
    height = (
        _PAD * 2
        + max((len(c) for c in columns.values()), default=1) * (_BOX_H + _ROW_GAP)
        - _ROW_GAP
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>',
    ]
    for a, b in sorted(sub.edges):
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            parts.append(
                f'<line class="edge" x1="{x1 + _BOX_W}" y1="{y1 + _BOX_H // 2}" x2="{x2}" y2="{y2 + _BOX_H // 2}" '
                f'stroke="#666" marker-end="url(#arrow)"><title>{html.escape(a)} → {html.escape(b)}</title></line>'
            )
    for key, (x, y) in sorted(pos.items()):
        is_ds = key in sub.datasets
        label = sub.datasets[key].name if is_ds else key
        sub_label = sub.datasets[key].namespace if is_ds else "job"
        fill = "#fff3c4" if key == focus else ("#e8f1fb" if is_ds else "#eef7ee")
        parts.append(
            f'<g class="node {"dataset" if is_ds else "job"}" data-key="{html.escape(key)}">'
            f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="{12 if is_ds else 2}" '
            f'fill="{fill}" stroke="#345"/>'
            f'<text x="{x + 8}" y="{y + 18}" font-size="13" font-family="sans-serif">{html.escape(_cut(label))}</text>'
            f'<text x="{x + 8}" y="{y + 35}" font-size="10" fill="#555" font-family="sans-serif">'
            f"{html.escape(_cut(sub_label, 36))}</text><title>{html.escape(key)}</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _cut(text: str, n: int = 30) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1) :]
