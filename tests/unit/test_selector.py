"""The selector syntax check (bridge/selector.py) against a corpus whose ActiveMQ verdicts
tests/integration/test_selector_parser.py checks with ActiveMQ's own parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bridge.selector import SelectorSyntaxError, check

CORPUS = json.loads((Path(__file__).resolve().parents[1] / "data" / "selectors.json").read_text())


@pytest.mark.parametrize("case", CORPUS, ids=[c["selector"][:40] for c in CORPUS])
def test_the_check_follows_activemqs_grammar(case: dict[str, str]) -> None:
    if case["syntax_check"] == "accepts":
        check(case["selector"])
    else:
        with pytest.raises(SelectorSyntaxError):
            check(case["selector"])


def test_never_stricter_than_activemq_and_leaves_only_type_checks_to_it() -> None:
    assert all(c["syntax_check"] == "accepts" for c in CORPUS if c["activemq"] == "accepts")
    left = sorted(c["selector"] for c in CORPUS if c["activemq"] != c["syntax_check"])
    assert left == ["TRUE = 1", "kind < 'x'"]


@pytest.mark.parametrize("selector,words", [
    ("a = 'x", "unterminated string literal at position 5"),
    ("a != 1", "unexpected character '!' at position 3"),
    ("a = 1 AND 5", "the right side of AND must be a condition"),
    ("JMSPriority + 1", "is a value, not a condition"),
    ("(a = 1", "expected ), found the end"),
    ("a IN ()", "expected a string literal ('...'), found ')' at position 7"),
])
def test_messages_say_where(selector: str, words: str) -> None:
    with pytest.raises(SelectorSyntaxError, match=re.escape(words)):
        check(selector)
