"""Registry auth: Basic against htpasswd, Bearer tokens from a token server on loopback (anonymous and
with credentials), login/logout and ~/.docker/config.json, credential helpers."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from registry_support import Client, Registry, free_port, htpasswd_line, one_line_error

USER, PASSWORD = "alice", "s3cret-pw"


def push_busybox(client, busybox_tar, target):
    client("import", busybox_tar, "busybox:latest", check=True)
    client("tag", "busybox:latest", target, check=True)
    return client("push", target)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("basic")
    (d / "htpasswd").write_text(htpasswd_line(USER, PASSWORD) + "\n")
    r = Registry(d / "reg", f"auth:\n  htpasswd:\n    realm: test\n    path: {d / 'htpasswd'}\n")
    yield r
    r.stop()


@pytest.fixture
def client(tmp_path):
    c = Client(tmp_path / "store", tmp_path / "docker")
    c("images", check=True)
    return c


def test_basic_login_push_pull_logout(basic_registry, client, busybox_tar, tmp_path):
    host = basic_registry.host
    denied = one_line_error(push_busybox(client, busybox_tar, f"{host}/busybox:latest"))
    assert "access denied" in denied and f"pydock login {host}" in denied
    line = one_line_error(client("login", "-u", USER, "--password-stdin", host, input="wrong\n"))
    assert "access denied" in line
    assert not (client.docker_config / "config.json").exists()
    out = client("login", "-u", USER, "--password-stdin", host, input=PASSWORD + "\n", check=True)
    assert out.stdout.strip() == "Login Succeeded"
    config = json.loads((client.docker_config / "config.json").read_text())
    assert base64.b64decode(config["auths"][host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert os.stat(client.docker_config / "config.json").st_mode & 0o077 == 0
    client("push", f"{host}/busybox:latest", check=True)
    other = Client(tmp_path / "store2", client.docker_config)
    other("pull", f"{host}/busybox", check=True)
    assert client("logout", host, check=True).stdout.strip() == f"Removing login credentials for {host}"
    assert host not in json.loads((client.docker_config / "config.json").read_text())["auths"]
    assert "access denied" in one_line_error(other("pull", f"{host}/busybox"))
    assert client("logout", host, check=True).stdout.strip() == f"Not logged in to {host}"


def test_credential_helper_get_and_store(basic_registry, client, busybox_tar, tmp_path):
    host = basic_registry.host
    bindir = tmp_path / "bin"
    bindir.mkdir()
    saved = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-pydocktest"
    helper.write_text(f"""#!/usr/bin/env python3
import json, sys
saved = {str(saved)!r}
action, data = sys.argv[1], sys.stdin.read()
if action == "store":
    open(saved, "w").write(data)
elif action == "get":
    try:
        record = json.load(open(saved))
    except FileNotFoundError:
        print("credentials not found in native keychain"); sys.exit(1)
    if record["ServerURL"] != data.strip():
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps(record))
elif action == "erase":
    import os; os.unlink(saved)
