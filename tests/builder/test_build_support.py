"""Helpers shared by the pydock build and CLI tests (imported by test_build*.py and test_pydock_cli.py).

A store per test with busybox imported from a rootfs tarball, a runner for the pydock CLI, and
helpers that unpack an `-o type=oci` output with umoci and read its config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from support import PYDOCK, build_busybox_rootfs

UMOCI = shutil.which("umoci")


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    d = tmp_path_factory.mktemp("bbtar")
    root = build_busybox_rootfs(d / "rootfs")
    out = d / "busybox.tar"
    with tarfile.open(out, "w") as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry)
    return out


class Pydock:
    """Runs `pydock --root ROOT ...` for one test's store."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args, input=None, check=False, timeout=300, env=None, cwd=None):
        full_env = dict(os.environ)
        full_env.pop("SOURCE_DATE_EPOCH", None)
        if env:
            full_env.update(env)
        proc = subprocess.run([*PYDOCK, "--root", str(self.root), *map(str, args)], input=input,
                              capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"pydock {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def build(self, ctx: Path, *args, check=True, **kw):
        return self(*args_with_defaults(args), str(ctx), check=check, **kw)

    def snapshot(self) -> dict[str, tuple]:
        """Every path under the store with its size (to check a failed build changed nothing)."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                p = os.path.join(dirpath, name)
                if name == "index.lock":
                    continue
                out[os.path.relpath(p, self.root)] = (os.path.getsize(p),)
            for name in dirnames:
                out[os.path.relpath(os.path.join(dirpath, name), self.root) + "/"] = ()
        return out


def args_with_defaults(args) -> list[str]:
    return ["build", *map(str, args)]


@pytest.fixture
def pydock(tmp_path, busybox_tar) -> Pydock:
    """pydock for a fresh store that holds busybox:latest."""
    p = Pydock(tmp_path / "store")
    p("import", busybox_tar, "busybox:latest", check=True)
    return p


def make_context(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def unpack(layout: Path, ref: str, dest: Path) -> tuple[Path, dict]:
    """umoci unpack the layout's image `ref`; returns (rootfs, runtime config.json)."""
    if UMOCI is None:
        pytest.skip("umoci is not installed")
    subprocess.run([UMOCI, "unpack", "--image", f"{layout}:{ref}", str(dest)], check=True,
                   capture_output=True, text=True)
    return dest / "rootfs", json.loads((dest / "config.json").read_text())


def image_config(layout: Path, ref: str | None = None) -> tuple[dict, dict]:
    """(manifest, image config) of the layout's image named ref (or its only image)."""
    index = json.loads((layout / "index.json").read_text())
    entries = index["manifests"]
    if ref is not None:
        entries = [m for m in entries if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref]
    digest = entries[0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    return manifest, config


def layer_names(layout: Path, layer_digest: str) -> list[str]:
    with tarfile.open(layout / "blobs" / "sha256" / layer_digest.split(":")[1]) as tar:
        return tar.getnames()
