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
    target: Annotated[str, typer.Argument(help="File declaring a stream_sync, optionally FILE:NAME.")],
    drain: Annotated[bool, typer.Option("--drain", help="Load what is in the stream now, then exit.")] = False,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port (needs the 'metrics' extra).")] = None,
) -> None:
    """Consume a stream into its table exactly once until SIGTERM/Ctrl-C (finishes the batch)."""
    from headrace.streams.live import StreamMetrics, StreamView
    from headrace.streams.stream_loader import StreamLoader

    spec = find_stream(target)
    settings = Settings.from_env()
    loader = StreamLoader(spec, settings)
    view = StreamView(spec.name, Console(stderr=True))
    hooks = [view.update]
    if metrics_port is not None:
        from headrace.extras import require

        prom = require("metrics", "prometheus_client", "headrace stream --metrics-port")
        hooks.append(StreamMetrics(spec.name, spec.dataset).update)
        prom.start_http_server(metrics_port, addr="127.0.0.1")

    def on_batch(stats: Any) -> None:
        for hook in hooks:
            hook(stats)

    loader.on_batch = on_batch

    def stop(signum: int, frame: Any) -> None:  # finish the batch in hand, commit, ack, exit
        loader.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with view:
        stats = loader.run(drain=drain)
    Console(stderr=True).print(view.line(stats), highlight=False, markup=False)
