"""``headrace stream FILE[:NAME]``: run a streaming sync as a long-lived consumer."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from headrace.cli.typer_app import app
from headrace.config import Settings
from headrace.errors import ConfigError, did_you_mean


def _split(target: str) -> tuple[str, str | None]:
    file, sep, name = target.rpartition(":")
    if sep and file and "/" not in name and not Path(target).exists():
        return file, name or None
    return target, None


def find_stream(target: str) -> Any:
    """The :class:`StreamSync` ``NAME`` of ``FILE`` (the only one when no name is given)."""
    from headrace.engine.loader import import_pipeline_file
    from headrace.streams.stream_spec import StreamSync

    file, name = _split(target)
    module = import_pipeline_file(file)
    found = {v.name: v for v in vars(module).values() if isinstance(v, StreamSync)}
    if not found:
        raise ConfigError(f"{file} declares no stream_sync(...)")
    if name is None:
        if len(found) > 1:
            raise ConfigError(f"{file} declares several streams ({', '.join(sorted(found))}): "
                              f"name one, {file}:NAME")  # fmt: skip
        return next(iter(found.values()))
    if name not in found:
        raise ConfigError(f"{file} has no stream {name!r}" + did_you_mean(name, list(found)))
    return found[name]


@app.command("stream")
def stream_command(
    target: Annotated[
        str, typer.Argument(help="File declaring a stream_sync, optionally FILE:NAME.")
    ],
    drain: Annotated[
        bool, typer.Option("--drain", help="Load what is in the stream now, then exit.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus /metrics on this port (default: [metrics] port / HEADRACE_METRICS_PORT; needs the 'metrics' extra).",
        ),
    ] = None,
) -> None:
    """Consume a stream into its table exactly once until SIGTERM/Ctrl-C (finishes the batch)."""
    from headrace.observe.alerts import alerter_from_settings
    from headrace.streams.live import StreamView
    from headrace.streams.stream_loader import StreamLoader
    from headrace.streams.supervisor import StreamSupervisor

    spec = find_stream(target)
    settings = Settings.from_env()
    loader = StreamLoader(spec, settings)
    view = StreamView(spec.name, Console(stderr=True))
    hooks = [view.update, *_metric_hooks(spec, settings, metrics_port)]

    def on_batch(stats: Any) -> None:
        for hook in hooks:
            hook(stats)

    loader.on_batch = on_batch
    supervisor = StreamSupervisor(loader, _alerters(spec, settings, alerter_from_settings(settings.alerts)),
                                  target=target)  # fmt: skip

    def stop(signum: int, frame: Any) -> None:  # finish the batch in hand, commit, ack, exit
        loader.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        with view:
            stats = supervisor.run(drain=drain)
    except Exception as exc:  # alerted by the supervisor; the exit says so too
        Console(stderr=True).print(view.line(loader.stats), highlight=False, markup=False)
        raise typer.Exit(_fail(spec.name, exc)) from None
    Console(stderr=True).print(view.line(stats), highlight=False, markup=False)


def _metric_hooks(spec: Any, settings: Settings, port: int | None) -> list[Any]:
    """Prometheus on ``--metrics-port`` (else ``[metrics] port``), StatsD on ``[metrics] statsd``."""
    from headrace.observe.statsd import StatsdClient
    from headrace.streams.live import StreamMetrics, StreamStatsd

    hooks: list[Any] = []
    port = port if port is not None else settings.metrics.port
    if port is not None:
        from headrace.extras import require

        prom = require("metrics", "prometheus_client", "headrace stream metrics ([metrics] port)")
        hooks.append(StreamMetrics(spec.name, spec.dataset).update)
        prom.start_http_server(port, addr="127.0.0.1")
    statsd = StatsdClient.from_settings(settings.metrics)
    if statsd is not None:
        hooks.append(StreamStatsd(spec.name, spec.dataset, statsd).update)
    return hooks


def _alerters(spec: Any, settings: Settings, alerter: Any) -> list[Any]:
    """The global alerter and, if the sync has its own e-mail/webhooks, those (as for a task)."""
    from headrace.engine.notify import route_channels
    from headrace.observe.alerts import Alerter

    routes = spec.task.alerts
    found = [alerter]
    if routes.email or routes.webhooks:
        channels = route_channels(routes, alerter, f"stream {spec.name!r}")
        found.append(
            Alerter(channels, on_failure=routes.email_on_failure, on_retry=routes.email_on_retry)
        )
    return found


def _fail(name: str, exc: BaseException) -> int:
    Console(stderr=True).print(f"stream {name} failed: {type(exc).__name__}: {exc}",
                               highlight=False, markup=False)  # fmt: skip
    return 1
