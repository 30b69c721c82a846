"""Fixtures of the builder tests: an empty image store, pydock with a store that holds busybox (one per test,
or `dock`: one per module, its containers and volumes removed when the module ends)."""

from __future__ import annotations

import pytest

from builder.image.store import ImageStore
from builder_support import Pydock


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.fixture
def pydock(tmp_path, busybox_tar) -> Pydock:
    """pydock for a fresh store that holds busybox:latest."""
    p = Pydock(tmp_path / "store")
    p("import", busybox_tar, "busybox:latest", check=True)
    return p


@pytest.fixture(scope="module")
def dock(request, tmp_path_factory, busybox_tar) -> Pydock:
    """pydock for one module's store that holds busybox:latest; its containers and volumes go at the end."""
    p = Pydock(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]) / "store")
    p("import", busybox_tar, "busybox:latest", check=True)
    yield p
    for cid in p("ps", "-aq", "--no-trunc").stdout.split():
        p("rm", "-f", "-v", cid)
    p("volume", "prune", "-af")
