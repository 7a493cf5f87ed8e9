"""The connection URL of the OpenWire transport: always ``failover:``, with backoff and heartbeats.

Every configured URL, even a single one, is wrapped in ActiveMQ's failover transport, so a
connection that breaks after it was established is re-established underneath the JMS objects
(the session and consumer survive; unacknowledged messages are redelivered)::

    failover:(tcp://a:61616?connectionTimeout=C&wireFormat.maxInactivityDuration=H
                 &wireFormat.maxInactivityDurationInitalDelay=I,tcp://b:61616?...)
      ?randomize=false&initialReconnectDelay=J&maxReconnectDelay=M&useExponentialBackOff=true
      &maxReconnectAttempts=R&startupMaxReconnectAttempts=S&timeout=T

* ``C`` (TCP connect) is ``connect_timeout`` shared among the URLs; ``T`` bounds how long a send,
  subscribe or close waits for a reconnection before it fails.
* ``H`` is ``openwire.heartbeat_ms``: each side sends a keep-alive when it has written nothing for
  ``H/3`` and drops the connection when it has read nothing for ``H`` (checked every ``H``; a
  check right after traffic is skipped), so a silently stalled connection is detected after
  2 to 3 ``H`` (measured: 5.2-6.0 s for 2 s). Broker and client use the lower of their values. 0 turns monitoring off on both sides. ``I`` (when the checks start, which
  is also how long the wire-format handshake may take) is ``H``, at least 1 s, at most
  ``connect_timeout`` (which it is when monitoring is off).
* Reconnecting after a break follows ActiveMQ's exponential backoff from ``reconnect``: ``J``
  doubles after each failed round up to ``M``; ``R`` rounds (``reconnect.max_attempts``, 0 = -1 =
  forever), then the connection fails for good. ActiveMQ adds no jitter, so ``J`` is drawn per
  transport instance at random in [0.5, 1.5] x ``reconnect.initial_delay``: a fleet of bridges
  whose broker restarts does not reconnect in lockstep.
* The first connection is bounded by ``connect_timeout`` instead: ``S`` rounds are as many as fit
  in 80 % of it, so ``connect()`` fails in time and the caller retries on its own schedule.
* ``ssl://`` (and ``nio+ssl://``) URLs get ``socket.verifyHostName=true`` (the client's default
  since ActiveMQ 5.15, written out so that it is visible), or ``false`` with
  ``openwire.tls.verify_hostname: false`` or ``insecure: true``. Keys and trust are not URL
  options: the transport hands them to failover as an ``SslContext`` (see :mod:`bridge.tls`).
* ``jms.*`` options given on a URL configure the connection factory; they are moved to the outer
  query, where ActiveMQ reads them. Options already present on a URL are never overridden.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from bridge.config import ReconnectConfig

#: Schemes whose URLs take the TCP and wire-format options.
TCP_SCHEMES = ("tcp", "ssl", "nio", "nio+ssl")
#: Schemes that speak TLS.
TLS_SCHEMES = ("ssl", "nio+ssl")


def broker_url(urls: Sequence[str], timeout: float, *, heartbeat_ms: int, reconnect: "ReconnectConfig",
               uniform: Callable[[float, float], float] = random.uniform, verify_hostname: bool = True) -> str:
    """The URL given to ActiveMQConnectionFactory.

    Args:
        urls: The configured broker URLs, tried in order.
        timeout: ``connect_timeout`` in seconds.
        heartbeat_ms: ``openwire.heartbeat_ms`` (0: no inactivity monitoring).
        reconnect: The backoff after an established connection broke.
        uniform: The random source of the jitter (tests pass a fixed one).
        verify_hostname: Whether TLS URLs check the broker's certificate against the host name.
    """
    ms = max(1000, int(timeout * 1000))
    initial = max(10, round(reconnect.initial_delay * 1000 * uniform(0.5, 1.5)))
    maximum = max(initial, round(reconnect.max_delay * 1000))
    outer: dict[str, object] = {
        "randomize": "false",
        "initialReconnectDelay": initial,
        "maxReconnectDelay": maximum,
        "useExponentialBackOff": "true",
        "maxReconnectAttempts": reconnect.max_attempts or -1,
        "startupMaxReconnectAttempts": startup_attempts(timeout, initial, maximum),
        "timeout": ms,
    }
    nested = []
    for url in urls:
        parts = urlsplit(url)
        own = [item for item in parts.query.split("&") if item]
        for item in [item for item in own if item.startswith("jms.")]:
            own.remove(item)
            outer.setdefault(item.partition("=")[0], item.partition("=")[2])
        if parts.scheme in TCP_SCHEMES:
            present = dict(item.partition("=")[::2] for item in own)
            given = present.get("wireFormat.maxInactivityDuration", "")
            heartbeat = int(given) if given.isdigit() else heartbeat_ms
            options = {
                "connectionTimeout": max(1000, ms // len(urls)),
                "wireFormat.maxInactivityDuration": heartbeat,
                "wireFormat.maxInactivityDurationInitalDelay": min(ms, max(heartbeat, 1000)) if heartbeat else ms,
            }
            if parts.scheme in TLS_SCHEMES:
                options["socket.verifyHostName"] = "true" if verify_hostname else "false"
            own += [f"{key}={value}" for key, value in options.items() if key not in present]
        nested.append(urlunsplit(parts._replace(query="&".join(own))))
    return f"failover:({','.join(nested)})?" + "&".join(f"{key}={value}" for key, value in outer.items())


def startup_attempts(timeout: float, initial_ms: int, maximum_ms: int) -> int:
    """Rounds over the URLs that fit in 80 % of ``timeout`` seconds at the start.

    At the start, failover tries every URL, then waits ``initial_ms``, doubling up to
    ``maximum_ms`` after each round, until this many rounds failed.
    """
    attempts, elapsed, delay = 1, 0.0, initial_ms / 1000
    while elapsed + delay < 0.8 * timeout:
        elapsed, delay, attempts = elapsed + delay, min(delay * 2, maximum_ms / 1000), attempts + 1
    return attempts


def shown(urls: Sequence[str]) -> str:
    """The URLs as shown to people: no user info, no query (it may hold jms.password)."""
    text = [urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=""))
            for parts in map(urlsplit, urls)]
    return text[0] if len(text) == 1 else f"failover:({','.join(text)})"


def uses_tls(urls: Sequence[str]) -> bool:
    """Whether any of ``urls`` is a TLS one (``ssl://``, ``nio+ssl://``)."""
    return any(urlsplit(url).scheme in TLS_SCHEMES for url in urls)


def first_tls_host(urls: Sequence[str]) -> tuple[str, int] | None:
    """``(host, port)`` of the first ``ssl://`` (or ``nio+ssl://``) URL, else None."""
    for url in urls:
        parsed = urlsplit(url)
        if parsed.scheme in TLS_SCHEMES and parsed.hostname and parsed.port:
            return parsed.hostname, parsed.port
    return None
