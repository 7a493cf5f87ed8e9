"""The JMS connection factory: ActiveMQ's, or the class named by ``openwire.connection_factory``,
and the ActiveMQ settings this transport depends on."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bridge import jvm
from bridge.errors import ConfigError, TransportUnavailableError
from bridge.transports.openwire.errors import redact
from bridge.transports.openwire.java import classes

if TYPE_CHECKING:
    from bridge.config import BridgeConfig

log = logging.getLogger(__name__)


def make_factory(config: "BridgeConfig", url: str) -> Any:
    """ActiveMQConnectionFactory for ``url``, or an instance of ``openwire.connection_factory``.

    Raises:
        TransportUnavailableError: The class is not on the classpath or cannot be constructed.
        ConfigError: The class is not a javax.jms.ConnectionFactory.
    """
    java, name = classes(), config.openwire.connection_factory
    if name is None:
        return java.Factory(url)
    import jpype

    try:
        cls = jpype.JClass(name)
    except Exception as exc:
        raise TransportUnavailableError(f"openwire.connection_factory: class {name} is not on the classpath "
                                        f"(add its jar or folder to openwire.classpath): {exc}") from None
    if not java.ConnectionFactory.class_.isAssignableFrom(cls.class_):
        raise ConfigError(f"{name} is not a javax.jms.ConnectionFactory", source=config.source,
                          key="openwire.connection_factory")
    try:
        factory = cls()
    except Exception as exc:
        raise TransportUnavailableError(f"openwire.connection_factory: {name}() failed: "
                                        f"{redact(jvm.describe(exc) if hasattr(exc, 'getCause') else str(exc), config)}") from None
    if hasattr(factory, "setBrokerURL"):
        factory.setBrokerURL(url)
    else:
        log.warning("openwire.connection_factory %s has no setBrokerURL: openwire.urls are not used", name)
    if not isinstance(factory, java.Factory):
        log.info("openwire.connection_factory %s is not an ActiveMQConnectionFactory: prefetch, redelivery "
                 "and time-out settings are left to it", name)
    log.debug("using connection factory %s", name)
    return factory


def tune(factory: Any, config: "BridgeConfig", ms: int) -> None:
    """Settings of an ActiveMQConnectionFactory (or subclass) this transport depends on."""
    if config.credentials.username:
        factory.setUserName(config.credentials.username)
        factory.setPassword(config.credentials.password)
    prefetch = factory.getPrefetchPolicy()
    prefetch.setQueuePrefetch(config.openwire.prefetch)
    prefetch.setTopicPrefetch(config.openwire.prefetch)  # a topic's default is 32767: memory unbounded
    prefetch.setDurableTopicPrefetch(config.openwire.prefetch)
    factory.setWatchTopicAdvisories(False)  # no temporary destinations: one consumer less
    # ObjectMessages are refused unread; should anything call getObject() anyway, no class
    # may be deserialized (ActiveMQ's own default list is set empty too).
    factory.setTrustAllPackages(False)
    factory.setTrustedPackages(classes().ArrayList())
    # After a failover the broker redelivers what was not acked; the client's duplicate
    # audit would "poison ack" exactly those messages to the DLQ. Let them through.
    factory.setCheckForDuplicates(False)
    # Every failover or crash raises the redelivery count of the messages in flight; after 6
    # the client would send them to the DLQ. We never roll back: redelivery only comes
    # from reconnecting, so there is no reason to give up on a message.
    factory.getRedeliveryPolicy().setMaximumRedeliveries(-1)
    factory.setConnectResponseTimeout(ms)
    factory.setCloseTimeout(min(ms, 15000))