""")
    helper.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    (client.docker_config / "config.json").write_text(json.dumps({"credHelpers": {host: "pydocktest"}}))
    assert "access denied" in one_line_error(client("pull", f"{host}/helped", env=env))
    client("login", "-u", USER, "--password-stdin", host, input=PASSWORD, env=env, check=True)
    assert json.loads(saved.read_text()) == {"ServerURL": host, "Username": USER, "Secret": PASSWORD}
    assert "auth" not in json.dumps(json.loads((client.docker_config / "config.json").read_text())["auths"])
    client("import", busybox_tar, "busybox:latest", check=True)
    client("tag", "busybox:latest", f"{host}/helped:latest", check=True)
    client("push", f"{host}/helped:latest", env=env, check=True)
    client("logout", host, env=env, check=True)
    assert not saved.exists()


# --- Bearer tokens -----------------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs the registry trusts (its certificate is the registry's root bundle): pull for
    anyone, pull and push for USER with PASSWORD, 401 for a wrong password."""

    def __init__(self, d):
        self.key, self.cert = d / "key.pem", d / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=token"], check=True,
                       capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[tuple[str | None, list[str]]] = []
        # how many of the next tokens expire within 2 s though the answer says 300 (the registry accepts a
        # token up to 60 s after its exp: jwt's leeway in distribution)
        self.short_lived = 0
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = parse_qs(urlparse(self.path).query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
                    if (user, pw) != (USER, PASSWORD):
                        self.send_response(401)
                        self.end_headers()
                        return
                scopes = q.get("scope", [])
                server_self.requests.append((user, scopes))
                body = json.dumps({"token": server_self.token(q.get("service", [""])[0], user, scopes),
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, service: str, user: str | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")[0], ":".join(scope.split(":")[1:-1]), scope.split(":")[-1]
            allowed = [a for a in actions.split(",") if a == "pull" or (user and a in ("push", "*"))]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        lifetime = 300
        if self.short_lived:
            self.short_lived -= 1
            lifetime = 2 - 60
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": "test-issuer", "sub": user or "", "aud": service, "exp": now + lifetime, "nbf": now - 100,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                                   check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("token")
    tokens = TokenServer(d)
    r = Registry(d / "reg", f"""auth:
  token:
    realm: http://127.0.0.1:{tokens.port}/token
    service: test-registry
    issuer: test-issuer
    rootcertbundle: {tokens.cert}
""")
    yield r, tokens
    r.stop()
    tokens.stop()


def test_bearer_anonymous_and_with_credentials(token_registry, client, busybox_tar, tmp_path):
    registry, tokens = token_registry
    host = registry.host
    assert "access denied" in one_line_error(push_busybox(client, busybox_tar, f"{host}/busybox:latest"))
    assert (None, ["repository:busybox:pull,push"]) in tokens.requests
    assert "refused the credentials" in one_line_error(
        client("login", "-u", USER, "--password-stdin", host, input="nope"))
    client("login", "-u", USER, "--password-stdin", host, input=PASSWORD, check=True)
    client("push", f"{host}/busybox:latest", check=True)
    assert (USER, ["repository:busybox:pull,push"]) in tokens.requests
    tokens.requests.clear()
    anonymous = Client(tmp_path / "anon", tmp_path / "anon-docker")
    anonymous("pull", f"{host}/busybox", check=True)
    assert tokens.requests and all(user is None for user, _ in tokens.requests)
    assert ["repository:busybox:pull"] in [scopes for _, scopes in tokens.requests]


# --- the pieces, without a registry ---------------------------------------------------------------------

def test_challenge_parsing():
    from builder.registry.auth import parse_challenges

    [c] = parse_challenges('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    basic, bearer = parse_challenges('Basic realm="x \\"y\\"", Bearer realm=http://t/token')
    assert (basic.scheme, basic.params) == ("basic", {"realm": 'x "y"'})
    assert (bearer.scheme, bearer.params) == ("bearer", {"realm": "http://t/token"})
    assert parse_challenges("") == []


def test_config_json_lookup(tmp_path, monkeypatch):
    from builder.errors import BuildError
    from builder.registry import auth

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert auth.get_credentials("docker.io") is None
    token = base64.b64encode(b"u:p:with:colons").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": token}, "http://reg.example:5000/v2/": {"auth": token},
        "bad.example": {"auth": base64.b64encode(b"nocolon").decode()}}}))
    assert auth.get_credentials("docker.io") == auth.Credentials("u", "p:with:colons")
    assert auth.get_credentials("reg.example:5000") == auth.Credentials("u", "p:with:colons")
    assert auth.get_credentials("reg.example") is None
    with pytest.raises(BuildError, match="malformed auth for bad.example"):
        auth.get_credentials("bad.example")
    auth.store_credentials("docker.io", auth.Credentials("v", "q"))
    saved = json.loads((tmp_path / "config.json").read_text())["auths"]
    assert base64.b64decode(saved["https://index.docker.io/v1/"]["auth"]) == b"v:q"
    assert auth.erase_credentials("docker.io") and not auth.erase_credentials("docker.io")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "no-such-helper-here"}))
    with pytest.raises(BuildError, match="docker-credential-no-such-helper-here is not installed"):
        auth.get_credentials("docker.io")


def test_one_token_serves_every_blob_of_a_push_and_a_pull(token_registry, client, busybox_tar, tmp_path):
    from builder_support import make_context

    registry, tokens = token_registry
    host = registry.host
    client("import", busybox_tar, "busybox:latest", check=True)
    files = {f"f{i}": f"layer {i}\n" * (i + 1) for i in range(4)}
    steps = "".join(f"COPY f{i} /f{i}\n" for i in range(4))
    client("build", "-t", f"{host}/layers:v1", make_context(tmp_path / "ctx", f"FROM busybox\n{steps}", files),
           check=True)
    layers = json.loads(client("inspect", f"{host}/layers:v1", check=True).stdout)[0]["RootFS"]["Layers"]
    assert len(layers) == 5
    client("login", "-u", USER, "--password-stdin", host, input=PASSWORD, check=True)
    tokens.requests.clear()
    client("push", f"{host}/layers:v1", check=True)
    assert tokens.requests == [(USER, ["repository:layers:pull,push"])]
    tokens.requests.clear()
    anonymous = Client(tmp_path / "anon", tmp_path / "anon-docker")
    out = anonymous("pull", f"{host}/layers:v1", check=True).stdout
    assert out.count("Pull complete") == 5
    assert tokens.requests == [(None, ["repository:layers:pull"])]
    # a token is not kept across commands (as docker): the next command asks again, once
    anonymous("rmi", f"{host}/layers:v1", check=True)
    tokens.requests.clear()
    anonymous("pull", f"{host}/layers:v1", check=True)
    assert tokens.requests == [(None, ["repository:layers:pull"])]


def test_an_expired_token_is_refreshed_not_reused(token_registry, client, busybox_tar):
    from builder.registry.client import Registry as RegistryClient

    registry, tokens = token_registry
    client("login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD, check=True)
    push_busybox(client, busybox_tar, f"{registry.host}/expiring:latest").check_returncode()
    tokens.requests.clear()
    tokens.short_lived = 1
    api = RegistryClient(registry.host, use_stored=False)
    api.want("expiring", "pull")
    api.request("GET", "/v2/expiring/tags/list").close()
    api.request("GET", "/v2/expiring/tags/list").close()
    assert len(tokens.requests) == 1  # kept for the second request
    time.sleep(3.5)
    api.request("GET", "/v2/expiring/tags/list").close()  # refused now: a new token is asked for
    assert len(tokens.requests) == 2
    again = RegistryClient(registry.host, use_stored=False)
    again.want("expiring", "pull")
    again.request("GET", "/v2/expiring/tags/list").close()
    assert len(tokens.requests) == 2  # the new one serves another client of the same command
