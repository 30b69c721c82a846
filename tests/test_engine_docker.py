"""pyrunc under docker 20.10 (dockerd --add-runtime pyrunc=..., docker run --runtime pyrunc)."""

from __future__ import annotations

import pytest

from engines_fixtures import CliEngineCases, engine_fixture, names  # noqa: F401 (fixtures)

pytestmark = pytest.mark.engines

engine = engine_fixture("docker")


class TestDocker(CliEngineCases):
    pass
