"""The building blocks of the configuration models: one base class and the field types they share.

Each type here validates in Python and describes itself in the JSON Schema the same way, so the
bridge and ``config.schema.json`` agree: what one accepts, the other does too.

* :class:`Section`: a frozen model that refuses unknown keys; a key given with no value (``null``)
  takes its default, and a section given with no value is an empty one.
* :data:`Text`: a string; a YAML number (``destination_id: 1``) is taken as its text.
* :data:`Whole`, :data:`Number`, :data:`Flag`: an integer, a number, a boolean; never a string.
* :class:`Matching`: a string that must match a pattern (in the schema too), with our own message.
* :func:`choice`, :func:`one_or_many`: one of some names; a list that may be written as one item.
* :data:`ConfigPath`: a path, relative ones resolved against the configuration file's folder.
* :class:`SecretField` and :data:`Secret`: a value never shown (``***`` when dumped, hidden in repr).

String values may still hold ``${ENV_VAR}`` references when an editor checks the file; every
pattern and choice of the schema therefore also admits a string holding ``${``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, Strict, ValidationInfo, \
    model_validator
from pydantic_core import PydanticCustomError, core_schema

#: A string the schema lets through whatever pattern or choice applies: it is resolved later.
REFERENCE = {"type": "string", "pattern": r"\$\{"}


class Section(BaseModel):
    """One mapping of ``config.yaml``: frozen, unknown keys refused, ``null`` meaning "default"."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _no_value_is_default(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, dict) and None in data.values():
            fields = cls.model_fields
            return {k: v for k, v in data.items() if v is not None or k not in fields}
        return data


def problem(key: str, reason: str) -> PydanticCustomError:
    """An error of a rule between keys: ``key`` (dotted, below the model raising it) is named."""
    return PydanticCustomError("bridge", "{reason}", {"reason": reason, "key": key})


class SchemaChange:
    """Metadata changing the JSON Schema of the type it annotates with ``change``."""

    def __init__(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.change = change

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return self.change(handler(schema))


def _number_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


Text = Annotated[str, BeforeValidator(_number_as_text), SchemaChange(lambda s: {**s, "type": ["string", "integer"]})]
Whole = Annotated[int, BeforeValidator(_whole), Strict()]


def whole(**limits: Any) -> Any:
    """:data:`Whole` within ``limits`` (``ge``, ``le``), for an optional key (the limits are those
    of the number, not of ``null``)."""
    return Annotated[int, Strict(), Field(**limits), BeforeValidator(_whole)]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]


@dataclass(frozen=True)
class Matching:
    """A string matching ``pattern`` in full (ASCII classes only: the schema's regex dialect is
    ECMA-262); ``message(value)`` is the error otherwise."""

    pattern: str
    message: Callable[[str], str]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        regex, message = re.compile(self.pattern), self.message

        def check(value: str) -> str:
            if not regex.fullmatch(value):
                raise PydanticCustomError("bridge", "{reason}", {"reason": message(value)})
            return value
        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {**handler(schema), "pattern": rf"^(?:{self.pattern})$|\$\{{"}


def choice(*names: str) -> Any:
    """One of ``names`` (a ``${...}`` reference, too, in the schema)."""
    return Annotated[Literal[names], SchemaChange(lambda s: {"anyOf": [s, REFERENCE]})]  # type: ignore[valid-type]


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def one_or_many(item: Any) -> Any:
    """A tuple of ``item``; a single string is a list of one."""
    return Annotated[tuple[item, ...], BeforeValidator(_listed), SchemaChange(lambda s: {"anyOf": [s["items"], s]})]


def _resolve(value: Any, info: ValidationInfo) -> Any:
    base = (info.context or {}).get("base_dir")
    if isinstance(value, str) and base is not None:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    return value


#: A path; when loaded from a file, relative to the file's folder (``~`` is the home folder).
ConfigPath = Annotated[Path, BeforeValidator(_resolve)]


@dataclass(frozen=True)
class SecretField:
    """Marks a secret. ``inline_if(value)`` says whether the value written in the file itself is
    one (default: any value); ``parts(value)`` gives the pieces to redact besides the value."""

    inline_if: Callable[[str], bool] | None = None
    parts: Callable[[str], list[str]] | None = None


def _mask(value: str) -> str:
    return "***" if value else value


#: A password: hidden in repr, ``***`` in every dump.
Secret = Annotated[str, BeforeValidator(_number_as_text), SecretField(), PlainSerializer(_mask, return_type=str),
                   Field(repr=False), SchemaChange(lambda s: {**s, "type": ["string", "integer"]})]


def secrets_of(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str, SecretField]]:
    """``(dotted key, value, marker)`` of every non-empty secret in ``model`` and its sections."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from secrets_of(value, f"{prefix}{name}.")
            continue
        marker = next((m for m in info.metadata if isinstance(m, SecretField)), None)
        if marker is not None and value:
            yield f"{prefix}{name}", value, marker


def kind(value: Any) -> str:
    """How an error names the type of a value it refuses (``a mapping``, ``empty``, ...)."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)
