"""Property-based tests: whatever the input, decoding and config loading either succeed or raise
the project's own error type; nothing else escapes."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import load_config, parse_config
from bridge.errors import BridgeError, ConfigError, MessageError
from bridge.event import decode_body, make_event

LIMIT = 4096
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=LIMIT * 2))
def test_any_bytes_decode_or_raise_message_error(body: bytes) -> None:
    try:
        data = decode_body(body, LIMIT)
    except MessageError:
        assert make_event(body, LIMIT, message_id="m", destination="queue:q").problem
    else:
        assert isinstance(data, dict) and len(body) <= LIMIT


@given(json_values)
def test_json_objects_round_trip_and_other_values_are_refused(value: object) -> None:
    body = json.dumps(value).encode()
    try:
        assert decode_body(body, LIMIT) == value
    except MessageError as exc:
        assert not isinstance(value, dict) or len(body) > LIMIT, exc


@given(st.integers(min_value=1, max_value=200_000))
def test_nesting_depth_cannot_escape(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    event = make_event(body, 10**6, message_id="m", destination="queue:q")
    assert event.problem is not None


yaml_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["transport", "fallback", "credentials", "subscription", "sink", "stomp",
                                       "openwire", "username", "password", "namespace", "destination_id",
                                       "connection_id", "destination", "type", "path", "hosts", "urls",
                                       "reconnect", "profile", "batch_size"]) | st.text(max_size=6),
                      children, max_size=5),
    max_leaves=25,
)


@given(yaml_like)
def test_any_document_parses_or_raises_config_error(doc: object) -> None:
    try:
        parse_config(doc, env={"X": "1"})
    except ConfigError as exc:
        assert str(exc)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(st.text(max_size=300))
def test_any_file_text_loads_or_raises_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, env={})
    except ConfigError:
        pass
    except BridgeError as exc:  # pragma: no cover - would be a wrong error type
        raise AssertionError(f"not a ConfigError: {exc!r}") from exc


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.sampled_from([None, 2]),
       st.sampled_from(["", " ", "\t "]), st.text(max_size=12), st.none() | st.integers(0, 2**62))
def test_jsonl_line_is_the_event_as_json(value: dict, indent, pad: str, message_id: str, stamp) -> None:
    """The jsonl sink's line (which embeds a one-line body as it is) reads back as to_json()."""
    from bridge.sinks.lines import event_line

    body = (pad + json.dumps(value, indent=indent, ensure_ascii=False) + pad).encode()
    event = make_event(body, 1 << 20, message_id=message_id, destination="queue:1.RTO.acme", timestamp=stamp,
                       transport="stomp")
    line = event_line(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == event.to_json()
