"""Keeping a long-lived stream consumer running: retries, alerts, metrics.

``headrace stream`` runs a :class:`~headrace.streams.stream_loader.StreamLoader` under a
:class:`StreamSupervisor`. When the load loop fails (the broker down, the destination
refusing a load, a second consumer moving the checkpoint), the supervisor sends a retry
alert, waits by the sync's retry policy and starts the loader again; starting again is
always safe, as the loader resumes from the position committed in the warehouse. When
the retries are spent (or the error is terminal: bad configuration) it sends the same
failure alert a failed pipeline task sends and re-raises.

A batch that commits resets the count: the retries bound consecutive failures, not
the failures of a consumer's whole life.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from headrace.errors import TerminalError
from headrace.observe.alerts import Alert, Alerter, AlertKind
from headrace.pipeline.policy import Retry
from headrace.streams.stream_loader import StreamLoader, StreamStats

log = logging.getLogger("headrace.streams")

#: The policy of a consumer whose sync declares no ``retries=``: a broker restart or a
#: short network outage should not page anyone; a longer one should.
DEFAULT_RETRY = Retry(attempts=5, delay=timedelta(seconds=1), backoff=2.0,
                      max_delay=timedelta(seconds=30))  # fmt: skip


class StreamSupervisor:
    """Runs a stream loader until stopped, retrying failures and alerting on them.

    Args:
        loader: the loader to run (its ``stop`` event ends the run, also while waiting
            to retry).
        alerters: where retry and failure alerts go (the global alerter built from the
            settings, the sync's own routes); each decides which kinds it sends.
        retry: the retry policy (default: the sync's ``retries=``, else
            :data:`DEFAULT_RETRY`).
        target: how to restart the consumer, for the failure alert (``FILE:NAME``).

    Example:
        >>> supervisor = StreamSupervisor(StreamLoader(spec, settings),
        ...                               [alerter_from_settings(settings.alerts)])
        >>> supervisor.run()          # until loader.stop is set, or the retries are spent
    """

    def __init__(
        self,
        loader: StreamLoader,
        alerters: Sequence[Alerter] = (),
        *,
        retry: Retry | None = None,
        target: str | None = None,
    ) -> None:
        self.loader, self.alerters, self.target = loader, list(alerters), target
        options = getattr(loader.spec, "task_options", {})
        if retry is None:
            retry = Retry.coerce(options["retries"]) if "retries" in options else DEFAULT_RETRY
        self.retry = retry
        self.attempt = 1

    def run(
        self, *, drain: bool = False, sleep: Callable[[float], Any] | None = None
    ) -> StreamStats:
        """Run the loader, again after each failure while the policy allows.

        Returns:
            The loader's stats once it stopped (or drained the stream).

        Raises:
            Exception: the loader's error once the retries are spent or it is terminal
                (after the failure alert was sent).
        """
        wait = sleep or self.loader.stop.wait
        batches_before = self.loader.stats.batches
        while True:
            try:
                return self.loader.run(drain=drain)
            except Exception as exc:
                if self.loader.stats.batches > batches_before:  # it ran again: a fresh start
                    self.attempt = 1
                batches_before = self.loader.stats.batches
                if isinstance(exc, TerminalError) or self.attempt >= self.retry.attempts:
                    self._alert(AlertKind.FAILURE, exc)
                    raise
                self._alert(AlertKind.RETRY, exc)
                self.attempt += 1
                delay = self.retry.delay_before(self.attempt).total_seconds()
                log.warning("stream %s failed (%s: %s); try %d of %d in %.1f s",
                            self.loader.spec.name, type(exc).__name__, exc, self.attempt,
                            self.retry.attempts, delay)  # fmt: skip
                wait(delay)
                if self.loader.stop.is_set():
                    return self.loader.stats

    def _alert(self, kind: AlertKind, exc: BaseException) -> None:
        spec = self.loader.spec
        where = f"{spec.dataset} -> {spec.destination.connection}.{spec.destination.table}"
        stats = self.loader.stats
        if kind is AlertKind.FAILURE:
            restart = f"headrace stream {self.target}" if self.target else "headrace stream"
            detail = (f"Stream {where} stopped after {stats.loaded:,} events loaded; restart "
                      f"with: {restart} (it resumes from the committed position).")  # fmt: skip
        else:
            detail = f"Stream {where}: the consumer restarts from the committed position."
        alert = Alert(kind=kind, pipeline=spec.name, task_id=None,
                      error=f"{type(exc).__name__}: {exc}", attempt=self.attempt,
                      detail=detail)  # fmt: skip
        for alerter in self.alerters:
            alerter.notify(alert)  # never raises: a dead channel must not stop the consumer
