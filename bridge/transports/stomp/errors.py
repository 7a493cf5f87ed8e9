"""What the STOMP broker's refusals (of CONNECT, SUBSCRIBE, UNSUBSCRIBE) and TLS alerts mean, as
the bridge's errors (bridge.errors)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, NoReturn

from stomp.exception import StompException

from bridge.errors import AuthenticationError, ClientIdInUseError, ConnectError, SubscriptionError, TransportError

if TYPE_CHECKING:
    from bridge.config import Credentials
    from bridge.transports.stomp.link import Link

_AUTH_MARKERS = ("securityexception", "password is invalid", "failed to login", "authentication failed")
_CLIENT_ID_MARKERS = ("invalidclientidexception", "already connected from")


class Refused(TransportError):
    """The broker answered a frame that asked for a receipt with an ERROR.

    Attributes:
        reason: The ERROR's message. cause: the message of the deepest ``Caused by:`` of the Java
            stack trace ActiveMQ puts in the body (else ``reason``). text: the whole body.
    """

    def __init__(self, what: str, reason: str, text: str) -> None:
        self.reason, self.text = reason, text
        causes = [line[len("Caused by: "):] for line in text.splitlines() if line.startswith("Caused by: ")]
        self.cause = causes[-1].split(": ", 1)[-1].strip() if causes else reason
        super().__init__(f"{what}: the broker said: {reason}")


def subscription_refused(refused: Refused, destination: str, selector: str | None, source: str) -> SubscriptionError:
    """What a refused SUBSCRIBE means: a selector ActiveMQ's parser refused (naming the key and its
    reason), or another refusal no reconnection changes (not authorized to read...)."""
    if selector is not None and "InvalidSelectorException" in refused.text:
        return SubscriptionError(f"{source}: subscription.selector: the broker refused {selector!r}: {refused.cause}")
    return SubscriptionError(f"the broker refused the subscription to {destination}: {refused.reason}")


def unsubscribe_refused(refused: Refused, who: str) -> SubscriptionError:
    """What a refused UNSUBSCRIBE of a durable subscription means."""
    if "InvalidDestinationException" in refused.text or "no durable subscription" in refused.reason.lower():
        return SubscriptionError(f"no {who} on the broker (nothing to remove): {refused.reason}")
    if "in use" in refused.reason.lower():
        return SubscriptionError(f"{who} is in use by a running consumer: {refused.reason}")
    return SubscriptionError(f"the broker refused to remove the {who}: {refused.reason}")


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
