"""Why a TLS connection to the broker failed, in words: the OpenWire client often says only that
the socket closed, so a handshake of our own with the first TLS URL names the cause."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge import tls
from bridge.errors import ConfigError
from bridge.transports.openwire.url import first_tls_host

if TYPE_CHECKING:
    from bridge.config import BridgeConfig


def tls_cause(exc: Any, config: "BridgeConfig") -> str | None:
    """``TLS: <cause>`` from ``exc``, else from a handshake of our own with the first TLS URL
    (:func:`bridge.tls.java_probe`): the client's own error often says only that the socket closed."""
    cause = tls.describe_java_exception(exc)
    if cause is None or cause.startswith(tls.GENERIC):
        cause = probe(config) or cause
    return cause


def probe(config: "BridgeConfig") -> str | None:
    """The cause a handshake with the first ``ssl://`` URL fails with (None: it succeeds, or none to try)."""
    target = first_tls_host(config.openwire.urls)
    if target is None:
        return None
    try:
        context = tls.java_ssl_context(config.openwire.tls)
    except ConfigError:
        return None
    settings = config.openwire.tls
    return tls.java_probe(context, *target, verify_hostname=settings.verify_hostname and not settings.insecure,
                          timeout=min(5.0, config.connect_timeout))
