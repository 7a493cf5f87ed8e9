"""The whole configuration of one bridge process (:class:`BridgeConfig`), and the rules between
its sections: the AtData profile's checks, a dead-letter file for a sink that gives up."""

from __future__ import annotations

import re
from typing import Optional

from pydantic import Field, PrivateAttr, model_validator

from bridge.config.fields import ConfigPath, Number, Section, Whole, choice, one_or_many, problem, secrets_of
from bridge.config.sections import Credentials, MetricsConfig, ReconnectConfig, Subscription
from bridge.config.sinks import SinkConfig, StdoutSinkConfig
from bridge.config.transports import OpenWireConfig, StompConfig

TRANSPORTS = ("openwire", "stomp")
PROFILES = ("atdata", "generic")
_ATDATA = "(AtData profile; set profile: generic for other brokers)"
_TEXT = ["string", "integer"]

#: The rules between sections, for the schema. Unless ``profile: generic`` (the AtData profile),
#: the username is 4-5 digits, the password 32 hexadecimal characters, the namespace alphanumeric.
_ATDATA_SCHEMA = {
    "if": {"required": ["profile"], "properties": {"profile": {"const": "generic"}}},
    "else": {"required": ["credentials"], "properties": {
        "credentials": {"type": "object", "required": ["username", "password"], "properties": {
            "username": {"type": _TEXT, "pattern": r"^[0-9]{4,5}$|\$\{", "minimum": 1000, "maximum": 99999},
            "password": {"type": _TEXT, "pattern": r"^[0-9a-fA-F]{32}$|\$\{", "minimum": 10 ** 31,
                         "maximum": 10 ** 32 - 1}}},
        "subscription": {"properties": {"namespace": {"pattern": r"^[A-Za-z0-9]+$|\$\{"}}}}},
}
#: A sink that gives up on a batch (max_attempts above 0; the handler sink's default is 5) needs dead_letter.
_DEAD_LETTER_SCHEMA = {
    "if": {"required": ["sink"], "properties": {"sink": {"type": "object", "anyOf": [
        {"required": ["max_attempts"], "properties": {"max_attempts": {"type": "integer", "exclusiveMinimum": 0}}},
        {"required": ["type"], "properties": {"type": {"const": "handler"}, "max_attempts": {"not": {"const": 0}}}},
    ]}}},
    "then": {"required": ["dead_letter"], "properties": {"dead_letter": {"type": "string"}}},
}


