"""oci_runtime.units: the sizes, durations, signals and times users type, read as docker, runc and Go read them."""

from __future__ import annotations

import signal

import pytest

from oci_runtime import units

MiB = 1 << 20


@pytest.mark.parametrize("text, expected", [
    ("128", 128), ("64m", 64 * MiB), ("64M", 64 * MiB), ("64MiB", 64 * MiB), ("64 mb", 64 * MiB),
    ("1.5g", 3 * 512 * MiB), ("2k", 2048), ("1t", 1 << 40), ("0", 0), ("512b", 512),
])
def test_sizes_read_like_dockers_ram_in_bytes(text, expected):
    assert units.ram_in_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "m", "-1", "1.2.3g", "12x", "1  m", "١٢", "1e3"])
def test_bad_sizes_name_the_value(text):
    with pytest.raises(ValueError, match=f"invalid size: '{text}'"):
        units.ram_in_bytes(text)


@pytest.mark.parametrize("text, ns", [
    ("0", 0), ("5s", 5 * 10**9), ("500ms", 5 * 10**8), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9),
    ("-2us", -2000), ("+3ns", 3), ("1µs", 1000), (".5s", 5 * 10**8), ("1h2m3.004s", 3723004000000),
])
def test_durations_read_like_gos_parse_duration(text, ns):
    assert units.go_duration(text) == ns


@pytest.mark.parametrize("text, message", [
    ("", 'time: invalid duration ""'), ("5", 'time: missing unit in duration "5"'),
    ("5x", 'time: unknown unit "x" in duration "5x"'), ("s", 'time: invalid duration "s"'),
    ("9999999999h", 'time: invalid duration "9999999999h"'),
])
def test_bad_durations_give_gos_messages(text, message):
    with pytest.raises(ValueError) as info:
        units.go_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize("ns", [0, 1, 999, 1500, 2 * 10**6, 10**9, 90 * 10**9, 3723004000000, -5 * 10**9])
def test_formatted_durations_read_back(ns):
    assert units.go_duration(units.format_go_duration(ns)) == ns


def test_format_matches_gos_string():
    assert [units.format_go_duration(n) for n in (0, 1500, 1500000, 90 * 10**9, 3600 * 10**9)] == \
        ["0s", "1.5µs", "1.5ms", "1m30s", "1h0m0s"]


@pytest.mark.parametrize("text, number", [
    ("9", 9), ("KILL", signal.SIGKILL), ("sigterm", signal.SIGTERM), ("SIGHUP", signal.SIGHUP),
    ("RTMIN+3", signal.SIGRTMIN + 3), ("SIGRTMAX-1", signal.SIGRTMAX - 1), ("64", 64),
])
def test_signals_by_name_or_number(text, number):
    assert units.parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "65", "SIGNOPE", "SIG_DFL", "RTMIN+99", "", "٩"])
def test_bad_signals(text):
    with pytest.raises(ValueError, match="invalid signal"):
        units.parse_signal(text)


def test_times_are_gos_rfc3339nano():
    assert units.rfc3339(0) == "1970-01-01T00:00:00Z"
    assert units.rfc3339(1700000000 * 10**9) == "2023-11-14T22:13:20Z"
    assert units.rfc3339(1700000000 * 10**9 + 120000000) == "2023-11-14T22:13:20.12Z"
    assert units.rfc3339(1700000000 * 10**9 + 5, fraction=False) == "2023-11-14T22:13:20Z"
    assert units.rfc3339().endswith("Z")


def test_go_quote():
    assert units.go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'


def test_times_read_back():
    assert units.parse_rfc3339(units.rfc3339(1700000000 * 10**9 + 123456789)) == pytest.approx(1700000000.123456)
    assert units.parse_rfc3339("2023-11-14T23:13:20+01:00") == 1700000000
    assert units.parse_rfc3339("") is None and units.parse_rfc3339("yesterday") is None
