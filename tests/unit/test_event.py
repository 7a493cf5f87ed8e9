"""Decoding message bodies into events."""

from __future__ import annotations

import math

import pytest

from bridge.errors import MessageError
from bridge.event import decode_body, make_event

FIELDS = dict(message_id="ID:1", destination="queue:1.RTO.acme", transport="stomp")


def test_decodes_a_json_object() -> None:
    body = b'{"md5": "098f6bcd4621d373cade4e832627b4f6", "label": "aaf4"}'
    event = make_event(body, 1024, **FIELDS)
    assert event.data == {"md5": "098f6bcd4621d373cade4e832627b4f6", "label": "aaf4"}
    assert event.problem is None and event.body == body


@pytest.mark.parametrize(
    "body,words",
    [
        (b"", "empty body"),
        (b"{" * 10, "not valid JSON"),
        (b'{"md5": "\xff"}', "not valid UTF-8"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"text"', "JSON str, not an object"),
        (b"x" * 2000, "over the limit of 1024 bytes"),
        (b"[" * 100000 + b"]" * 100000, "over the limit"),
    ],
)
def test_bad_bodies_become_problems(body: bytes, words: str) -> None:
    with pytest.raises(MessageError, match=words):
        decode_body(body, 1024)
    event = make_event(body, 1024, **FIELDS)
    assert event.data is None and words in (event.problem or "")
    assert event.body == body


def test_deep_nesting_within_the_limit_is_a_problem_not_a_crash() -> None:
    body = b"[" * 50000 + b"]" * 50000
    event = make_event(body, len(body), **FIELDS)
    assert event.problem is not None


def test_delivery_tag_does_not_affect_equality() -> None:
    a = make_event(b"{}", 10, delivery_tag=1, **FIELDS)
    b = make_event(b"{}", 10, delivery_tag=2, **FIELDS)
    assert a == b


@pytest.mark.parametrize("body,expected", [
    (b'{"n":123456789012345678901234567890}', {"n": 123456789012345678901234567890}),  # past 64 bits: an int
    (b'{"n":-9999999999999999999}', {"n": -9999999999999999999}),  # below the 64-bit minimum
    (b'{"n":18446744073709551615}', {"n": 18446744073709551615}),
    (b'{"s":"\\ud800"}', {"s": "\ud800"}),  # a lone surrogate escape, as json reads it
])
def test_fast_decoder_accepts_and_returns_what_json_does(body: bytes, expected: dict) -> None:
    data = decode_body(body, 1024)
    assert data == expected and [type(v) for v in data.values()] == [type(v) for v in expected.values()]


def test_nan_is_read_as_json_reads_it() -> None:
    assert math.isnan(decode_body(b'{"x":NaN}', 1024)["x"])
