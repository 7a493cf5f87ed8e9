"""The small sections of ``config.yaml``: ``credentials``, ``subscription``, ``reconnect``, ``metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field, InstanceOf, PlainSerializer, WithJsonSchema, field_validator, model_validator

from bridge.config.fields import Flag, Matching, Number, Secret, Section, Text, Whole, problem, whole

_NAME = "[A-Za-z0-9_-]+"
_ID = "[A-Za-z0-9][A-Za-z0-9_.:-]*"
_DESTINATION = r"(queue|topic):.*\S.*"


@dataclass(frozen=True, slots=True)
class Destination:
    """A broker destination: ``kind`` is ``queue`` or ``topic``."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> "Destination":
        """Parse ``queue:NAME`` or ``topic:NAME``; raises ``ValueError`` otherwise."""
        kind, sep, name = text.partition(":")
        if not sep or kind not in ("queue", "topic") or not name.strip():
            raise ValueError("must be queue:NAME or topic:NAME")
        return cls(kind, name)


def _destination(value: Any) -> Any:
    return Destination.parse(value) if isinstance(value, str) else value


DestinationField = Annotated[InstanceOf[Destination], BeforeValidator(_destination), PlainSerializer(str),
                             WithJsonSchema({"type": "string", "pattern": rf"^{_DESTINATION}$|\$\{{"})]


class Credentials(Section):
    """Broker credentials (the AtData profile checks their form); the password is never shown."""

    username: Text = Field("", description="The broker user name (AtData profile: 4-5 digits).")
    password: Secret = Field("", description="The broker password (AtData profile: 32 hexadecimal characters); "
                             "never logged. Use ${ENV_VAR} or ${file:/path} rather than writing it here.")


class Subscription(Section):
    """What to consume and under which identity: ``namespace`` + ``destination_id`` (the queue
    ``<destination_id>.RTO.<namespace>``), or ``destination`` for other feeds."""

    model_config = {"json_schema_extra": {"anyOf": [
        {"required": ["destination"], "properties": {"destination": {"type": "string"}},
         "not": {"anyOf": [{"required": [key], "properties": {key: {"not": {"type": "null"}}}}
                           for key in ("namespace", "destination_id")]}},
        {"required": ["namespace", "destination_id"],
         "properties": {"namespace": {"not": {"type": "null"}}, "destination_id": {"not": {"type": "null"}},
                        "destination": {"type": "null"}}},
    ]}}

    connection_id: Annotated[Text, Matching(_ID, lambda v: "may hold only letters, digits and . _ : - and must "
                                                           "start with a letter or digit")] = Field(
        description="The JMS client id of this process: unique per running process and stable across restarts "
                    "(a changing id loses data). Worker i of workers: N uses <connection_id>-<i>.")
    namespace: Optional[Annotated[Text, Matching(_NAME, lambda v: "may hold only letters, digits, _ and -")]] = Field(
        None, description="The feed namespace, usually the company name (AtData profile: alphanumeric).")
    destination_id: Optional[Annotated[Text, Matching(_NAME, lambda v: "may hold only letters, digits, _ and -")]] = \
        Field(None, description="Chosen by you: bridges with the same destination id share the events (load "
                                "balancing); different ones each get every event (mirroring).")
    destination: Optional[DestinationField] = Field(
        None, description="Instead of namespace + destination_id, for other ActiveMQ feeds: queue:NAME or topic:NAME.")
    durable: Flag = Field(False, description=(
        "topic:NAME only, default true there: consume through a durable subscription, so the broker keeps what "
        "is published while the bridge is away (amq-bridge unsubscribe removes it); false: a plain one."))
    subscription_name: Optional[Annotated[Text, Matching(_ID, lambda v: "may hold only letters, digits and . _ : - "
                                                                        "and must start with a letter or digit")]] = \
        Field(None, description="The durable subscription's name (with the connection id it identifies the "
                                "subscription); none: the connection id.")
    selector: Optional[Text] = Field(None, description=(
        "A JMS message selector (e.g. kind = 'open' AND region = 'eu'): only matching messages are delivered; "
        "checked before connecting, and by the broker when subscribing."))

    @field_validator("selector")
    @classmethod
    def _selector_syntax(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        from bridge.selector import SelectorSyntaxError, check

        try:
            check(value)
        except SelectorSyntaxError as exc:
            reason = str(exc)
            raise problem("", reason if reason.startswith("is ") else f"not a valid JMS selector: {reason}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _queue_of_the_feed(cls, data: Any) -> Any:
        """The destination of namespace + destination_id, or the given one (never both)."""
        if not isinstance(data, dict):
            return data
        given = {key: data.get(key) not in (None, "") for key in ("destination", "namespace", "destination_id")}
        if given["destination"]:
            if given["namespace"] or given["destination_id"]:
                raise problem("destination", "give either destination or namespace + destination_id, not both")
            if str(data["destination"]).startswith("topic:"):
                return data if data.get("durable") is not None else {**data, "durable": True}
            _topic_only(data)
            return data
        _topic_only(data)
        if not given["namespace"]:
            raise problem("namespace", "is required (or give destination: queue:NAME / topic:NAME)")
        if not given["destination_id"]:
            raise problem("destination_id", "is required (the queue is <destination_id>.RTO.<namespace>)")
        return {**data, "destination": Destination("queue", f"{data['destination_id']}.RTO.{data['namespace']}")}

    @model_validator(mode="after")
    def _durable_name(self) -> "Subscription":
        if self.subscription_name is not None and not self.durable:
            raise problem("subscription_name", "names a durable subscription; durable is false")
        return self

    @property
    def durable_name(self) -> str | None:
        """The name of the durable subscription (with the connection id it identifies it), or None."""
        return (self.subscription_name or self.connection_id) if self.durable else None

    @property
    def feed_topic(self) -> Destination | None:
        """The topic the feed is published to (``topic:RTO.<namespace>``), if AtData-style."""
        return Destination("topic", f"RTO.{self.namespace}") if self.namespace else None


def _topic_only(data: dict[str, Any]) -> None:
    """durable and subscription_name are for topics: a queue keeps its messages by itself."""
    for key in ("durable", "subscription_name"):
        if data.get(key) is not None:
            raise problem(key, "applies to destination: topic:NAME only (a queue keeps its messages anyway)")


class ReconnectConfig(Section):
    """How a lost or refused connection (and a failing sink) is retried: exponential backoff with
    jitter, each delay drawn between half and all of initial_delay * 2^n, capped at max_delay."""

    initial_delay: Number = Field(0.5, ge=0.01, description="Seconds before the first retry.")
    max_delay: Number = Field(30.0, ge=0.01, description="The cap of the delay between retries, in seconds.")
    max_attempts: Whole = Field(0, ge=0, description="Retries before giving up; 0 retries forever.")

    @model_validator(mode="after")
    def _ordered(self) -> "ReconnectConfig":
        if self.max_delay < self.initial_delay:
            raise problem("max_delay", "must not be less than initial_delay")
        return self


class MetricsConfig(Section):
    """Prometheus metrics (/metrics) and health checks (/healthz, /readyz) over HTTP; needs
    prometheus-client. No port: off."""

    host: Text = Field("127.0.0.1", description="The address to listen on.")
    port: Optional[whole(ge=0, le=65535)] = Field(None, description="The port to listen on (0: any free one); "
                                  "none: no HTTP endpoint. Worker i of workers: N uses port + i - 1.")
    max_event_age: Optional[Annotated[Number, Field(gt=0)]] = Field(None, description=(
        "Seconds: /readyz answers 503 while events wait and the sink is further behind than this (none: not "
        "checked)."))
