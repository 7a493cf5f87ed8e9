"""A syntax check of JMS message selectors, before anything connects (``subscription.selector``).

It follows the grammar of ActiveMQ's own parser (``activemq-client``'s ``SelectorParser.jj``,
5.x): SQL-92 conditional expressions over properties and headers (``JMSType``, ``JMSPriority``...)
with ``AND OR NOT``, ``= <> < > <= >=``, ``+ - * / %``, ``[NOT] BETWEEN .. AND ..``,
``[NOT] IN ('a', ...)``, ``[NOT] LIKE 'p%' [ESCAPE 'c']``, ``IS [NOT] NULL``, string, integer
(decimal, hex, octal, ``L`` suffix) and floating-point literals, ``TRUE FALSE NULL``,
``XPATH '...'`` / ``XQUERY '...'``, and ``--`` / ``/* */`` comments. Keywords are case-insensitive;
names are ASCII letters, digits, ``_`` and ``$``, not starting with a digit.

Like ActiveMQ's parser it also refuses an expression that is not a condition (``JMSPriority + 1``,
``a = 1 AND 5``). What it leaves to ActiveMQ are its type checks of comparisons (``kind < 'x'``,
``'a' = 1``): ActiveMQ refuses those when the bridge subscribes, and the bridge stops with its
reason. It never refuses a selector ActiveMQ's parser accepts.
"""

from __future__ import annotations

import re

from bridge.errors import BridgeError


class SelectorSyntaxError(BridgeError):
    """A selector is not valid JMS selector syntax; the message says where and why."""


_TOKEN = re.compile(r"""
    (?P<space>[ \t\n\r\f]+)
  | (?P<comment>--[^\n\r]*(?:\r\n|\n|\r)|/\*[^*]*\*+(?:[^*/][^*]*\*+)*/)
  | (?P<string>'(?:''|[^'])*')
  | (?P<float>[0-9]+\.[0-9]*(?:E[+-]?[0-9]+)?|\.[0-9]+(?:E[+-]?[0-9]+)?|[0-9]+E[+-]?[0-9]+)
  | (?P<hex>0X[0-9A-F]+)
  | (?P<decimal>[1-9][0-9]*L?)
  | (?P<octal>0[0-7]*)
  | (?P<word>[A-Z_$][A-Z0-9_$]*)
  | (?P<op><>|>=|<=|[=<>+\-*/%(),])
""", re.VERBOSE | re.IGNORECASE)
_KEYWORDS = {"NOT", "AND", "OR", "BETWEEN", "LIKE", "ESCAPE", "IN", "IS", "TRUE", "FALSE", "NULL", "XPATH", "XQUERY"}
_LITERALS = {"string", "float", "hex", "decimal", "octal"}
_END = ("end", "", -1)

# What an expression yields, as far as the grammar knows: a condition, a property (either), a value.
BOOLEAN, PROPERTY, VALUE = "boolean", "property", "value"


