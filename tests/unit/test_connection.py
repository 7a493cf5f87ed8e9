"""Choosing a transport: fallback order, what falls back and what does not, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bridge.connection
from bridge.config import parse_config
from bridge.errors import AuthenticationError, ConfigError, ConnectError, TransportUnavailableError
from bridge.transports import transport_class

CONFIG = parse_config({"profile": "generic", "transport": "openwire", "fallback": ["stomp"],
                       "subscription": {"destination": "queue:q", "connection_id": "c"}}, env={})


class Scripted:
    """A transport whose connect raises what the test says."""

    outcomes: dict = {}
    tried: list = []

    def __init__(self, name, config, hooks):
        self.name = name

    def connect(self, timeout):
        Scripted.tried.append(self.name)
        if self.outcomes.get(self.name):
            raise self.outcomes[self.name]

    def close(self):
        pass


@pytest.fixture
def scripted(monkeypatch):
    Scripted.tried = []
    monkeypatch.setattr(bridge.connection, "_reported", set())
    monkeypatch.setattr(bridge.connection, "create_transport", lambda name, c, h: Scripted(name, c, h))
    return Scripted


@pytest.mark.parametrize("failure", [TransportUnavailableError("jar x missing"), ConnectError("timed out")])
def test_falls_back_and_says_why_once(scripted, caplog, failure) -> None:
    scripted.outcomes = {"openwire": failure}
    assert bridge.connection.open_transport(CONFIG).name == "stomp"
    assert bridge.connection.open_transport(CONFIG).name == "stomp"  # a reconnect: not said again
    assert scripted.tried == ["openwire", "stomp"] * 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"openwire cannot be used: {failure}; falling back to stomp"]


def test_refused_credentials_do_not_fall_back(scripted) -> None:
    scripted.outcomes = {"openwire": AuthenticationError("refused")}
    with pytest.raises(AuthenticationError):
        bridge.connection.open_transport(CONFIG)
    assert scripted.tried == ["openwire"]


def test_last_failure_is_raised(scripted) -> None:
    scripted.outcomes = {"openwire": ConnectError("a"), "stomp": ConnectError("b")}
    with pytest.raises(ConnectError, match="b"):
        bridge.connection.open_transport(CONFIG)


def test_unknown_transport_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match="No such transport: stmp. Did you mean stomp?"):
        transport_class("stmp")


@pytest.mark.parametrize("chosen,forbidden", [("stomp", "jpype"), ("openwire", "stomp")])
def test_selecting_one_transport_never_imports_the_others_driver(chosen: str, forbidden: str) -> None:
    code = (f"import sys, bridge.transports as t; t.transport_class({chosen!r}); "
            f"assert {forbidden!r} not in sys.modules, sorted(m for m in sys.modules if {forbidden!r} in m)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
