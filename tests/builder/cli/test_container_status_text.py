"""docker's STATUS column, from a container's state."""

from __future__ import annotations

from builder.cli.container_views import status_text
from oci_runtime.units import parse_rfc3339

NOW = parse_rfc3339("2026-12-02T12:00:00Z")


def exited(code: int, finished: str) -> dict:
    return {"Status": "exited", "ExitCode": code, "FinishedAt": finished, "StartedAt": "2026-12-02T11:00:00Z"}


def test_an_exited_container_says_how_long_ago():
    assert status_text(exited(0, "2026-12-02T11:58:00Z"), NOW) == "Exited (0) 2 minutes ago"


def test_an_end_nobody_recorded_has_no_age():
    # a monitor and its guard killed together: the record never got a finish time, and the zero time
    # would read as two thousand years ago
    assert status_text(exited(255, "0001-01-01T00:00:00Z"), NOW) == "Exited (255)"


def test_a_running_container_says_since_when():
    state = {"Status": "running", "ExitCode": 0, "StartedAt": "2026-12-02T11:59:30Z", "FinishedAt": "0001-01-01T00:00:00Z"}
    assert status_text(state, NOW) == "Up 30 seconds"
