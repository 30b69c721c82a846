"""Fixtures of the builder tests: an empty image store, and pydock with a store that holds busybox."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from builder.image.store import ImageStore
from builder_support import Pydock
from support import build_busybox_rootfs


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "store")


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


@pytest.fixture
def pydock(tmp_path, busybox_tar) -> Pydock:
    """pydock for a fresh store that holds busybox:latest."""
    p = Pydock(tmp_path / "store")
    p("import", busybox_tar, "busybox:latest", check=True)
    return p
