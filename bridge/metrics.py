"""Prometheus metrics and health checks over HTTP, read from the runner's counters.

``/metrics`` (Prometheus text format, built with prometheus-client), ``/healthz`` (the process
answers) and ``/readyz`` (connected to the broker, the sink healthy, and, with
``metrics.max_event_age``, not behind by more than that while events wait: 200, else 503), all
on one port. The numbers are read from :class:`bridge.stats.Stats` at scrape time; the runner
only counts (the event age histogram once per batch, see :meth:`Stats.record_ages`).
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from bridge.errors import BridgeError
from bridge.stats import AGE_BUCKETS, Stats

log = logging.getLogger(__name__)


class _Collector:
    """Turns a Stats object into Prometheus metric families."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                            SummaryMetricFamily)
        from prometheus_client.utils import floatToGoString

        s, labels = self.stats, ["transport"]
        value = [s.transport or "none"]
        for name, doc, number in (
            ("received", "Events taken off the broker", s.received),
            ("delivered", "Events made durable in the sink", s.delivered),
            ("dead_lettered", "Events written to the dead-letter file", s.dead_lettered),
            ("acknowledged", "Events acknowledged to the broker", s.acknowledged),
            ("duplicates", "Redeliveries acknowledged without writing them again", s.duplicates),
            ("reconnects", "Connections opened again after a loss", s.reconnects),
        ):
            family = CounterMetricFamily(f"amq_bridge_{name}", doc, labels=labels)
            family.add_metric(value, number)
            yield family
        latency = SummaryMetricFamily("amq_bridge_sink_write_seconds", "Time to write and flush one batch",
                                      labels=labels)
        latency.add_metric(value, count_value=s.sink_writes, sum_value=s.sink_seconds)
        yield latency
        for name, doc, flag in (("connected", "1 while connected to the broker", s.connected),
                                ("sink_healthy", "1 unless the sink is failing", s.sink_healthy)):
            gauge = GaugeMetricFamily(f"amq_bridge_{name}", doc, labels=labels)
            gauge.add_metric(value, 1.0 if flag else 0.0)
            yield gauge
        ages = HistogramMetricFamily("amq_bridge_event_age_seconds", "Age of delivered events at the sink's "
                                     "commit: commit time minus broker timestamp", labels=labels)
        buckets = [(floatToGoString(bound), float(n)) for bound, n in zip(AGE_BUCKETS, list(s.ages_le))]
        ages.add_metric(value, buckets + [("+Inf", float(s.ages_count))], sum_value=s.ages_sum)
        yield ages
        if s.event_age is not None:
            last = GaugeMetricFamily("amq_bridge_last_event_age_seconds", "Age of the newest event of the "
                                     "last delivered batch at its commit", labels=labels)
            last.add_metric(value, s.event_age)
            yield last


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` for one runner's stats.

    Args:
        stats: The counters to expose.
        host: Address to listen on (default loopback).
        port: Port; 0 picks a free one (see :attr:`port`).
        max_event_age: ``/readyz`` answers 503 while events wait and the sink is more than this
            many seconds behind (:meth:`Stats.behind`); None: not checked.
    """

    def __init__(self, stats: Stats, host: str = "127.0.0.1", port: int = 0,
                 max_event_age: float | None = None) -> None:
        try:
            from prometheus_client import CollectorRegistry, generate_latest
        except ImportError as exc:
            raise BridgeError("metrics need prometheus-client: pip install 'amq-bridge[metrics]'") from exc
        registry = CollectorRegistry()
        registry.register(_Collector(stats))  # type: ignore[arg-type]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/metrics":
                    self._answer(200, generate_latest(registry), "text/plain; version=0.0.4")
                elif self.path == "/healthz":
                    self._answer(200, b"ok\n")
                elif self.path == "/readyz":
                    ready = stats.connected and stats.sink_healthy and not stats.behind(max_event_age)
                    self._answer(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
                else:
                    self._answer(404, b"not found\n")

            def _answer(self, code: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # one line per scrape is noise
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise BridgeError(f"metrics: cannot listen on {host}:{port} ({exc.strerror})") from exc
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="amq-bridge-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        """Start serving on a background thread."""
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics, /healthz, /readyz", *self.server.server_address[:2])
        return self

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
