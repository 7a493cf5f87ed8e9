"""Configuration: ``config.yaml`` parsed once into typed, frozen objects (pydantic models).

The rest of the program never reads raw YAML. Every invalid value raises :class:`ConfigError`
naming the file and the dotted key, e.g. ``config.yaml: credentials.username: must be 4-5 digits``.

* :mod:`~bridge.config.load`: reading the file, ``${ENV_VAR}`` / ``${file:/path}``, inline secrets;
* :mod:`~bridge.config.model`: :class:`BridgeConfig` and the rules between sections (profiles);
* :mod:`~bridge.config.sections`, :mod:`~bridge.config.transports`, :mod:`~bridge.config.sinks`:
  one model per section, one per sink type (chosen by ``sink.type``);
* :mod:`~bridge.config.fields`: the field types they share; :mod:`~bridge.config.messages`: errors
  as one line; :mod:`~bridge.config.schema`: the JSON Schema (``amq-bridge schema``).

To add an option: a field with a ``description`` in its section's model (plus any rule in a
validator), then ``amq-bridge schema > config.schema.json``.
"""

from bridge.config.load import load_config, parse_config
from bridge.config.model import PROFILES, TRANSPORTS, BridgeConfig
from bridge.config.sections import Credentials, Destination, MetricsConfig, ReconnectConfig, Subscription
from bridge.config.sinks import (SINK_TYPES, HandlerSinkConfig, JsonlSinkConfig, PostgresSinkConfig, SinkConfig,
                                 SqliteSinkConfig, StdoutSinkConfig)
from bridge.config.transports import (DEFAULT_JARS_DIR, DEFAULT_JVM_OPTIONS, PROJECT_ROOT, OpenWireConfig,
                                      PemTlsConfig, StompConfig, TlsConfig)

__all__ = [
    "BridgeConfig", "Credentials", "DEFAULT_JARS_DIR", "DEFAULT_JVM_OPTIONS", "Destination", "HandlerSinkConfig",
    "JsonlSinkConfig", "MetricsConfig", "OpenWireConfig", "PROFILES", "PROJECT_ROOT", "PemTlsConfig",
    "PostgresSinkConfig", "ReconnectConfig", "SINK_TYPES", "SinkConfig", "SqliteSinkConfig", "StdoutSinkConfig",
    "StompConfig", "Subscription", "TRANSPORTS", "TlsConfig", "load_config", "parse_config",
]
