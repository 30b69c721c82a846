"""pydock logs --since/--until and the json-file log's rotation (--log-opt max-size, max-file) against
real containers: docker's time forms, rotated files read back in order, `logs -f` across rotations."""

from __future__ import annotations

import math
import subprocess

import pytest

from builder_support import Pydock
from oci_runtime.units import parse_rfc3339
from support import PYDOCK

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def three_lines(dock) -> tuple[str, dict[str, str]]:
    """A container that logged a, b and c 1.5 s apart, and each line's time stamp."""
    cid = dock("run", "-d", "busybox", "sh", "-c", "echo a; sleep 1.5; echo b; sleep 1.5; echo c",
               check=True).stdout.strip()
    dock("wait", cid, check=True)
    stamps = {}
    for line in dock("logs", "-t", cid, check=True).stdout.splitlines():
        stamp, text = line.split(" ", 1)
        stamps[text] = stamp
    assert sorted(stamps) == ["a", "b", "c"]
    return cid, stamps


def test_since_and_until_take_rfc3339_times(dock, three_lines):
    cid, stamps = three_lines
    assert dock("logs", "--since", stamps["b"], cid, check=True).stdout == "b\nc\n"
    assert dock("logs", "--until", stamps["b"], cid, check=True).stdout == "a\nb\n"
    assert dock("logs", "--since", stamps["b"], "--until", stamps["b"], cid, check=True).stdout == "b\n"
    assert dock("logs", "--since", stamps["c"], "-t", cid, check=True).stdout == f"{stamps['c']} c\n"


def test_since_and_until_take_unix_times_and_durations(dock, three_lines):
    cid, stamps = three_lines
    b = parse_rfc3339(stamps["b"])
    assert dock("logs", "--since", str(math.floor(b)), cid, check=True).stdout == "b\nc\n"
    assert dock("logs", "--until", f"{b:.9f}", cid, check=True).stdout in ("a\n", "a\nb\n")  # float rounding
    assert dock("logs", "--since", "1h", cid, check=True).stdout == "a\nb\nc\n"
    assert dock("logs", "--until", "1h", cid, check=True).stdout == ""  # an hour ago: before it all
    assert dock("logs", "--since", "0s", cid, check=True).stdout == ""  # from now on


def test_bad_times_are_refused(dock, three_lines):
    cid, _ = three_lines
    for flag, value in (("--since", "yesterday"), ("--until", "10 minutes"), ("--since", "2024-13-45")):
        proc = dock("logs", flag, value, cid)
        assert proc.returncode == 125 and f"invalid value for {flag}" in proc.stderr
        assert proc.stderr.count("\n") == 1


def log_files(dock: Pydock, cid: str) -> list[str]:
    full = dock("inspect", "-f", "{{.Id}}", cid, check=True).stdout.strip()
    return sorted(p.name for p in (dock.root / "containers" / full).iterdir() if "-json.log" in p.name)


def test_rotation_keeps_max_file_files_and_logs_reads_them_in_order(dock):
    cid = dock("run", "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done", check=True).stdout.strip()
    dock("wait", cid, check=True)
    files = log_files(dock, cid)
    assert len(files) == 3 and files[1].endswith(".log.1") and files[2].endswith(".log.2")
    for name in files:
        full = dock("inspect", "-f", "{{.Id}}", cid, check=True).stdout.strip()
        assert (dock.root / "containers" / full / name).stat().st_size <= 2048
    lines = dock("logs", cid, check=True).stdout.splitlines()
    numbers = [int(line.split("-")[1]) for line in lines]
    assert numbers == list(range(numbers[0], 500)) and numbers[0] > 0  # the oldest went, the rest in order
    assert dock("logs", "--tail", "2", cid, check=True).stdout == "line-498\nline-499\n"
    inspect = dock("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid, check=True).stdout
    assert inspect.strip() == '{"Type":"json-file","Config":{"max-file":"3","max-size":"2k"}}'


def test_max_file_1_starts_the_log_over(dock):
    cid = dock("run", "-d", "--log-opt", "max-size=1k", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done", check=True).stdout.strip()
    dock("wait", cid, check=True)
    assert len(log_files(dock, cid)) == 1
    lines = dock("logs", cid, check=True).stdout.splitlines()
    assert lines[-1] == "line-299" and 0 < len(lines) < 300


def test_follow_goes_on_across_rotations(dock):
    cid = dock("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=50", "busybox", "sh", "-c",
               "sleep 1; i=0; while [ $i -lt 150 ]; do echo line-$i; i=$((i+1)); sleep 0.01; done",
               check=True).stdout.strip()
    follower = subprocess.run([*PYDOCK, "--root", dock.root, "logs", "-f", cid], capture_output=True, text=True,
                              timeout=120)
    assert follower.stdout.splitlines() == [f"line-{i}" for i in range(150)]
    assert len(log_files(dock, cid)) > 3  # it did rotate meanwhile


def test_bad_log_opts_are_refused_and_leave_nothing(dock):
    before = dock("ps", "-aq").stdout
    for opts, words in ((["max-file=2"], "max-file cannot be set when max-size is not set"),
                        (["max-size=lots"], "invalid size"),
                        (["max-size=1k", "max-file=0"], "max-file cannot be less than 1"),
                        (["colour=red"], "unknown log opt 'colour'")):
        args = [a for o in opts for a in ("--log-opt", o)]
        proc = dock("run", *args, "busybox", "true")
        assert proc.returncode == 125 and words in proc.stderr, (opts, proc.stderr)
    assert dock("ps", "-aq").stdout == before


def test_a_full_disk_for_the_log_is_reported_not_fatal(dock, tmp_path):
    """The log file sits on a 16 KiB tmpfs: the container writes far more, runs to its end with its own
    status, its log keeps whole lines only, and `logs` warns that output is missing."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", small], check=True)
    try:
        cid = dock("create", "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; exit 4", check=True).stdout.strip()
        full = dock("inspect", "-f", "{{.Id}}", cid, check=True).stdout.strip()
        log = dock.root / "containers" / full / f"{full}-json.log"
        (small / "log").touch()
        log.touch()
        subprocess.run(["mount", "--bind", small / "log", log], check=True)
        try:
            dock("start", cid, check=True)
            assert dock("wait", cid, check=True).stdout == "4\n"
            proc = dock("logs", cid)
            lines = proc.stdout.splitlines()
            assert proc.returncode == 0 and 0 < len(lines) < 2000
            assert lines == [f"line-{i}" for i in range(len(lines))]  # whole lines, in order, none torn
            assert "pydock: warning: writing the log" in proc.stderr and "No space left on device" in proc.stderr
        finally:
            subprocess.run(["umount", log], check=True)
    finally:
        subprocess.run(["umount", small], check=True)
