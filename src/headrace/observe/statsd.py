"""Push metrics to a StatsD or DogStatsD agent over UDP (Datadog's agent, statsd_exporter).

One datagram per metric, DogStatsD format ``<prefix>.<name>:<value>|<type>|#tag:v,...``
(plain StatsD agents ignore the ``|#`` part); many values of one metric go as lines
packed into datagrams of at most :data:`MAX_DATAGRAM` bytes. UDP is fire-and-forget: a send costs a
system call and never waits; an agent that is down loses the datagram, counted in
:attr:`StatsdClient.errors`, never an error for the run.

Metrics headrace sends (prefix ``headrace``): ``runs`` (count, tags pipeline/state),
``task.duration`` (timing, ms, tags pipeline/task; a mapped task's elements each
send theirs, at most 100 of them: beyond that, 100 evenly spread from a random start,
sent with the rate ``|@r`` so the agent's counts stay right), ``task.retries``, ``task.finished`` (tags state),
``rows.loaded``, ``rows.quarantined``, ``sla.misses``, ``queue.depth`` (gauge), and a
task's own ``ctx.metric(name, value)`` as ``custom.<name>`` (gauge).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from headrace.config import MetricsSettings
from headrace.errors import ConfigError

_BAD = re.compile(r"[^A-Za-z0-9_.\-/]")
#: Largest datagram :meth:`StatsdClient.send_lines` sends (fits a 1500-byte MTU).
MAX_DATAGRAM = 1432


def tag_list(tags: Mapping[str, object] | Iterable[str] | None) -> list[str]:
    """``{"pipeline": "etl"}`` or ``["pipeline:etl"]`` as DogStatsD tags."""
    if not tags:
        return []
    if isinstance(tags, Mapping):
        return [f"{k}:{v}" for k, v in tags.items()]
    return [str(t) for t in tags]


class StatsdClient:
    """A DogStatsD client over one UDP socket.

    Args:
        url: ``udp://host:port``.
        prefix: first part of every name.
        tags: tags added to every metric.
    """

    def __init__(self, url: str, prefix: str = "headrace", tags: Iterable[str] = ()) -> None:
        parts = urlsplit(url)
        if parts.scheme != "udp" or not parts.hostname:
            raise ConfigError(f"StatsD address must be udp://host:port, got {url!r}")
        self.address = (parts.hostname, parts.port or 8125)
        self.prefix = prefix.rstrip(".")
        self.tags = list(tags)
        self.errors = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    @classmethod
    def from_settings(cls, settings: MetricsSettings) -> StatsdClient | None:
        """A client for ``[metrics] statsd``, or None when none is configured."""
        return cls(settings.statsd, settings.prefix, settings.tags) if settings.statsd else None

    def count(
        self, name: str, value: float = 1, tags: Mapping[str, object] | Iterable[str] | None = None
    ) -> None:
        self._send(name, value, "c", tags)

    def gauge(
        self, name: str, value: float, tags: Mapping[str, object] | Iterable[str] | None = None
    ) -> None:
        self._send(name, value, "g", tags)

    def timing(
        self, name: str, ms: float, tags: Mapping[str, object] | Iterable[str] | None = None
    ) -> None:
        self._send(name, ms, "ms", tags)

    def line(
        self, name: str, value: float, kind: str, tags: Mapping[str, object] | Iterable[str] | None
    ) -> str:
        """The DogStatsD line of one metric."""
        head, tail = self.parts(name, kind, tags)
        number = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{head}{number}{tail}"

    def parts(
        self,
        name: str,
        kind: str,
        tags: Mapping[str, object] | Iterable[str] | None,
        rate: float = 1.0,
    ) -> tuple[str, str]:
        """What comes before and after the value in a line: ``("headrace.x:", "|ms|#a:b")``;
        callers sending one metric many times keep them (a line is then one f-string).
        A ``rate`` below 1 says the values are a sample (``|@0.1``: each stands for 10)."""
        metric = _BAD.sub("_", f"{self.prefix}.{name}" if self.prefix else name)
        all_tags = [
            *self.tags,
            *(
                _BAD.sub("_", t.split(":", 1)[0]) + t[len(t.split(":", 1)[0]) :]
                for t in tag_list(tags)
            ),
        ]
        sampled = f"|@{rate:.6g}" if rate < 1 else ""
        return f"{metric}:", f"|{kind}{sampled}" + (f"|#{','.join(all_tags)}" if all_tags else "")

    def _send(
        self, name: str, value: float, kind: str, tags: Mapping[str, object] | Iterable[str] | None
    ) -> None:
        try:
            self._sock.sendto(self.line(name, value, kind, tags).encode(), self.address)
        except OSError:  # agent down, buffer full: a metric lost, the run goes on
            self.errors += 1

    def send_lines(self, lines: list[str]) -> None:
        """Send many lines in as few datagrams as fit (newline-separated, at most
        :data:`MAX_DATAGRAM` bytes each, as DogStatsD and statsd_exporter accept)."""
        packet: list[str] = []
        size = 0
        for line in lines:
            if packet and size + len(line) + 1 > MAX_DATAGRAM:
                self._raw("\n".join(packet))
                packet, size = [], 0
            packet.append(line)
            size += len(line) + 1
        if packet:
            self._raw("\n".join(packet))

    def _raw(self, text: str) -> None:
        try:
            self._sock.sendto(text.encode(), self.address)
        except OSError:
            self.errors += 1

    def close(self) -> None:
        self._sock.close()


class QueuedStatsd:
    """A :class:`StatsdClient` whose lines are formatted and sent on a background thread:
    a metric costs the run's thread a tuple on a queue; the thread packs what gathered
    (a whole run's metrics, usually) into as few datagrams as fit.

    Args:
        client: the client that sends.
        log: where the one warning about dropped metrics goes.
    """

    def __init__(self, client: StatsdClient, log: logging.Logger | None = None) -> None:
        from headrace.observe.background import BackgroundSender

        self.client = client
        self.sender = BackgroundSender(self._send, "statsd", 100_000, log, batch=True)
        # (name, kind, tags, rate) -> the line's parts: a run sends the same few again and again
        self._parts: dict[tuple[Any, ...], tuple[str, str]] = {}

    def count(self, name: str, value: float = 1, tags: Mapping[str, object] | None = None) -> None:
        self.sender.put((name, value, "c", tags, 1.0))

    def timing(self, name: str, ms: float, tags: Mapping[str, object] | None = None) -> None:
        self.sender.put((name, ms, "ms", tags, 1.0))

    def timings(
        self, name: str, ms: list[float], tags: Mapping[str, object] | None, rate: float = 1.0
    ) -> None:
        """Many values of one timing (``rate`` below 1: they are a sample, ``|@rate``)."""
        self.sender.put((name, ms, "ms", tags, rate))

    def _send(self, items: list[tuple[str, Any, str, Mapping[str, object] | None, float]]) -> None:
        lines: list[str] = []
        cache = self._parts
        for name, value, kind, tags, rate in items:
            head, tail = self._line_parts(cache, name, kind, tags, rate)
            if isinstance(value, list):
                lines.extend(
                    [
                        f"{head}{v:g}{tail}" if isinstance(v, float) else f"{head}{v}{tail}"
                        for v in value
                    ]
                )
            else:
                lines.append(
                    f"{head}{value:g}{tail}" if isinstance(value, float) else f"{head}{value}{tail}"
                )
        self.client.send_lines(lines)

    def _line_parts(
        self,
        cache: dict[tuple[Any, ...], tuple[str, str]],
        name: str,
        kind: str,
        tags: Mapping[str, object] | None,
        rate: float,
    ) -> tuple[str, str]:
        try:
            key = (name, kind, tuple(tags.items()) if tags else (), rate)
            parts = cache.get(key)
        except TypeError:  # a tag value that cannot be a key: made each time
            return self.client.parts(name, kind, tags, rate)
        if parts is None:
            if len(cache) > 10_000:  # tags of many pipelines and tasks: keep the recent ones
                cache.clear()
            parts = cache[key] = self.client.parts(name, kind, tags, rate)
        return parts

    def flush(self, timeout: float = 5.0) -> bool:
        return self.sender.flush(timeout)

    def close(self) -> None:
        self.sender.close()
        self.client.close()
