"""subscription.durable / subscription_name / selector and sink.include_properties in the config."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import Destination, parse_config
from bridge.errors import ConfigError

GOOD_PASSWORD = "0123456789abcdef0123456789abcdef"


def doc(**subscription: Any) -> dict[str, Any]:
    return {"credentials": {"username": "12345", "password": GOOD_PASSWORD},
            "subscription": {"connection_id": "acme-1", **subscription}}


def test_a_topic_is_durable_by_default_named_by_the_connection_id() -> None:
    sub = parse_config(doc(destination="topic:orders")).subscription
    assert sub.destination == Destination("topic", "orders")
    assert sub.durable and sub.durable_name == "acme-1" and sub.selector is None


def test_subscription_name_and_durable_false() -> None:
    named = parse_config(doc(destination="topic:orders", subscription_name="orders-archive")).subscription
    assert named.durable_name == "orders-archive"
    plain = parse_config(doc(destination="topic:orders", durable=False)).subscription
    assert not plain.durable and plain.durable_name is None


def test_a_queue_is_never_durable_and_takes_a_selector() -> None:
    sub = parse_config(doc(namespace="acme", destination_id="1", selector="kind = 'open'")).subscription
    assert sub.destination == Destination("queue", "1.RTO.acme")
    assert not sub.durable and sub.durable_name is None and sub.selector == "kind = 'open'"


@pytest.mark.parametrize("extra,key,words", [
    ({"destination": "queue:q", "durable": True}, "subscription.durable", "topic:NAME only"),
    ({"namespace": "acme", "destination_id": "1", "subscription_name": "x"}, "subscription.subscription_name",
     "topic:NAME only"),
    ({"destination": "topic:t", "durable": False, "subscription_name": "x"}, "subscription.subscription_name",
     "durable is false"),
    ({"destination": "topic:t", "subscription_name": "bad name"}, "subscription.subscription_name", "may hold only"),
    ({"destination": "topic:t", "durable": "yes"}, "subscription.durable", "true or false"),
    ({"destination": "topic:t", "selector": "kind = 'open' AND"}, "subscription.selector",
     "not a valid JMS selector: expected a name, a literal or (, found the end"),
    ({"destination": "topic:t", "selector": "kind == 'open'"}, "subscription.selector",
     "found '=' at position 7"),
    ({"destination": "topic:t", "selector": " "}, "subscription.selector", "is empty"),
    ({"destination": "topic:t", "selector": 5}, "subscription.selector", "is a value, not a condition"),
    ({"destination": "topic:t", "selector": ["a"]}, "subscription.selector", "must be a string"),
])
def test_invalid_subscription_keys_are_named(extra: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc(**extra), source="c.yaml")
    assert info.value.key == key and words in str(info.value), str(info.value)
    assert str(info.value).startswith(f"c.yaml: {key}: ")


def test_workers_on_a_topic_are_refused() -> None:
    with pytest.raises(ConfigError, match="workers: must be 1 for a topic"):
        parse_config({**doc(destination="topic:t", durable=False), "workers": 2})


def test_include_properties() -> None:
    assert parse_config(doc(destination="queue:q")).sink.include_properties is True
    config = parse_config({**doc(destination="queue:q"), "sink": {"type": "stdout", "include_properties": False}})
    assert config.sink.include_properties is False
    with pytest.raises(ConfigError, match="sink.include_properties: must be true or false"):
        parse_config({**doc(destination="queue:q"), "sink": {"type": "stdout", "include_properties": "no"}})
