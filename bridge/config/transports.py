"""The transport sections of ``config.yaml``: ``openwire``, ``stomp`` and the ``tls`` of each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from bridge.config.fields import ConfigPath, Flag, Matching, Secret, Section, Text, Whole, kind, one_or_many, problem

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JARS_DIR = PROJECT_ROOT / "jars"

#: The JVM amq-bridge starts: a bounded heap; one collector thread (two cores are shared with the
#: broker client's threads and Python); a small young generation, so that each of its pauses
#: (the JVM's only ones here) stays short: 16 MB holds the prefetched messages with room to spare.
DEFAULT_JVM_OPTIONS = ("-Xmx256m", "-Xmn16m", "-XX:+UseSerialGC")

_URL = r"[a-z][a-z0-9+]*://[^\s/:]+:[0-9]+([/?].*)?"
_PORT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_HOST_PORT = rf"(?P<host>[^\s:\[\]]+|\[[0-9a-fA-F:]+\]):(?P<port>{_PORT})"
_CLASS = r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)+"
_STORE_TYPE = "[Jj][Kk][Ss]|[Pp][Kk][Cc][Ss]12"
_HOST_PORT_RE = re.compile(_HOST_PORT)


def _host_port(value: Any) -> Any:
    if isinstance(value, tuple):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {kind(value)}")
    match = _HOST_PORT_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return match["host"].strip("[]"), int(match["port"])


def _shown(pair: tuple[str, int]) -> str:
    host, port = pair
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


HostPort = Annotated[tuple[str, int], BeforeValidator(_host_port), PlainSerializer(_shown),
                     WithJsonSchema({"type": "string", "pattern": rf"^(?:{_HOST_PORT.replace('?P<host>', '').replace('?P<port>', '')})$|\$\{{"})]
BrokerUrl = Annotated[str, Matching(_URL, lambda v: f"{v!r} is not a broker URL like tcp://HOST:PORT")]
StoreType = Annotated[str, Matching(_STORE_TYPE, lambda v: "must be JKS or PKCS12")]

_IMPLIED_BY = ("ca_file", "trust_store", "cert_file", "key_store", "insecure")


class PemTlsConfig(Section):
    """TLS towards the broker with PEM files (``stomp.tls``); ``enabled`` is implied by any of
    ca_file, cert_file or insecure."""

    model_config = {"json_schema_extra": {"dependentRequired": {"cert_file": ["key_file"], "key_file": ["cert_file"]}}}

    enabled: Flag = Field(False, description="Use TLS. Default: on when ca_file, cert_file or insecure is given "
                                             "(openwire: also trust_store, key_store, or an ssl:// URL).")
    ca_file: Optional[ConfigPath] = Field(None, description="The CA certificates (PEM) the broker's certificate must "
                                          "chain to; 'system' for the operating system's store.")
    cert_file: Optional[ConfigPath] = Field(None, description="A client certificate (PEM) for mutual TLS; with "
                                            "key_file.")
    key_file: Optional[ConfigPath] = Field(None, description="The private key of cert_file (PEM; for openwire "
                                           "unencrypted PKCS#8).")
    key_password: Secret = Field("", description="The password of key_file, if it is encrypted.")
    verify_hostname: Flag = Field(True, description="Check that the broker's certificate names the host connected "
                                                    "to; never turn it off in production.")
    insecure: Flag = Field(False, description="No verification of the broker's certificate at all (warned about "
                                              "on every connect).")

    @model_validator(mode="before")
    @classmethod
    def _implied(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("enabled") is None and any(data.get(k) is not None for k in _IMPLIED_BY):
            return {**data, "enabled": True}
        return data

    @model_validator(mode="after")
    def _pairs(self) -> "PemTlsConfig":
        if bool(self.cert_file) != bool(self.key_file):
            raise problem("cert_file" if self.key_file else "key_file", "cert_file and key_file go together")
        return self

    @property
    def use_system_ca(self) -> bool:
        return self.ca_file is not None and self.ca_file.name == "system" and not self.ca_file.exists()


class TlsConfig(PemTlsConfig):
    """TLS towards the broker (``openwire.tls``) or served by the embedded broker. Trust: ca_file
    (PEM) or trust_store (JKS or PKCS12); identity (mutual TLS): cert_file + key_file (PEM) or
    key_store. Store types come from *_type or the file suffix."""

    model_config = {"json_schema_extra": {
        "dependentRequired": {"cert_file": ["key_file"], "key_file": ["cert_file"]},
        "not": {"anyOf": [{"required": ["ca_file", "trust_store"]}, {"required": ["cert_file", "key_store"]}]}}}

    trust_store: Optional[ConfigPath] = Field(None, description="A Java trust store (JKS or PKCS12) instead of "
                                              "ca_file.")
    trust_store_password: Secret = Field("", description="The password of trust_store.")
    trust_store_type: Optional[StoreType] = Field(None, description="JKS or PKCS12 (default: from the suffix).")
    key_store: Optional[ConfigPath] = Field(None, description="A Java key store (JKS or PKCS12) holding the client "
                                            "certificate and key, instead of cert_file + key_file.")
    key_store_password: Secret = Field("", description="The password of key_store.")
    key_store_type: Optional[StoreType] = Field(None, description="JKS or PKCS12 (default: from the suffix).")

    @model_validator(mode="after")
    def _either(self) -> "TlsConfig":
        if self.ca_file and self.trust_store:
            raise problem("trust_store", "give either ca_file or trust_store, not both")
        if self.cert_file and self.key_store:
            raise problem("key_store", "give either cert_file + key_file or key_store, not both")
        return self


class OpenWireConfig(Section):
    """The OpenWire transport: the ActiveMQ JMS client in a JVM (JPype)."""

    urls: one_or_many(BrokerUrl) = Field(("tcp://127.0.0.1:61616",), min_length=1, description=(
        "Broker URLs (tcp://HOST:PORT, ssl://HOST:PORT); several give failover in this order."))
    jars_dir: ConfigPath = Field(DEFAULT_JARS_DIR, description="The folder with the ActiveMQ client jars named in "
                                 "its manifest.txt (filled by scripts/setup); default: jars/ of the installation.",
                                 json_schema_extra=lambda schema: schema.pop("default"))
    classpath: one_or_many(ConfigPath) = Field((), description="Extra classpath entries (jars or folders) for the "
                                               "JVM.")
    prefetch: Whole = Field(1000, ge=1, description="Messages the broker may push ahead of acknowledgement (memory "
                                                    "bound; small = fairer sharing).")
    jvm_options: one_or_many(Text) = Field(DEFAULT_JVM_OPTIONS, description="Options of the JVM amq-bridge starts "
                                           "(ignored when the host process already runs a JVM).")
    heartbeat_ms: Whole = Field(10000, ge=0, description="Inactivity monitoring in milliseconds: a connection silent "
                                "for two to three times this is replaced (failover). 0 turns it off.")
    connection_factory: Optional[Annotated[str, Matching(_CLASS, lambda v: "must be a fully qualified Java class "
                                                          "name, like com.example.MyFactory")]] = Field(
        None, description="A javax.jms.ConnectionFactory class of your own (on classpath) instead of ActiveMQ's: "
                          "constructed with no arguments, then given the broker URL if it has setBrokerURL.")
    tls: TlsConfig = Field(TlsConfig(), description="TLS for ssl:// URLs (on by itself for them).")

    @model_validator(mode="before")
    @classmethod
    def _ssl_means_tls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        urls = data.get("urls")
        urls = [urls] if isinstance(urls, str) else urls if isinstance(urls, list) else []
        tls = data.get("tls")
        if any(isinstance(u, str) and u.startswith("ssl://") for u in urls) and (
                tls is None or (isinstance(tls, dict) and tls.get("enabled") is None)):
            return {**data, "tls": {**(tls or {}), "enabled": True}}
        return data


def _given(key: str, kind: str) -> dict[str, Any]:
    return {"required": [key], "properties": {key: {"type": kind}}}


#: For the schema: STOMP over TLS (enabled, or implied by cert_file or insecure) verifies the broker
#: with ca_file unless insecure: true.
_STOMP_TLS_CA = {
    "if": {"anyOf": [{"required": ["enabled"], "properties": {"enabled": {"const": True}}},
                     {"properties": {"enabled": {"type": "null"}},
                      "anyOf": [_given("cert_file", "string"), _given("insecure", "boolean")]}],
           "not": {"required": ["insecure"], "properties": {"insecure": {"const": True}}}},
    "then": _given("ca_file", "string"),
}


class StompConfig(Section):
    """The STOMP transport (stomp.py)."""

    model_config = {"json_schema_extra": lambda schema: schema["properties"]["tls"].update(_STOMP_TLS_CA)}

    hosts: one_or_many(HostPort) = Field((("127.0.0.1", 61613),), min_length=1, description=(
        "Broker HOST:PORT pairs; several give failover in this order."))
    heartbeat_ms: Whole = Field(10000, ge=0, description="STOMP heart-beat interval in milliseconds, both "
                                                         "directions (0 turns them off).")
    prefetch: Whole = Field(1000, ge=1, description="Messages the broker may push ahead of acknowledgement "
                                                    "(activemq.prefetchSize).")
    tls: PemTlsConfig = Field(PemTlsConfig(), description="STOMP over TLS, verified by default: ca_file is required "
                              "unless insecure: true.")

    @model_validator(mode="before")
    @classmethod
    def _no_java_stores(cls, data: Any) -> Any:
        tls = data.get("tls") if isinstance(data, dict) else None
        for key in ("trust_store", "key_store"):
            if isinstance(tls, dict) and tls.get(key) is not None:
                raise problem(f"tls.{key}", "Java key stores are for openwire; stomp takes ca_file, cert_file and "
                                            "key_file (PEM)")
        return data

    @model_validator(mode="after")
    def _verified(self) -> "StompConfig":
        tls = self.tls
        if tls.enabled and not tls.insecure and tls.ca_file is None:
            raise problem("tls.ca_file", "is required to verify the broker (a PEM file, or 'system' for the "
                                         "operating system's store); set tls.insecure: true to connect without "
                                         "verification")
        return self