class BridgeConfig(Section):
    """The configuration of amq-bridge (config.yaml). Strings may use ${ENV_VAR} or
    ${file:/path}; relative paths are resolved against the folder of the file."""

    model_config = {"title": "amq-bridge configuration", "json_schema_extra": {"allOf": [_ATDATA_SCHEMA, _DEAD_LETTER_SCHEMA]}}

    transport: choice(*TRANSPORTS) = Field("openwire", description=(
        "Protocol used to reach the broker: openwire (ActiveMQ JMS client in a JVM via JPype) or stomp (stomp.py)."))
    fallback: one_or_many(choice(*TRANSPORTS)) = Field((), description=(
        "Transports tried in order when the selected one cannot start (no Java, jars missing, JVM error) or cannot "
        "connect within connect_timeout."))
    profile: choice(*PROFILES) = Field("atdata", description=(
        "Validation profile. atdata: username 4-5 digits, password 32 hex characters, namespace alphanumeric. "
        "generic: no such checks (other ActiveMQ brokers and feeds)."))
    connect_timeout: Number = Field(10.0, ge=0.1, description=(
        "Seconds one transport may take to connect before the next in fallback is tried."))
    credentials: Credentials = Field(Credentials(), description="Broker credentials.")
    subscription: Subscription = Field(description="What to consume and under which connection id. Required.")
    openwire: OpenWireConfig = Field(OpenWireConfig(), description="The OpenWire transport.")
    stomp: StompConfig = Field(StompConfig(), description="The STOMP transport.")
    sink: SinkConfig = Field(StdoutSinkConfig(), description=(
        "Where events go: stdout, jsonl, sqlite, postgres or handler (sink.type); each has its own keys."))
    reconnect: ReconnectConfig = Field(ReconnectConfig(), description=(
        "Retries of a lost or refused connection, and of a failing sink."))
    metrics: MetricsConfig = Field(MetricsConfig(), description="The HTTP endpoint of /metrics, /healthz, /readyz.")
    dead_letter: Optional[ConfigPath] = Field(None, description=(
        "Events that cannot be delivered (malformed JSON, not UTF-8, oversized, not a JSON object, ObjectMessage, "
        "or given up on by the sink) are written here, fsynced, and only then acknowledged."))
    workers: Whole = Field(1, ge=1, description=(
        "Consumer processes of amq-bridge run; worker i uses connection id <connection_id>-<i>."))
    max_message_bytes: Whole = Field(1024 * 1024, ge=1, description=(
        "Bodies larger than this many bytes are set aside without being decoded."))
    batch_size: Whole = Field(500, ge=1, description=(
        "At most this many events are taken off the broker, written to the sink and acknowledged together."))
    batch_linger_ms: Whole = Field(5, ge=0, le=1000, description=(
        "After the first event of a batch, wait up to this many milliseconds for more (0: take only what is "
        "ready). At a low rate, batches of a few events instead of one: fewer wake-ups, writes and "
        "acknowledgements per event, for at most this much latency."))
    dedupe_window: Whole = Field(10000, ge=0, description=(
        "Message ids remembered so a redelivery is acknowledged without reaching the sink twice; 0 turns it off."))
    shutdown_timeout: Number = Field(30.0, ge=0.1, description=(
        "Seconds a graceful stop (SIGINT/SIGTERM) may take before the process exits at once."))
    stats_interval: Number = Field(5.0, ge=0, description="Seconds between stats lines on stderr (0: none).")

    _source: str = PrivateAttr("<config>")
    _inline_secrets: tuple[str, ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _across_sections(self) -> "BridgeConfig":
        if self.profile == "atdata":
            if not re.fullmatch(r"\d{4,5}", self.credentials.username):
                raise problem("credentials.username", f"must be 4-5 digits {_ATDATA}")
            if not re.fullmatch(r"[0-9a-fA-F]{32}", self.credentials.password):
                raise problem("credentials.password", f"must be 32 hexadecimal characters {_ATDATA}")
            namespace = self.subscription.namespace
            if namespace is not None and not (namespace.isascii() and namespace.isalnum()):
                raise problem("subscription.namespace", "must be alphanumeric (AtData profile)")
        if self.workers > 1 and self.subscription.destination.kind == "topic":
            raise problem("workers", "must be 1 for a topic: every subscriber of a topic gets every message, so N "
                                     "workers would deliver each event N times (consume a queue, e.g. a virtual "
                                     "topic's, to share the load)")
        if self.sink.max_attempts and self.dead_letter is None:
            raise problem("dead_letter", "is required when sink.max_attempts is set (a batch given up on is set "
                                         "aside there)")
        return self

    @property
    def source(self) -> str:
        """The file this configuration was read from (``<dict>``, ``<config>`` otherwise)."""
        return self._source

    @property
    def inline_secrets(self) -> tuple[str, ...]:
        """Keys whose secret is written in the file itself rather than referenced."""
        return self._inline_secrets

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value in this configuration (to be redacted from all output)."""
        values: list[str] = []
        for _key, value, marker in secrets_of(self):
            values += [value, *(marker.parts(value) if marker.parts else ())]
        return tuple(v for v in dict.fromkeys(values) if v)

    @property
    def transport_order(self) -> tuple[str, ...]:
        """The selected transport followed by its fallbacks, without repeats."""
        return tuple(dict.fromkeys((self.transport, *self.fallback)))
