"""What the registry tests share: the real registry (support.Registry, also used by the engine tests),
htpasswd lines for its basic auth, pydock runs with their own DOCKER_CONFIG, and tools the interop tests
need."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from builder_support import Pydock
from support import REGISTRY, Registry, free_port, unavailable  # noqa: F401 (the registry tests import them from here)


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


def skopeo(*args, check=True) -> subprocess.CompletedProcess:
    """skopeo (Debian's) with TLS off toward the loopback registry; a missing skopeo skips (or fails when
    PYRUNC_ENGINES=require)."""
    tool = shutil.which("skopeo")
    if tool is None:
        unavailable("skopeo is not installed (Debian package skopeo)")
    proc = subprocess.run([tool, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
