"""Lineage pages: a server-rendered SVG graph around a dataset (``/lineage?dataset=...``)
or around a pipeline (``/lineage/pipelines/{name}``), and their JSON under ``/api/lineage``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from headrace.observe.lineage_graph import LineageGraph, Subgraph, render_svg
from headrace.web.api_routes import web_context
from headrace.web.templating import render as _render

router = APIRouter()


def _graph(request: Request) -> LineageGraph:
    store = web_context(request).store
    edges = store.list_lineage() if hasattr(store, "list_lineage") else []
    return LineageGraph.from_edges(edges)


def _dataset_graph(request: Request, dataset: str) -> tuple[str, Subgraph]:
    graph = _graph(request)
    found = graph.find(dataset)
    if not found:
        raise HTTPException(404, f"no recorded dataset matches {dataset!r}")
    if len(found) > 1:
        raise HTTPException(
            400, f"{dataset!r} matches {len(found)} datasets: " + ", ".join(d.uri for d in found)
        )
    return found[0].uri, graph.around_dataset(found[0])


def _pipeline_graph(request: Request, name: str) -> Subgraph:
    sub = _graph(request).around_pipeline(name)
    if not sub.depth:
        raise HTTPException(404, f"pipeline {name!r} has recorded no lineage (no load ran yet)")
    return sub


@router.get("/lineage", include_in_schema=False, response_class=HTMLResponse)
def dataset_page(request: Request, dataset: Annotated[str, Query()]) -> Any:
    """The graph upstream and downstream of one dataset."""
    uri, sub = _dataset_graph(request, dataset)
    return _render(
        request,
        "lineage.html",
        title=f"Lineage of {uri}",
        svg=Markup(render_svg(sub, focus=uri)),
        graph=sub.to_dict(),
    )


@router.get("/lineage/pipelines/{name}", include_in_schema=False, response_class=HTMLResponse)
def pipeline_page(request: Request, name: str) -> Any:
    """The datasets a pipeline's tasks read and wrote, with the jobs one step beyond."""
    sub = _pipeline_graph(request, name)
    return _render(
        request,
        "lineage.html",
        title=f"Lineage of pipeline {name}",
        svg=Markup(render_svg(sub)),
        graph=sub.to_dict(),
    )


@router.get("/api/lineage")
def dataset_json(request: Request, dataset: Annotated[str, Query()]) -> dict[str, Any]:
    """Upstream and downstream of a dataset: datasets, jobs and edges."""
    uri, sub = _dataset_graph(request, dataset)
    return {"dataset": uri, **sub.to_dict()}


@router.get("/api/lineage/pipelines/{name}")
def pipeline_json(request: Request, name: str) -> dict[str, Any]:
    """The lineage around a pipeline: datasets, jobs and edges."""
    return {"pipeline": name, **_pipeline_graph(request, name).to_dict()}
