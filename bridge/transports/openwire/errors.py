"""Java exceptions of the OpenWire client translated into the bridge's errors (bridge.errors),
with the password never in a message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge import jvm
from bridge.errors import (AuthenticationError, ClientIdInUseError, ConnectError, ConnectionLostError,
                           SubscriptionError, TransportError)
from bridge.transports.openwire.java import classes
from bridge.transports.openwire.tlsprobe import tls_cause
from bridge.transports.openwire.url import uses_tls

if TYPE_CHECKING:
    from bridge.config import BridgeConfig


def connect_error(exc: Any, endpoint: str, config: "BridgeConfig") -> TransportError:
    """The error a failed connection attempt (a Java exception) raises."""
    java, cause = classes(), redact(jvm.describe(exc), config)
    secure = tls_cause(exc, config) if uses_tls(config.openwire.urls) else None
    if secure is not None:
        return ConnectError(f"cannot connect to {endpoint}: {redact(secure, config)}")
    for link in jvm.causes(exc):
        if isinstance(link, java.InvalidClientID):
            return ClientIdInUseError(config.subscription.connection_id)
        if isinstance(link, (java.JMSSecurity, java.Security)):
            return AuthenticationError(f"{endpoint} refused user {config.credentials.username!r}: {cause}")
    return ConnectError(f"cannot connect to {endpoint}: {cause}")


def runtime_error(what: str, exc: Any, lost: str | None, config: "BridgeConfig") -> TransportError:
    """The error a failed operation on an established connection raises; ``lost``: why it is gone, if known."""
    cause = redact(jvm.describe(exc), config)
    if lost is not None or any(isinstance(link, classes().Lost) for link in jvm.causes(exc)):
        return ConnectionLostError(f"{what}: connection lost ({lost or cause})")
    return TransportError(f"{what}: {cause}")


def subscribe_error(what: str, exc: Any, selector: str | None, lost: str | None,
                    config: "BridgeConfig") -> TransportError:
    """The error a failed createConsumer / createDurableSubscriber raises: a refused selector (the
    ActiveMQ client parses it) stops the run, naming the key and ActiveMQ's reason."""
    chain = jvm.causes(exc)
    if any(isinstance(link, classes().InvalidSelector) for link in chain):
        reason = " ".join(str(chain[-1].getMessage() or jvm.describe(exc)).split())  # the deepest cause says why
        return SubscriptionError(f"{config.source}: subscription.selector: ActiveMQ refused {selector!r}: {reason}")
    return runtime_error(what, exc, lost, config)


def unsubscribe_error(who: str, exc: Any, lost: str | None, config: "BridgeConfig") -> TransportError:
    """The error a failed ``session.unsubscribe`` raises: the subscription does not exist, or is in use."""
    cause = redact(jvm.describe(exc), config)
    if any(isinstance(link, classes().InvalidDestination) for link in jvm.causes(exc)):
        return SubscriptionError(f"no {who} on the broker (nothing to remove): {cause}")
    if "in use" in cause.lower():
        return SubscriptionError(f"{who} is in use by a running consumer: {cause}")
    return runtime_error(f"cannot remove {who}", exc, lost, config)


def redact(text: str, config: "BridgeConfig") -> str:
    """``text`` with the configured password replaced by ``***``."""
    password = config.credentials.password
    return text.replace(password, "***") if password else text
