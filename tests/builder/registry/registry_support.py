"""A real registry (distribution's `docker-registry serve`) on a free loopback port, with filesystem
storage in a temp dir, optionally behind htpasswd auth; and pydock runs with their own DOCKER_CONFIG."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import requests

from builder_support import Pydock

REGISTRY = shutil.which("docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, root: Path, auth_yaml: str = "", tls: tuple[Path, Path] | None = None):
        if REGISTRY is None:
            pytest.skip("docker-registry is not installed")
        self.root = root
        self.storage = root / "storage"
        self.storage.mkdir(parents=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = root / "config.yml"
        config.write_text(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {self.storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
  secret: test-secret
{f"  tls:{chr(10)}    certificate: {tls[0]}{chr(10)}    key: {tls[1]}{chr(10)}" if tls else ""}{auth_yaml}""")
        self.log = open(root / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                with warnings.catch_warnings():  # only asks whether it is up: no need to check its cert
                    warnings.simplefilter("ignore")
                    requests.get(f"{'https' if tls else 'http'}://{self.host}/v2/", timeout=2, verify=False)
                break
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"registry did not start: {(root / 'registry.log').read_text()}")
                time.sleep(0.05)

    def blob_data(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def htpasswd_line(user: str, password: str) -> str:
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    return subprocess.run([tool, "-Bbn", user, password], check=True, capture_output=True,
                          text=True).stdout.strip()


class Client(Pydock):
    """pydock with its own store and its own DOCKER_CONFIG."""

    def __init__(self, root: Path, docker_config: Path):
        super().__init__(root)
        self.docker_config = docker_config
        docker_config.mkdir(parents=True, exist_ok=True)

    def __call__(self, *args, env=None, **kw):
        full = {"DOCKER_CONFIG": str(self.docker_config), "PYDOCK_INSECURE_REGISTRIES": ""}
        full.update(env or {})
        return super().__call__(*args, env=full, **kw)


def push_busybox(tmp_path_factory, busybox_tar, ref: str):
    """A new store (its own client) with busybox:latest (CMD sh) pushed as ref; returns (client, push run)."""
    d = tmp_path_factory.mktemp("source")
    client = Client(d / "store", d / "docker")
    client("import", "-c", "CMD [\"sh\"]", busybox_tar, "busybox:latest", check=True)
    client("tag", "busybox:latest", ref, check=True)
    return client, client("push", ref, check=True)


def one_line_error(proc) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pydock: error: "), proc.stderr
    return lines[0]
