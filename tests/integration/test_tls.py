"""TLS towards the broker, both transports: events flow, and a certificate that must not be
trusted is refused with a message naming why (untrusted CA, other host name, no client
certificate). Certificates are made for the module by tests/certs.py; the broker serving
ssl:// and stomp+ssl:// is ``amq-bridge broker --key-store`` in a child process, and the
bridge (and so the JVM) runs in child processes too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from bridge.publish import sample_event
from tests.certs import STORE_PASSWORD, Certs, StubTlsServer, TlsBroker, available, make_certs, start_tls_broker
from tests.conftest import ROOT, TRANSPORTS, bridge_command, child_env, publish, stop_process, write_config

pytestmark = [pytest.mark.broker, pytest.mark.skipif(not available(), reason="needs openssl and keytool")]
N = 100
UNTRUSTED = "TLS: the broker's certificate is not trusted"
MISMATCH = "TLS: the broker's certificate does not match host 127.0.0.1"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TlsBroker]:
    broker = start_tls_broker(tmp_path_factory.mktemp("tls-broker"), certs)
    try:
        yield broker
    finally:
        stop_process(broker.process)


@pytest.fixture(scope="module")
def wrong_host(certs: Certs) -> Iterator[StubTlsServer]:
    server = StubTlsServer(certs, "wronghost")
    try:
        yield server
    finally:
        server.close()


def tls_config(path: Path, transport: str, *, openwire_url: str, stomp_host: str, tls: dict[str, Any],
               namespace: str = "tls", **overrides: Any) -> Path:
    """A bridge config whose selected transport goes over TLS with ``tls`` (paths may be Path)."""
    section = {key: str(value) if isinstance(value, Path) else value for key, value in tls.items()}
    openwire: dict[str, Any] = {"urls": [openwire_url], "jars_dir": str(ROOT / "jars")}
    stomp: dict[str, Any] = {"hosts": [stomp_host]}
    (openwire if transport == "openwire" else stomp)["tls"] = section
    return write_config(path, transport=transport, namespace=namespace, connect_timeout=5,
                        openwire=openwire, stomp=stomp, **overrides)


def check(config: Path) -> subprocess.CompletedProcess[str]:
    """``amq-bridge check`` (connects and subscribes with the selected transport)."""
    return subprocess.run(bridge_command("check", "-c", str(config)), env=child_env(TLS_STORE_PASSWORD=STORE_PASSWORD),
                          capture_output=True, text=True, timeout=90, cwd=config.parent)


def line_of(result: subprocess.CompletedProcess[str], transport: str) -> str:
    return next((line for line in result.stdout.splitlines() if line.strip().startswith(f"{transport} (selected)")),
                result.stdout + result.stderr)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_events_flow_over_tls(tls_broker: TlsBroker, certs: Certs, spawn, tmp_path: Path, namespace: str,
                              transport: str) -> None:
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=tls_broker.openwire_ssl_url,
                        stomp_host=tls_broker.stomp_ssl_host, tls={"ca_file": certs.path("ca.pem")},
                        namespace=namespace)
    bridge = spawn(config, "--max-events", str(N), "--idle-timeout", "60")
    bridge.wait_for("subscribed to")
    publish(config, N, transport=transport)  # over TLS as well
    assert bridge.wait() == 0, bridge.stderr
    assert [e["data"] for e in bridge.events()] == [sample_event(i) for i in range(N)]
    assert "WITHOUT verifying" not in bridge.stderr


@pytest.mark.parametrize("transport, tls", [
    ("openwire", {"trust_store": "truststore.jks", "trust_store_password": "${TLS_STORE_PASSWORD}"}),
    ("openwire", {"trust_store": "truststore.p12", "trust_store_password": "${TLS_STORE_PASSWORD}",
                  "trust_store_type": "PKCS12"}),
    ("openwire", {"ca_file": "ca.pem", "verify_hostname": False}),
    ("stomp", {"ca_file": "ca.pem", "verify_hostname": False}),
], ids=["openwire-jks", "openwire-p12", "openwire-no-hostname-check", "stomp-no-hostname-check"])
def test_trust_forms(tls_broker: TlsBroker, certs: Certs, tmp_path: Path, transport: str, tls: dict[str, Any]) -> None:
    tls = {key: certs.path(value) if key in ("trust_store", "ca_file") else value for key, value in tls.items()}
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=tls_broker.openwire_ssl_url,
                        stomp_host=tls_broker.stomp_ssl_host, tls=tls)
    result = check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert STORE_PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_certificate_from_another_ca_is_refused(tls_broker: TlsBroker, certs: Certs, tmp_path: Path,
                                                transport: str) -> None:
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=tls_broker.openwire_ssl_url,
                        stomp_host=tls_broker.stomp_ssl_host, tls={"ca_file": certs.path("ca2.pem")})
    result = check(config)
    assert result.returncode == 1
    assert UNTRUSTED in line_of(result, transport), result.stdout + result.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_certificate_for_another_host_is_refused(wrong_host: StubTlsServer, certs: Certs, tmp_path: Path,
                                                 transport: str) -> None:
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=f"ssl://{wrong_host.address}",
                        stomp_host=wrong_host.address, tls={"ca_file": certs.path("ca.pem")})
    result = check(config)
    assert result.returncode == 1
    assert MISMATCH in line_of(result, transport), result.stdout + result.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_reports_the_tls_cause(tls_broker: TlsBroker, certs: Certs, spawn, tmp_path: Path, transport: str) -> None:
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=tls_broker.openwire_ssl_url,
                        stomp_host=tls_broker.stomp_ssl_host, tls={"ca_file": certs.path("ca2.pem")},
                        reconnect={"initial_delay": 0.1, "max_attempts": 1})
    bridge = spawn(config, "--idle-timeout", "30")
    assert bridge.wait(90) == 1
    assert "gave up after 1 attempts" in bridge.stderr and UNTRUSTED in bridge.stderr, bridge.stderr
    assert "Traceback" not in bridge.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_insecure_connects_and_warns(tls_broker: TlsBroker, tmp_path: Path, transport: str) -> None:
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=tls_broker.openwire_ssl_url,
                        stomp_host=tls_broker.stomp_ssl_host, tls={"insecure": True})
    result = check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" in result.stderr and "WITHOUT verifying the broker's certificate" in result.stderr


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TlsBroker]:
    """A broker whose TLS connectors want a client certificate signed by the test CA."""
    broker = start_tls_broker(tmp_path_factory.mktemp("mtls-broker"), certs, "--client-ca", str(certs.path("ca.pem")))
    try:
        yield broker
    finally:
        stop_process(broker.process)


@pytest.mark.parametrize("transport, identity", [
    ("openwire", {"key_store": "client.p12", "key_store_password": "${TLS_STORE_PASSWORD}"}),
    ("openwire", {"cert_file": "client.pem", "key_file": "client.key"}),
    ("stomp", {"cert_file": "client.pem", "key_file": "client.key"}),
], ids=["openwire-key-store", "openwire-pem", "stomp-pem"])
def test_mutual_tls(mtls_broker: TlsBroker, certs: Certs, tmp_path: Path, transport: str,
                    identity: dict[str, Any]) -> None:
    tls = {"ca_file": certs.path("ca.pem"),
           **{key: certs.path(value) if key.endswith(("_store", "_file")) else value for key, value in identity.items()}}
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=mtls_broker.openwire_ssl_url,
                        stomp_host=mtls_broker.stomp_ssl_host, tls=tls)
    result = check(config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mutual_tls_without_client_certificate_is_refused(mtls_broker: TlsBroker, certs: Certs, tmp_path: Path,
                                                          transport: str) -> None:
    config = tls_config(tmp_path / "c.yaml", transport, openwire_url=mtls_broker.openwire_ssl_url,
                        stomp_host=mtls_broker.stomp_ssl_host, tls={"ca_file": certs.path("ca.pem")})
    result = check(config)
    assert result.returncode == 1
    assert "TLS:" in line_of(result, transport), result.stdout + result.stderr
