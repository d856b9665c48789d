"""The web application: HTML pages, the JSON API and ``/metrics`` over one state store.

Example:
    >>> from headrace.config import Settings
    >>> from headrace.web import create_app
    >>> app = create_app(Settings.load())
    >>> # uvicorn.run(app, host="127.0.0.1", port=8321)  (what ``headrace web`` does)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

import headrace
from headrace.config import Settings, mask_url
from headrace.extras import MissingExtraError, require
from headrace.masking import register_settings
from headrace.state import open_store
from headrace.state.store_base import StateStore
from headrace.web import (
    action_routes,
    api_routes,
    lineage_routes,
    login_routes,
    page_routes,
    view_routes,
)
from headrace.web.api_routes import WebContext
from headrace.web.auth import WebAuth
from headrace.web.jobs import Jobs
from headrace.web.security import session_gate


def create_app(
    settings: Settings,
    store: StateStore | None = None,
    pipelines_dir: str | Path | None = None,
    refresh_seconds: int = 5,
    auth: WebAuth | None = None,
    executor: str = "process",
) -> FastAPI:
    """Build the app: pages at ``/``, the API under ``/api``, metrics at ``/metrics``.

    Args:
        settings: read once by the caller (the CLI); gives the store URL when ``store`` is None.
        store: an open store to serve; the caller keeps ownership and closes it. When
            None the store at ``settings.state_url`` is opened here and closed when the
            app shuts down.
        pipelines_dir: a folder whose ``*.py`` pipeline files are listed beside the
            pipelines that have runs.
        refresh_seconds: pages showing unfinished runs reload this often (0: never).
        auth: who may log in and act (read from the environment by the caller with
            :meth:`WebAuth.from_env`); None or unconfigured: read-only UI, actions refused.
        executor: the Runner executor of runs started from the web (``process`` as the CLI).

    Returns:
        The FastAPI application. ``/openapi.json`` describes the API; the Swagger page
        (``/docs``) is off, since it loads its scripts from a CDN.
    """
    register_settings(settings)  # served texts mask their passwords
    owned = store is None
    served: StateStore = open_store(settings.state_url) if store is None else store
    location = getattr(served, "location", None) or mask_url(settings.state_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            jobs.shutdown()
            if owned:
                served.close()

    app = FastAPI(
        title="headrace",
        version=headrace.__version__,
        description="Runs, task instances, logs and data-quality results of the headrace state store.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = WebContext(
        store=served,
        location=location,
        pipelines_dir=Path(pipelines_dir) if pipelines_dir is not None else None,
        refresh_seconds=refresh_seconds,
        settings=settings,
    )
    app.state.auth = auth or WebAuth()
    jobs = app.state.jobs = Jobs(served, settings, executor=executor)
    app.middleware("http")(session_gate)
    metrics_page = _metrics_page(served)
    app.include_router(api_routes.router)
    app.include_router(action_routes.api)
    app.include_router(action_routes.forms)
    app.include_router(login_routes.router)
    app.include_router(view_routes.router)
    app.include_router(page_routes.router)
    app.include_router(lineage_routes.router)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return metrics_page()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # The API answers JSON; a person in a browser gets a page saying what went wrong.
        if (
            request.url.path.startswith("/api/")
            or request.url.path == "/metrics"
            or request.headers.get("accept", "").startswith("application/json")
        ):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return page_routes.error_page(request, exc.status_code, str(exc.detail))

    return app


def _metrics_page(store: StateStore) -> Callable[[], Response]:
    """The ``/metrics`` handler: Prometheus text, or a 501 naming the extra to install.

    Args:
        store: the store the figures are read from on each scrape.

    Returns:
        A function answering one scrape.
    """
    try:
        prometheus = require("metrics", "prometheus_client", "/metrics")
    except MissingExtraError as exc:
        missing = str(exc)

        def unavailable() -> Response:
            raise HTTPException(status_code=501, detail=missing)

        return unavailable
    from headrace.observe.metrics import StoreCollector  # needs prometheus_client, checked above

    # One registry per app: no process-global collectors, two apps never share figures.
    registry = prometheus.CollectorRegistry()
    registry.register(StoreCollector(store))

    def page() -> Response:
        return Response(
            prometheus.generate_latest(registry), media_type=prometheus.CONTENT_TYPE_LATEST
        )

    return page
