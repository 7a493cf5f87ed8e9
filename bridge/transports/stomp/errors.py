"""What the STOMP broker's refusals and TLS alerts mean, as the bridge's errors (bridge.errors)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, NoReturn

from stomp.exception import StompException

from bridge.errors import AuthenticationError, ClientIdInUseError, ConnectError

if TYPE_CHECKING:
    from bridge.config import Credentials
    from bridge.transports.stomp.link import Link

_AUTH_MARKERS = ("securityexception", "password is invalid", "failed to login", "authentication failed")
_CLIENT_ID_MARKERS = ("invalidclientidexception", "already connected from")


def raise_tls_refusal(link: "Link", host: str) -> None:
    """Raise a ConnectError naming the TLS cause when the connection ended with a TLS alert."""
    if isinstance(link.read_error, ssl.SSLError):
        from bridge import tls
        raise ConnectError(f"{link.endpoint} ({tls.describe_python(link.read_error, host)})") from link.read_error


def raise_refusal(link: "Link", creds: "Credentials", connection_id: str) -> NoReturn:
    """Raise the error that the ERROR frame answering CONNECT (``link.refusal``) stands for,
    without the password."""
    endpoint = link.endpoint
    summary, text = link.refusal
    summary = summary.replace(creds.password, "***") if creds.password else summary
    cause = StompException(f"ERROR frame from {endpoint}: {summary}")
    if any(marker in text for marker in _CLIENT_ID_MARKERS):
        raise ClientIdInUseError(connection_id) from cause
    if any(marker in text for marker in _AUTH_MARKERS):
        raise AuthenticationError(f"{endpoint} refused user {creds.username!r}: {summary}") from cause
    raise ConnectError(f"{endpoint} refused the connection: {summary}") from cause
