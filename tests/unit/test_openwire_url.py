"""Building the OpenWire failover URL from the configuration (no JVM involved)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from bridge.config import ReconnectConfig
from bridge.transports.openwire.url import broker_url, shown, startup_attempts

POLICY = ReconnectConfig(initial_delay=0.5, max_delay=30, max_attempts=0)


def outer_options(url: str) -> dict[str, str]:
    return dict(parse_qsl(url.rpartition(")?")[2]))


def test_one_url_is_wrapped_in_failover_with_backoff_and_inactivity() -> None:
    url = broker_url(["tcp://127.0.0.1:61616"], 10, heartbeat_ms=2000, reconnect=POLICY, uniform=lambda a, b: 1.0)
    assert url.startswith("failover:(tcp://127.0.0.1:61616?")
    nested = dict(parse_qsl(url[len("failover:("):url.index(")?")].partition("?")[2]))
    assert nested["wireFormat.maxInactivityDuration"] == "2000"
    outer = outer_options(url)
    assert outer["randomize"] == "false" and outer["useExponentialBackOff"] == "true"
    assert outer["initialReconnectDelay"] == "500" and outer["maxReconnectDelay"] == "30000"
    assert outer["maxReconnectAttempts"] == "-1"  # 0 in the config: forever


def test_jitter_spreads_the_initial_delay_within_half_to_one_and_a_half() -> None:
    low = broker_url(["tcp://h:1"], 10, heartbeat_ms=0, reconnect=POLICY, uniform=lambda a, b: a)
    high = broker_url(["tcp://h:1"], 10, heartbeat_ms=0, reconnect=POLICY, uniform=lambda a, b: b)
    assert outer_options(low)["initialReconnectDelay"] == "250"
    assert outer_options(high)["initialReconnectDelay"] == "750"


def test_several_urls_keep_their_order_and_user_options_win() -> None:
    url = broker_url(["tcp://a:1?wireFormat.maxInactivityDuration=5000", "tcp://b:2?jms.prefetchPolicy.all=5"],
                     10, heartbeat_ms=2000, reconnect=ReconnectConfig(max_attempts=7))
    assert url.index("tcp://a:1") < url.index("tcp://b:2")
    assert "wireFormat.maxInactivityDuration=5000" in url and "maxInactivityDuration=2000&" not in url.split(",")[0]
    outer = outer_options(url)
    assert outer["jms.prefetchPolicy.all"] == "5" and outer["maxReconnectAttempts"] == "7"


def test_startup_attempts_fit_in_the_connect_timeout() -> None:
    assert startup_attempts(1, 500, 30000) == 2
    assert startup_attempts(10, 500, 30000) >= 4


def test_urls_shown_to_people_carry_no_credentials_or_options() -> None:
    assert shown(["tcp://user:pw@h:1?jms.password=pw"]) == "tcp://h:1"
    assert shown(["tcp://a:1", "ssl://b:2"]) == "failover:(tcp://a:1,ssl://b:2)"
