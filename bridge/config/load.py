"""Reading ``config.yaml`` into a :class:`BridgeConfig`, once.

The YAML document (read with libyaml's loader where it is installed) has every ``${NAME}`` and
``${file:/path}`` in its strings resolved first, then is validated by the models (relative paths
against the file's folder). A secret written in the file itself, rather than referenced, is
warned about when other users can read the file.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from bridge.config.fields import kind, secrets_of
from bridge.config.messages import config_error, dotted
from bridge.config.model import BridgeConfig
from bridge.errors import ConfigError

log = logging.getLogger("bridge.config")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read and validate a YAML configuration file.

    Raises:
        ConfigError: The file cannot be read or any value is invalid.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file ({exc.strerror})", source=source) from exc
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}", source=source) from exc
    config = parse_config(raw, source=source, base_dir=Path(path).resolve().parent, env=env)
    _warn_inline_secrets(Path(path), config)
    return config


def parse_config(raw: Any, *, source: str = "<config>", base_dir: Path | None = None,
                 env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Validate an already-loaded mapping (YAML document or dict) into a :class:`BridgeConfig`."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a mapping, not {kind(raw)}", source=source)
    base_dir = base_dir or Path.cwd()
    resolved = _Interpolation(source, base_dir, os.environ if env is None else env).value(raw, [])
    try:
        config = BridgeConfig.model_validate(resolved, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise config_error(exc, source) from None
    config._source = source
    config._inline_secrets = tuple(_inline_secrets(config, raw))
    return config


class _Interpolation:
    """Resolves ``${NAME}`` and ``${file:/path}`` in every string of a document."""

    def __init__(self, source: str, base_dir: Path, env: Mapping[str, str]) -> None:
        self.source, self.base_dir, self.env = source, base_dir, env

    def value(self, value: Any, loc: list[Any]) -> Any:
        if isinstance(value, str):
            return _REFERENCE.sub(lambda match: self._substitute(match.group(1), loc), value) if "${" in value else value
        if isinstance(value, dict):
            return {key: self.value(item, [*loc, key]) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, [*loc, i]) for i, item in enumerate(value)]
        return value

    def _substitute(self, name: str, loc: list[Any]) -> str:
        if name.startswith("file:"):
            path = Path(name[5:]).expanduser()
            path = path if path.is_absolute() else self.base_dir / path
            try:
                return path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(f"cannot read {path} ({reason})", source=self.source, key=dotted(loc)) from None
        if not _ENV_NAME.match(name):
            raise ConfigError(f"${{{name}}} is not a valid environment variable reference", source=self.source,
                              key=dotted(loc))
        if name not in self.env:
            raise ConfigError(f"environment variable {name} is not set", source=self.source, key=dotted(loc))
        return self.env[name]


def _inline_secrets(config: BridgeConfig, raw: dict[str, Any]) -> list[str]:
    """The keys of secrets written in the document itself (not as a ``${...}`` reference)."""
    found = []
    for key, _value, marker in secrets_of(config):
        written: Any = raw
        for part in key.split("."):
            written = written.get(part) if isinstance(written, dict) else None
        if isinstance(written, (str, int)) and "${" not in str(written) and (
                marker.inline_if is None or marker.inline_if(str(written))):
            found.append(key)
    return found


def _warn_inline_secrets(path: Path, config: BridgeConfig) -> None:
    """Warn when a password is written in a file that other users can read."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o044 and config.inline_secrets:
        log.warning("%s: %s written inline in a file other users can read (mode %03o); use ${ENV_VAR} or "
                    "${file:/path}, or chmod 600 it", path, ", ".join(config.inline_secrets), mode & 0o777)
