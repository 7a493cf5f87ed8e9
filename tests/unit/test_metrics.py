"""The metrics and health endpoints, over real HTTP on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from bridge.metrics import MetricsServer
from bridge.stats import Stats


def get(server: MetricsServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served():
    stats = Stats(received=7, delivered=5, dead_lettered=1, acknowledged=6, transport="stomp", reconnects=2,
                  sink_writes=3, sink_seconds=0.25)
    server = MetricsServer(stats).start()
    try:
        yield stats, server
    finally:
        server.close()


def test_metrics_show_the_counters_per_transport(served) -> None:
    _, server = served
    code, text = get(server, "/metrics")
    assert code == 200
    for line in ('amq_bridge_received_total{transport="stomp"} 7.0', 'amq_bridge_delivered_total{transport="stomp"} 5.0',
                 'amq_bridge_dead_lettered_total{transport="stomp"} 1.0', 'amq_bridge_reconnects_total{transport="stomp"} 2.0',
                 'amq_bridge_sink_write_seconds_count{transport="stomp"} 3.0',
                 'amq_bridge_sink_write_seconds_sum{transport="stomp"} 0.25', 'amq_bridge_connected{transport="stomp"} 0.0'):
        assert line in text, text


def test_health_and_readiness_follow_the_state(served) -> None:
    stats, server = served
    assert get(server, "/healthz") == (200, "ok\n")
    assert get(server, "/readyz")[0] == 503
    stats.connected = True
    assert get(server, "/readyz") == (200, "ready\n")
    stats.sink_healthy = False
    assert get(server, "/readyz")[0] == 503
    assert get(server, "/nothing")[0] == 404
