"""Fixtures of the builder tests: an empty image store, and pydock with a store that holds busybox."""

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
