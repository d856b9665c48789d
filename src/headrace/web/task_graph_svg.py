"""A pipeline's task graph drawn on the server as SVG: layers left to right, no JavaScript.

Each task sits in the column of its longest path from a root; tasks of one task group
sit together in a column and share a dashed frame labelled with the group; a branch
task is drawn with a diamond marker; a mapped task is one node with its element count
(``square ×12``) from the latest run. Node colours are the task states of that run.

Every text passes through :func:`html.escape`, so a task id cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from headrace.pipeline import Pipeline

NODE_W, NODE_H = 150, 34
COL_GAP, ROW_GAP = 50, 18
PAD = 24
#: Fill and stroke per task state (the same palette as the pages' state badges).
COLOURS: dict[str, tuple[str, str]] = {
    "success": ("#dafbe1", "#2da44e"),
    "failed": ("#ffebe9", "#cf222e"),
    "running": ("#ddf4ff", "#0969da"),
    "queued": ("#eaeef2", "#8c959f"),
    "up_for_retry": ("#fff8c5", "#d4a72c"),
    "up_for_reschedule": ("#e7ecff", "#3b4a9c"),
    "upstream_failed": ("#fff0ee", "#e16f24"),
    "skipped": ("#fbefff", "#8250df"),
}
NO_STATE = ("#ffffff", "#8c959f")


@dataclass(frozen=True)
class NodeState:
    """What the latest run says about one task: its state and, when mapped, its element count."""

    state: str | None = None
    elements: int | None = None


def layers(pipeline: Pipeline) -> list[list[str]]:
    """Task ids by column (longest path from a root), group members together in each column."""
    rank: dict[str, int] = {}
    for tid in pipeline.order:  # topological: upstream ranks are known
        ups = pipeline.upstream.get(tid, ())
        rank[tid] = 1 + max((rank[u] for u in ups), default=-1)
    columns: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    position = {tid: i for i, tid in enumerate(pipeline.order)}
    for tid in pipeline.order:
        columns[rank[tid]].append(tid)
    for column in columns:
        column.sort(key=lambda t: (pipeline.tasks[t].group or "", position[t]))
    return columns


def render_svg(
    pipeline: Pipeline, states: Mapping[str, NodeState] | None = None, link: str | None = None
) -> str:
    """The SVG of ``pipeline``'s graph.

    Args:
        pipeline: the pipeline.
        states: per task id, the latest run's state and element count (mapped tasks).
        link: a URL prefix; each node links to ``link + task_id`` when given.

    Returns:
        An ``<svg>`` element as text.
    """
    states = states or {}
    columns = layers(pipeline)
    xy: dict[str, tuple[int, int]] = {}
    for c, column in enumerate(columns):
        for r, tid in enumerate(column):
            xy[tid] = (PAD + c * (NODE_W + COL_GAP), PAD + 14 + r * (NODE_H + ROW_GAP))
    width = PAD * 2 + max(len(columns), 1) * (NODE_W + COL_GAP) - COL_GAP
    height = PAD * 2 + 14 + max((len(c) for c in columns), default=1) * (NODE_H + ROW_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="task graph of {escape(pipeline.name)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8c959f"/></marker></defs>',
    ]
    parts += _group_frames(pipeline, xy)
    for tid in pipeline.order:
        x1, y1 = xy[tid]
        for down in pipeline.downstream.get(tid, ()):
            x2, y2 = xy[down]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
            mid = (sx + ex) // 2
            parts.append(
                f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}" fill="none" '
                f'stroke="#8c959f" stroke-width="1.3" marker-end="url(#arrow)"/>'
            )
    for tid in pipeline.order:
        parts.append(_node(pipeline, tid, xy[tid], states.get(tid, NodeState()), link))
    parts.append("</svg>")
    return "".join(parts)


def _group_frames(pipeline: Pipeline, xy: Mapping[str, tuple[int, int]]) -> list[str]:
    frames = []
    for group, members in pipeline.groups.items():
        if group is None or not members:
            continue
        xs = [xy[m][0] for m in members]
        ys = [xy[m][1] for m in members]
        x, y = min(xs) - 8, min(ys) - 20
        w, h = max(xs) - min(xs) + NODE_W + 16, max(ys) - min(ys) + NODE_H + 28
        frames.append(
            f'<g class="group"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="#f6f8fa" '
            f'stroke="#afb8c1" stroke-dasharray="4 3"/><text x="{x + 8}" y="{y + 13}" font-size="11" '
            f'fill="#57606a" font-weight="600">▸ {escape(group)}</text></g>'
        )
    return frames


def _node(
    pipeline: Pipeline, tid: str, at: tuple[int, int], info: NodeState, link: str | None
) -> str:
    task = pipeline.tasks[tid]
    x, y = at
    fill, stroke = COLOURS.get(info.state or "", NO_STATE)
    label = tid.rsplit(".", 1)[-1] if task.group else tid
    if task.is_mapped:
        label += f" ×{info.elements}" if info.elements is not None else " [mapped]"
    if len(label) > 20:
        label = label[:19] + "…"
    title = (
        f"{tid}: {info.state or 'not run'}"
        + (" (branch)" if task.branch else "")
        + (f", {info.elements} mapped elements" if info.elements is not None else "")
    )
    marker = ""
    if task.branch:
        cx, cy = x + NODE_W - 14, y + NODE_H // 2
        marker = f'<path d="M{cx},{cy - 7} L{cx + 7},{cy} L{cx},{cy + 7} L{cx - 7},{cy} z" fill="{stroke}"/>'
    stack = ""
    if task.is_mapped:  # a second outline behind: "many of these"
        stack = (
            f'<rect x="{x + 4}" y="{y - 4}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
            f'stroke="{stroke}"/>'
        )
    body = (
        f'<g class="node" data-task="{escape(tid)}" data-state="{escape(info.state or "")}"><title>{escape(title)}</title>'
        f'{stack}<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="1.6"/><text x="{x + 10}" y="{y + 21}" font-size="12.5" '
        f'font-family="ui-monospace, monospace" fill="#1f2328">{escape(label)}</text>{marker}</g>'
    )
    if link is None:
        return body
    return f'<a href="{escape(link + tid)}">{body}</a>'
