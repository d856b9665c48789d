"""Watching a running stream: a live line of rate and lag (Rich, stderr) and Prometheus
gauges and counters (when prometheus-client, the ``metrics`` extra, is installed)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from headrace.streams.stream_loader import StreamStats


class StreamView:
    """Rate, totals, lag and commit latency of one stream, redrawn after each batch.

    On a terminal the line is redrawn in place; otherwise one line is printed every
    ``every`` seconds (logs stay readable).
    """

    def __init__(self, name: str, console: Console, every: float = 5.0) -> None:
        self.name, self.console, self.every = name, console, every
        self._live: Live | None = None
        self._last = 0.0
        self._prev = (time.monotonic(), 0)
        self.rate = 0.0

    def __enter__(self) -> StreamView:
        if self.console.is_terminal:
            self._live = Live(Text(""), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def line(self, stats: StreamStats) -> str:
        """The status text: events/s (recent), totals, lag, last commit time."""
        now = time.monotonic()
        then, events = self._prev
        if now - then >= 1.0:
            self.rate = (stats.events - events) / (now - then)
            self._prev = (now, stats.events)
        lag = "?" if stats.lag is None else f"{stats.lag:,}"
        return (
            f"stream {self.name}: {self.rate:,.0f} ev/s · {stats.events:,} read · "
            f"{stats.loaded:,} loaded · {stats.quarantined:,} quarantined · "
            f"{stats.skipped:,} already loaded · lag {lag} · "
            f"commit {stats.last_commit_s * 1000:.0f} ms"
        )

    def update(self, stats: StreamStats) -> None:
        """Show the stats after a batch."""
        text = self.line(stats)
        if self._live is not None:
            self._live.update(Text(text))
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.console.print(text, highlight=False, markup=False)


class StreamMetrics:
    """Prometheus series of a stream, labelled by sync name and stream dataset.

    ``headrace_stream_events_total{outcome=loaded|quarantined|skipped}``,
    ``headrace_stream_lag`` (events, or ms behind for Kinesis),
    ``headrace_stream_commit_seconds`` (histogram of load transactions).
    """

    def __init__(self, name: str, dataset: str, registry: Any = None) -> None:
        from headrace.extras import require

        prom = require("metrics", "prometheus_client", "stream metrics")
        kwargs = {"registry": registry} if registry is not None else {}
        labels = ["sync", "stream"]
        self.events = prom.Counter("headrace_stream_events", "Stream events by outcome",
                                   labels + ["outcome"], **kwargs)  # fmt: skip
        self.lag = prom.Gauge("headrace_stream_lag", "Events not yet delivered", labels, **kwargs)
        self.commit = prom.Histogram("headrace_stream_commit_seconds",
                                     "Load transaction time per batch", labels, **kwargs)  # fmt: skip
        self.labels = (name, dataset)
        self._seen = (0, 0, 0, 0)

    def update(self, stats: StreamStats) -> None:
        """Move the series to the stats after a batch."""
        loaded, quarantined, skipped, batches = self._seen
        self.events.labels(*self.labels, "loaded").inc(stats.loaded - loaded)
        self.events.labels(*self.labels, "quarantined").inc(stats.quarantined - quarantined)
        self.events.labels(*self.labels, "skipped").inc(stats.skipped - skipped)
        for seconds in stats.commit_seconds[batches:]:
            self.commit.labels(*self.labels).observe(seconds)
        if stats.lag is not None:
            self.lag.labels(*self.labels).set(stats.lag)
        del stats.commit_seconds[:-1000]  # bounded memory in a long-lived consumer
        self._seen = (stats.loaded, stats.quarantined, stats.skipped, len(stats.commit_seconds))


class StreamStatsd:
    """The same figures pushed to the StatsD/DogStatsD agent of ``[metrics] statsd``.

    ``<prefix>.stream.events`` (count, tag ``outcome``), ``<prefix>.stream.lag``
    (gauge) and ``<prefix>.stream.commit`` (timing, ms), tagged ``sync`` and ``stream``.
    """

    def __init__(self, name: str, dataset: str, client: Any) -> None:
        self.client = client
        self.tags = {"sync": name, "stream": dataset}
        self._seen = (0, 0, 0, 0)

    def update(self, stats: StreamStats) -> None:
        """Send what changed since the last call (one batch at most: called per batch)."""
        loaded, quarantined, skipped, batches = self._seen
        for outcome, n in (("loaded", stats.loaded - loaded),
                           ("quarantined", stats.quarantined - quarantined),
                           ("skipped", stats.skipped - skipped)):  # fmt: skip
            if n:
                self.client.count("stream.events", n, {**self.tags, "outcome": outcome})
        if stats.batches > batches:
            self.client.timing("stream.commit", stats.last_commit_s * 1000, self.tags)
        if stats.lag is not None:
            self.client.gauge("stream.lag", stats.lag, self.tags)
        self._seen = (stats.loaded, stats.quarantined, stats.skipped, stats.batches)
