"""Which registries are spoken to over https, and an https registry whose CA is in certs.d."""

from __future__ import annotations

import socket
import subprocess

import pytest

from builder.registry.client import _tls_for, scheme_for
from registry_support import Client, Registry, one_line_error


def test_scheme_rules(monkeypatch, tmp_path):
    monkeypatch.delenv("PYDOCK_INSECURE_REGISTRIES", raising=False)
    assert scheme_for("registry.example.com") == "https"
    assert scheme_for("example.com:5000") == "https"
    for host in ("localhost", "localhost:5000", "127.0.0.1:5000", "127.3.2.1", "[::1]:5000"):
        assert scheme_for(host) == "http", host
    monkeypatch.setenv("PYDOCK_INSECURE_REGISTRIES", "example.com:5000, other.example")
    assert scheme_for("example.com:5000") == "http"
    assert scheme_for("other.example:443") == "http"
    assert scheme_for("example.com:5001") == "https"
    monkeypatch.setenv("PYDOCK_INSECURE_REGISTRIES", "10.0.0.0/8,bad/range")
    assert scheme_for("10.1.2.3:5000") == "http" and scheme_for("10.9.9.9") == "http"
    assert scheme_for("11.1.2.3:5000") == "https" and scheme_for("ten.example") == "https"
    monkeypatch.setenv("PYDOCK_CERTS_DIR", str(tmp_path))
    assert _tls_for("example.com:5000") == (True, None)
    d = tmp_path / "example.com:5000"
    d.mkdir()
    for name in ("ca.crt", "client.cert", "client.key"):
        (d / name).write_text("x")
    assert _tls_for("example.com:5000") == (str(d / "ca.crt"), (str(d / "client.cert"), str(d / "client.key")))


def _loopback_name() -> str:
    """This machine's host name, if it resolves to loopback (a name that is not "localhost" or an
    address, so that pydock uses https for it)."""
    name = socket.gethostname()
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        addresses = set()
    if not name or "." in name or addresses != {"127.0.0.1"}:
        pytest.skip("the host name does not resolve to 127.0.0.1 only")
    return name


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    name = _loopback_name()
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    r = Registry(d / "reg", tls=(d / "cert.pem", d / "key.pem"))
    yield r, name, d / "cert.pem"
    r.stop()


def test_https_registry_with_its_ca_in_certs_d(tls_registry, tmp_path, busybox_tar):
    registry, name, cert = tls_registry
    host = f"{name}:{registry.port}"
    certs = tmp_path / "certs.d"
    client = Client(tmp_path / "store", tmp_path / "docker")
    client("import", busybox_tar, "busybox:latest", check=True)
    client("tag", "busybox:latest", f"{host}/busybox:latest", check=True)
    env = {"PYDOCK_CERTS_DIR": str(certs)}
    line = one_line_error(client("push", f"{host}/busybox:latest", env=env))
    assert "TLS failed" in line and "PYDOCK_INSECURE_REGISTRIES" in line
    (certs / host).mkdir(parents=True)
    (certs / host / "ca.crt").write_bytes(cert.read_bytes())
    client("push", f"{host}/busybox:latest", env=env, check=True)
    other = Client(tmp_path / "store2", tmp_path / "docker")
    other("pull", f"{host}/busybox", env=env, check=True)
