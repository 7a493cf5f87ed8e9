"""A validation error of the models as one line naming the file and the dotted key.

``config.yaml: stomp.hosts[0]: 'localhost' is not HOST:PORT``: the key is pydantic's error
location (list positions as ``[i]``, the sink's type left out), the reason said in our words.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from bridge.config.fields import kind
from bridge.config.sinks import SINK_TYPES
from bridge.errors import ConfigError

_QUOTED = re.compile(r"'([^']*)'")
_TYPES = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
    "union_tag_not_found": "a mapping", "is_instance_of": "a string", "path_type": "a string (a path)",
}


def config_error(exc: ValidationError, source: str) -> ConfigError:
    """The first error of ``exc`` as a :class:`ConfigError` of the file ``source``."""
    error = exc.errors(include_url=False)[0]
    loc, tag = _location(error["loc"])
    kind_, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind_ == "bridge":
        reason, loc = ctx["reason"], [*loc, *([ctx["key"]] if ctx.get("key") else [])]
    elif kind_ == "extra_forbidden":
        reason = f"unknown key for the {tag} sink" if tag else "unknown key"
    elif kind_ == "missing":
        reason = f"is required for the {tag} sink" if tag else "is required"
    elif kind_ == "union_tag_invalid":
        loc, reason = [*loc, "type"], f"{ctx['tag']!r} is not one of {', '.join(SINK_TYPES)}"
    elif kind_ == "literal_error":
        reason = f"{value!r} is not one of {', '.join(re.findall(_QUOTED, ctx['expected']))}"
    elif kind_ in _TYPES:
        reason = f"must be {_TYPES[kind_]}, not {kind(value)}"
    elif kind_ == "greater_than_equal":
        reason = f"must be at least {ctx['ge']:g}"
    elif kind_ == "greater_than":
        reason = f"must be more than {ctx['gt']:g}"
    elif kind_ == "less_than_equal":
        reason = f"must be at most {ctx['le']:g}"
    elif kind_ == "too_short":
        reason = "must not be empty"
    else:
        message = error["msg"].removeprefix("Value error, ")
        reason = message[:1].lower() + message[1:]
    return ConfigError(reason, source=source, key=dotted(loc))


def _location(loc: tuple[Any, ...]) -> tuple[list[Any], str]:
    """The location without the tag of the sink type pydantic puts in it, and that tag."""
    parts, tag = list(loc), ""
    if len(parts) > 1 and parts[0] == "sink" and parts[1] in SINK_TYPES:
        tag = parts.pop(1)
    return parts, tag


def dotted(loc: list[Any]) -> str:
    """``["stomp", "hosts", 0]`` -> ``stomp.hosts[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
