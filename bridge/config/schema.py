"""The JSON Schema of ``config.yaml`` (``amq-bridge schema``, shipped as ``config.schema.json``).

Generated from the models, each key described by its field's ``description``, so an editor
(yaml-language-server, with ``# yaml-language-server: $schema=./config.schema.json``) completes
keys, shows what each means and marks unknown keys and wrong types. A key given with no value
takes its default, so every key that is not required may be ``null``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from bridge.config.model import BridgeConfig

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_NULL = {"type": "null"}


class _Generator(GenerateJsonSchema):
    """Pydantic's generator without a title on every field (the description says it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a configuration document."""
    schema = BridgeConfig.model_json_schema(schema_generator=_Generator)
    for model in [schema, *schema.get("$defs", {}).values()]:
        required = set(model.get("required", ()))
        for name, prop in model.get("properties", {}).items():
            if isinstance(prop.get("default"), dict):
                del prop["default"]  # a section's defaults are its keys' own
            if name not in required:
                model["properties"][name] = _nullable(prop)
    return {"$schema": DIALECT, **schema}


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    notes = {key: prop.pop(key) for key in ("description", "default") if key in prop}
    if list(prop) == ["anyOf"]:
        return {"anyOf": [*prop["anyOf"], _NULL] if _NULL not in prop["anyOf"] else prop["anyOf"], **notes}
    return {"anyOf": [prop, _NULL], **notes}


def schema_text() -> str:
    """The schema as ``amq-bridge schema`` prints it (and ``config.schema.json`` holds it)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
