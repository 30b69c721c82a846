"""History times of a committed image, filled in the way BuildKit's exporter does (pure)."""

from __future__ import annotations

from builder.builds.result import fill_history_times


def test_history_times_filled_like_buildkit():
    h = [{"created": "2020-01-01T00:00:00Z"}, {}, {"created": "2024-01-01T00:00:00Z"}, {}]
    fill_history_times(h, 1, None)
    assert [x["created"] for x in h] == ["2020-01-01T00:00:00Z", "2024-01-01T00:00:00Z",
                                         "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"]
    h = [{"created": "2020-01-01T00:00:00Z"}, {}, {"created": "2030-01-01T00:00:00Z"}]
    fill_history_times(h, 1, "2023-11-14T22:13:20Z")
    assert [x["created"] for x in h] == ["2020-01-01T00:00:00Z", "2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z"]