def check(selector: str) -> None:
    """Raise :class:`SelectorSyntaxError` when ``selector`` is not valid JMS selector syntax."""
    if not selector.strip():
        raise SelectorSyntaxError("is empty (leave the key out to receive every message)")
    _Parser(selector).parse()


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] == "'":
                raise SelectorSyntaxError(f"unterminated string literal at position {pos + 1}")
            raise SelectorSyntaxError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            value = match.group()
            if kind == "word" and value.upper() in _KEYWORDS:
                kind, value = "keyword", value.upper()
            tokens.append((kind, value, pos))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent over ActiveMQ's productions; each returns the kind of its expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    # -- tokens
    def peek(self, ahead: int = 0) -> tuple[str, str, int]:
        index = self.at + ahead
        return self.tokens[index] if index < len(self.tokens) else _END

    def accept(self, *values: str) -> str | None:
        kind, value, _ = self.peek()
        if kind in ("keyword", "op") and value in values:
            self.at += 1
            return value
        return None

    def expect(self, value: str) -> None:
        if self.accept(value) is None:
            self.fail(f"expected {value}")

    def fail(self, what: str) -> None:
        kind, value, pos = self.peek()
        found = "the end" if kind == "end" else f"{value!r} at position {pos + 1}"
        raise SelectorSyntaxError(f"{what}, found {found}")

    def string(self) -> None:
        if self.peek()[0] != "string":
            self.fail("expected a string literal ('...')")
        self.at += 1

    def boolean(self, kind: str, what: str) -> None:
        if kind == VALUE:
            raise SelectorSyntaxError(f"{what} must be a condition, not a value (before position "
                                      f"{self.peek()[2] + 1 if self.peek()[0] != 'end' else len(self.text) + 1})")

    # -- grammar
    def parse(self) -> None:
        kind = self.or_expr()
        if self.peek()[0] != "end":
            self.fail("expected AND, OR or the end of the selector")
        if kind == VALUE:
            raise SelectorSyntaxError("is a value, not a condition (compare it: JMSPriority > 4)")

    def or_expr(self) -> str:
        kind = self.and_expr()
        while self.accept("OR"):
            self.boolean(kind, "the left side of OR")
            self.boolean(self.and_expr(), "the right side of OR")
            kind = BOOLEAN
        return kind

    def and_expr(self) -> str:
        kind = self.equality()
        while self.accept("AND"):
            self.boolean(kind, "the left side of AND")
            self.boolean(self.equality(), "the right side of AND")
            kind = BOOLEAN
        return kind

    def equality(self) -> str:
        kind = self.comparison()
        while True:
            if self.accept("=", "<>"):
                self.comparison()
            elif self.peek()[1] == "IS" and self.peek()[0] == "keyword":
                self.at += 1
                self.accept("NOT")
                self.expect("NULL")
            else:
                return kind
            kind = BOOLEAN

    def comparison(self) -> str:
        kind = self.add()
        while True:
            negated = self.peek()[:2] == ("keyword", "NOT") and self.peek(1)[1] in ("LIKE", "BETWEEN", "IN")
            if negated:
                self.at += 1
            if not negated and self.accept(">", ">=", "<", "<="):
                self.add()
            elif self.accept("LIKE"):
                self.string()
                if self.accept("ESCAPE"):
                    self.string()
            elif self.accept("BETWEEN"):
                self.add()
                self.expect("AND")
                self.add()
            elif self.accept("IN"):
                self.expect("(")
                self.string()
                while self.accept(","):
                    self.string()
                self.expect(")")
            else:
                return kind
            kind = BOOLEAN

    def add(self) -> str:
        kind = self.mult()
        # ActiveMQ looks ahead: "+"/"-" continue the sum only if a term follows
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op" and self._term_follows():
            self.at += 1
            self.mult()
            kind = VALUE
        return kind

    def _term_follows(self) -> bool:
        saved = self.at
        self.at += 1
        try:
            self.mult()
            return True
        except SelectorSyntaxError:
            return False
        finally:
            self.at = saved

    def mult(self) -> str:
        kind = self.unary()
        while self.accept("*", "/", "%"):
            self.unary()
            kind = VALUE
        return kind

    def unary(self) -> str:
        if self.accept("+"):
            return self.unary()
        if self.accept("-"):
            self.unary()
            return VALUE
        if self.accept("NOT"):
            self.boolean(self.unary(), "the operand of NOT")
            return BOOLEAN
        if self.accept("XPATH", "XQUERY"):
            self.string()
            return BOOLEAN
        return self.primary()

    def primary(self) -> str:
        kind, value, _ = self.peek()
        if kind in _LITERALS:
            self.at += 1
            return VALUE
        if kind == "keyword" and value in ("TRUE", "FALSE"):
            self.at += 1
            return BOOLEAN
        if kind == "keyword" and value == "NULL":  # ActiveMQ's NULL constant is a boolean one
            self.at += 1
            return BOOLEAN
        if kind == "word":
            self.at += 1
            return PROPERTY
        if self.accept("("):
            inner = self.or_expr()
            self.expect(")")
            return inner
        self.fail("expected a name, a literal or (")
        return VALUE  # unreachable
