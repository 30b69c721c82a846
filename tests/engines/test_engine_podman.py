"""pyrunc under podman 4.3 (podman --runtime <path to pyrunc>, through conmon)."""

from __future__ import annotations

import pytest

from engines_fixtures import CliEngineCases, engine_fixture, names  # noqa: F401 (fixtures)

pytestmark = pytest.mark.engines

engine = engine_fixture("podman")


class TestPodman(CliEngineCases):
    # conmon 2.1.6 on cgroup v1 never records the OOM kill, under runc just as under pyrunc: the exit
    # status 137 is all there is to check.
    reports_oom_killed = False
    update_flags = ["--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5"]  # 4.3 has no --pids-limit here
