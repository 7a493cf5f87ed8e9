"""Reading one mapping of a configuration document into typed values.

:class:`Section` remembers which keys were asked for, so unknown keys are reported, resolves
``${ENV_VAR}`` and ``${file:/path}`` references in strings, and names the file and the dotted key in every error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from bridge.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Section:
    """One mapping of the document; reads typed values and remembers which keys were used."""

    def __init__(self, raw: Any, source: str, prefix: str, base_dir: Path, env: Mapping[str, str]):
        self.source, self.prefix, self.base_dir, self.env = source, prefix, base_dir, env
        if not isinstance(raw, dict):
            raise ConfigError(f"must be a mapping, not {_kind(raw)}", source=source, key=prefix.rstrip(".") or "")
        self.raw: dict[str, Any] = raw
        self.used: set[str] = set()
        #: Keys of secrets written in the file itself rather than referenced.
        self.inline_secrets: list[str] = []

    def fail(self, key: str, message: str) -> None:
        """Raise a ConfigError for ``key`` of this section."""
        raise ConfigError(message, source=self.source, key=self.prefix + key)

    def get(self, key: str) -> Any:
        self.used.add(key)
        return self.raw.get(key)

    def done(self) -> None:
        """Fail on the first key nobody asked for."""
        for key in self.raw:
            if key not in self.used:
                self.fail(str(key), "unknown key")

    def section(self, key: str) -> "Section":
        value = self.get(key)
        child = Section({} if value is None else value, self.source, f"{self.prefix}{key}.", self.base_dir, self.env)
        child.inline_secrets = self.inline_secrets  # one list for the whole document
        return child

    def check_string(self, value: Any, key: str, secret: bool = False) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(key, f"must be a string, not {_kind(value)}")
        return self._interpolate(str(value), key, secret)

    def string(self, key: str, default: str, secret: bool = False) -> str:
        value = self.get(key)
        return default if value is None else self.check_string(value, key, secret)

    def check_choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        text = self.check_string(value, key)
        if text not in choices:
            self.fail(key, f"{text!r} is not one of {', '.join(choices)}")
        return text

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key)
        return default if value is None else self.check_choice(value, key, choices)

    def number(self, key: str, default: float, *, minimum: float, integer: bool = False) -> float:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.fail(key, f"must be {'a whole number' if integer else 'a number'}, not {_kind(value)}")
        if value < minimum:
            self.fail(key, f"must be at least {minimum:g}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {_kind(value)}")
        return value

    def list(self, key: str, item: Callable[[Any, str], Any], default: list[Any] | None = None) -> Iterator[Any]:
        value = self.get(key)
        if value is None:
            value = default or []
        elif isinstance(value, str):
            value = [value]
        elif not isinstance(value, list):
            self.fail(key, f"must be a list, not {_kind(value)}")
        return [item(v, f"{key}[{i}]") for i, v in enumerate(value)]

    def resolve(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def path(self, key: str, default: Path | None) -> Path | None:
        value = self.get(key)
        return default if value is None else self.resolve(self.check_string(value, key))

    def _interpolate(self, text: str, key: str, secret: bool) -> str:
        if secret and text and not _ENV_REF.search(text):
            self.inline_secrets.append(self.prefix + key)

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("file:"):
                return self._read_secret_file(name[5:], key)
            if not _ENV_NAME.match(name):
                self.fail(key, f"${{{name}}} is not a valid environment variable reference")
            if name not in self.env:
                self.fail(key, f"environment variable {name} is not set")
            return self.env[name]

        return _ENV_REF.sub(substitute, text)

    def _read_secret_file(self, name: str, key: str) -> str:
        path = self.resolve(name)
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self.fail(key, f"cannot read {path} ({reason})")
            raise  # unreachable: fail raises


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)
