"""The metrics and health endpoints, over real HTTP on loopback."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from bridge.event import Event
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


def test_event_age_histogram_gauge_and_readiness_past_max_age() -> None:
    stats = Stats(transport="stomp", connected=True)
    server = MetricsServer(stats, max_event_age=5.0).start()
    try:
        text = get(server, "/metrics")[1]
        assert 'amq_bridge_event_age_seconds_count{transport="stomp"} 0.0' in text
        assert "amq_bridge_last_event_age_seconds" not in text  # no event yet
        now = time.time()
        batch = [Event(b"{}", {}, str(i), "queue:q", timestamp=int((now - age) * 1000)) for i, age in
                 enumerate((0.02, 0.3, 7.0))]
        stats.record_ages(batch, now)
        text = get(server, "/metrics")[1]
        for line in ('amq_bridge_event_age_seconds_bucket{le="0.025",transport="stomp"} 1.0',
                     'amq_bridge_event_age_seconds_bucket{le="0.5",transport="stomp"} 2.0',
                     'amq_bridge_event_age_seconds_bucket{le="10.0",transport="stomp"} 3.0',
                     'amq_bridge_event_age_seconds_bucket{le="+Inf",transport="stomp"} 3.0',
                     'amq_bridge_event_age_seconds_count{transport="stomp"} 3.0'):
            assert line in text, text
        assert re.search(r'amq_bridge_last_event_age_seconds\{transport="stomp"\} 0\.0[12]', text), text
        assert get(server, "/readyz")[0] == 200  # old, but nothing waits
        stats.took(batch[2:], limit=500)  # a batch in hand whose first event is 7 s old
        assert get(server, "/readyz") == (503, "not ready\n")
        stats.in_hand = 0
        assert get(server, "/readyz")[0] == 200
    finally:
        server.close()
