"""Fixtures of the registry tests: one real registry on loopback per module."""

from __future__ import annotations

import pytest

from registry_support import Registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    r = Registry(tmp_path_factory.mktemp("registry"))
    yield r
    r.stop()
