"""pyrunc update and events against real containers: cgroup files change, zeros change nothing, refusals
change nothing, a lowered pids limit holds a fork loop, stats have runc's shape, an OOM kill is reported."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import uuid

import pytest

from oci_runtime.cli.resources import parse_duration, ram_in_bytes
from oci_runtime.container.events import runc_shape
from oci_runtime.container.update import merge_resources
from oci_runtime.errors import RuntimeFailure
from support import PYRUNC

needs_root = pytest.mark.root

MiB = 1 << 20


def unique(prefix: str) -> str:
    """Container ids name cgroups, which other test runs on this host may be using at the same time."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_detached(pyrunc, make_bundle, cid: str, script: str, resources: dict | None = None):
    def edit(spec):
        if resources:
            spec["linux"]["resources"].update(resources)

    bundle = make_bundle(["sh", "-c", script], edit=edit)
    out = pyrunc("run", "-d", "--bundle", bundle, cid)
    assert out.returncode == 0, out.stderr
    return bundle


def saved_state(state_root, cid) -> dict:
    return json.loads((state_root / cid / "state.json").read_text())


class CgroupFiles:
    """The container's cgroup files, found from the "cgroup" entry pyrunc saved in state.json."""

    def __init__(self, state_root, cid):
        self.cg = saved_state(state_root, cid)["cgroup"]
        self.v2 = self.cg["version"] == 2

    def dir(self, controller: str) -> str:
        if self.v2:
            return self.cg["dir"]
        for h in self.cg["hierarchies"]:
            if controller in h["subsystems"]:
                return h["path"]
        pytest.skip(f"the {controller} controller is not mounted")

    def read(self, controller: str, name: str) -> str:
        with open(os.path.join(self.dir(controller), name)) as f:
            return f.read().strip()

    def has(self, controller: str, name: str) -> bool:
        return os.path.exists(os.path.join(self.dir(controller), name))

    def memory_limit(self) -> str:
        return self.read("memory", "memory.max" if self.v2 else "memory.limit_in_bytes")

    def cpu_quota(self) -> str:
        return self.read("cpu", "cpu.max").split()[0] if self.v2 else self.read("cpu", "cpu.cfs_quota_us")

    def cpu_shares(self) -> str:
        return self.read("cpu", "cpu.weight" if self.v2 else "cpu.shares")


def wait_for(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# --- parsing, without containers ------------------------------------------------------------------

def test_memory_sizes_read_like_docker():
    assert ram_in_bytes("128") == 128
    assert ram_in_bytes("64m") == ram_in_bytes("64M") == ram_in_bytes("64MiB") == ram_in_bytes("64 mb") == 64 * MiB
    assert ram_in_bytes("1.5g") == 3 * 512 * MiB
    assert ram_in_bytes("2k") == 2048
    for bad in ("", "m", "-1", "1.2.3", "ten", "1  m", "1x", " 1"):
        with pytest.raises(RuntimeFailure, match="invalid size"):
            ram_in_bytes(bad)


def test_intervals_read_like_go_durations():
    assert parse_duration("5s") == 5
    assert parse_duration("500ms") == pytest.approx(0.5)
    assert parse_duration("1m30s") == 90
    assert parse_duration("1.5h") == 5400
    assert parse_duration("0") == 0
    for bad in ("", "5", "s", "5 s", "5x", "1..5s"):
        with pytest.raises(RuntimeFailure, match=r"time: (invalid duration|missing unit|unknown unit)"):
            parse_duration(bad)


def test_recorded_resources_keep_what_zeros_leave_alone():
    old = {"memory": {"limit": 5 * MiB, "swap": 10 * MiB}, "cpu": {"shares": 512, "cpus": "0-1"},
           "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}]}}
    update = {"memory": {"limit": 7 * MiB, "reservation": 0, "swap": 0, "checkBeforeUpdate": True},
              "cpu": {"shares": 0, "quota": 0, "cpus": "", "burst": 0},
              "blockIO": {"weight": 0, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 200},
                                                                  {"major": 8, "minor": 16, "rate": 300}]},
              "pids": {"limit": 0}}
    assert merge_resources(old, update) == {
        "memory": {"limit": 7 * MiB, "swap": 10 * MiB},
        "cpu": {"shares": 512, "cpus": "0-1", "burst": 0},   # a zero burst is a real setting
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 200},
                                              {"major": 8, "minor": 16, "rate": 300}]},
    }


def test_stats_encoded_like_runc():
    stats = {"cpu": {"usage": {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 0,
                               "user": 0},
                     "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
             "memory": {"cache": 0, "usage": {"limit": 9, "usage": 0, "max": 0, "failcnt": 0},
                        "raw": {"b": 1, "a": 2}},
             "pids": {"current": 1, "limit": 0},
             "blkio": {"ioServicedRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 0}],
                       "ioTimeRecursive": []},
             "hugetlb": {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}, "network_interfaces": None}
    assert runc_shape(stats) == {
        "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
        "memory": {"usage": {"limit": 9, "failcnt": 0}, "raw": {"a": 2, "b": 1}},
        "pids": {"current": 1},
        "blkio": {"ioServicedRecursive": [{"major": 8, "op": "Read"}]},
        "hugetlb": {"2MB": {"failcnt": 0}}, "network_interfaces": None}
    assert list(runc_shape(stats)["memory"]["raw"]) == ["a", "b"]


# --- update ----------------------------------------------------------------------------------------

@needs_root
def test_update_from_stdin_docker_style_zeros_leave_the_rest(make_bundle, pyrunc, state_root):
    cid = unique("upd-stdin")
    run_detached(pyrunc, make_bundle, cid, "exec sleep 1000",
                 {"memory": {"limit": 256 * MiB}, "cpu": {"shares": 512}, "pids": {"limit": 100}})
    files = CgroupFiles(state_root, cid)
    shares_before, quota_before = files.cpu_shares(), files.cpu_quota()
    assert files.memory_limit() == str(256 * MiB)

    # What dockerd's shim sends for `docker update --memory 128m --memory-swap 256m --pids-limit 64`.
    request = {"memory": {"limit": 128 * MiB, "reservation": 0, "swap": 256 * MiB, "kernel": 0},
               "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}, "pids": {"limit": 64}}
    out = pyrunc("update", "--resources", "-", cid, input=json.dumps(request))
    assert out.returncode == 0, out.stderr
    assert files.memory_limit() == str(128 * MiB)
    if not files.v2 and files.has("memory", "memory.memsw.limit_in_bytes"):
        assert files.read("memory", "memory.memsw.limit_in_bytes") == str(256 * MiB)
    assert files.read("pids", "pids.max") == "64"
    assert files.cpu_shares() == shares_before     # zeros: left as they were
    assert files.cpu_quota() == quota_before

    recorded = saved_state(state_root, cid)["resources"]
    assert recorded["memory"] == {"limit": 128 * MiB, "swap": 256 * MiB}
    assert recorded["pids"] == {"limit": 64}
    assert recorded["cpu"] == {"shares": 512}   # from create; the zeros changed nothing
    assert "blockIO" not in recorded

    # podman's form: a file
    resources_file = state_root.parent / "resources.json"
    resources_file.write_text(json.dumps({"memory": {"limit": 96 * MiB, "swap": 256 * MiB}}))
    out = pyrunc("update", f"--resources={resources_file}", cid)
    assert out.returncode == 0, out.stderr
    assert files.memory_limit() == str(96 * MiB)
    assert saved_state(state_root, cid)["resources"]["memory"]["limit"] == 96 * MiB
    assert files.read("pids", "pids.max") == "64"


@needs_root
def test_update_with_runc_flags(make_bundle, pyrunc, state_root):
    cid = unique("upd-flags")
    run_detached(pyrunc, make_bundle, cid, "exec sleep 1000")
    files = CgroupFiles(state_root, cid)
    out = pyrunc("update", "--memory", "64m", "--pids-limit", "50", "--cpu-quota", "20000", cid)
    assert out.returncode == 0, out.stderr
    assert files.memory_limit() == str(64 * MiB)
    assert files.read("pids", "pids.max") == "50"
    assert files.cpu_quota() == "20000"
    recorded = saved_state(state_root, cid)["resources"]
    assert recorded["memory"]["limit"] == 64 * MiB and recorded["pids"]["limit"] == 50
    assert recorded["cpu"]["quota"] == 20000

    # docker's size forms, and -1 for "no limit"
    assert pyrunc("update", "--memory", "1.5GiB", cid).returncode == 0
    assert files.memory_limit() == str(3 * 512 * MiB)
    assert pyrunc("update", "--pids-limit", "-1", "--cpu-quota", "-1", cid).returncode == 0
    assert files.read("pids", "pids.max") == "max"
    assert files.cpu_quota() in ("-1", "max")


@needs_root
def test_lowered_pids_limit_holds_a_fork_loop(make_bundle, pyrunc, state_root, rootfs):
    cid = unique("upd-pids")
    # The loop waits for the host's go-ahead; its shell may die when a fork fails, so it runs in a
    # child shell, and init becomes `sleep` by exec (which needs no new pid).
    script = ("while [ ! -e /tmp/go ]; do sleep 0.05; done; "
              "sh -c 'i=0; while [ $i -lt 20 ]; do sleep 1000 & i=$((i+1)); done; wait' & "
              "exec sleep 1000")
    run_detached(pyrunc, make_bundle, cid, script)
    files = CgroupFiles(state_root, cid)
    out = pyrunc("update", "--pids-limit", "6", cid)
    assert out.returncode == 0, out.stderr
    assert files.read("pids", "pids.max") == "6"

    (rootfs / "tmp" / "go").touch()
    # Wait for the loop to be held at the limit: the kernel counts the forks it refused.
    events_file = "pids.events"
    wait_for(lambda: "max 0" not in files.read("pids", events_file), "a refused fork")
    pids = json.loads(pyrunc("ps", "--format", "json", cid).stdout)
    assert len(pids) <= 6
    sleepers = [p for p in pids if _cmdline(p).startswith("sleep")]
    assert 0 < len(sleepers) < 20
    assert int(files.read("pids", "pids.current")) <= 6


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


@needs_root
def test_update_of_stopped_or_unknown_container_fails_cleanly(make_bundle, pyrunc, state_root):
    cid = unique("upd-stopped")
    run_detached(pyrunc, make_bundle, cid, "exit 0")
    wait_for(lambda: json.loads(pyrunc("state", cid).stdout)["status"] == "stopped", "the container to stop")
    before = (state_root / cid / "state.json").read_bytes()
    out = pyrunc("update", "--memory", "64m", cid)
    assert out.returncode == 1
    assert "container not running" in out.stderr
    assert (state_root / cid / "state.json").read_bytes() == before

    out = pyrunc("update", "--resources", "-", "no-such-container", input='{"pids":{"limit":5}}')
    assert out.returncode == 1 and "does not exist" in out.stderr


@needs_root
def test_update_refusals_change_nothing(make_bundle, pyrunc, state_root):
    cid = unique("upd-bad")
    run_detached(pyrunc, make_bundle, cid, "exec sleep 1000", {"memory": {"limit": 200 * MiB}})
    files = CgroupFiles(state_root, cid)
    before = (state_root / cid / "state.json").read_bytes()
    shares = files.cpu_shares()

    cases = [
        (["--resources", "-"], "{not json", "not valid JSON"),
        (["--resources", "-"], "", "no resources given"),
        (["--resources", "-"], '{"memory":{"limit":"64m"}}', "memory.limit"),
        (["--resources", "-"], '{"pids":{"limit":1.5}}', "pids.limit"),
        (["--resources", "-"], "[1, 2]", "object"),
        (["--resources", str(state_root / "missing.json")], None, "missing.json"),
        (["--memory", "lots"], None, "invalid value for memory"),
        (["--pids-limit", "many"], None, "invalid value for pids-limit"),
        (["--cpu-share", "-5"], None, "invalid value for cpu-share"),
        (["--l3-cache-schema", "L3:0=f"], None, "Intel RDT"),
    ]
    for flags, stdin, message in cases:
        out = pyrunc("update", *flags, cid, input=stdin)
        assert out.returncode == 1, (flags, out.stderr)
        assert message in out.stderr, (flags, out.stderr)
        assert "Traceback" not in out.stderr

    # Refused by the kernel after an earlier write went through: the earlier write is undone.
    # (memory is written before cpu; cpu.shares below the kernel's minimum is refused.)
    if not files.v2:
        out = pyrunc("update", "--resources", "-", cid,
                     input=json.dumps({"memory": {"limit": 64 * MiB}, "cpu": {"shares": 1}}))
        assert out.returncode == 1 and "cpu-shares" in out.stderr, out.stderr
    # A memory limit below what the container already uses.
    out = pyrunc("update", "--memory", "4k", cid)
    assert out.returncode == 1 and "memory" in out.stderr, out.stderr

    assert files.memory_limit() == str(200 * MiB)
    assert files.cpu_shares() == shares
    assert (state_root / cid / "state.json").read_bytes() == before


# --- events ----------------------------------------------------------------------------------------

@needs_root
def test_events_stats_once(make_bundle, pyrunc, state_root):
    cid = unique("ev-stats")
    run_detached(pyrunc, make_bundle, cid, "exec sleep 1000", {"pids": {"limit": 30}})
    out = pyrunc("events", "--stats", cid)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert list(event) == ["type", "id", "data"]
    assert event["type"] == "stats" and event["id"] == cid
    data = event["data"]
    # runc's top-level sections, in runc's order
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]
    assert data["memory"]["usage"]["usage"] > 0
    assert data["memory"]["usage"]["limit"] > 0
    assert data["pids"]["current"] >= 1
    assert data["pids"]["limit"] == 30
    assert data["cpu"]["usage"]["total"] > 0
    assert "kernel" in data["cpu"]["usage"] and "user" in data["cpu"]["usage"]

    assert pyrunc("update", "--pids-limit", "40", cid).returncode == 0
    data = json.loads(pyrunc("events", "--stats", cid).stdout)["data"]
    assert data["pids"]["limit"] == 40


@needs_root
def test_events_refuses_stopped_unknown_and_bad_interval(make_bundle, pyrunc):
    cid = unique("ev-stopped")
    run_detached(pyrunc, make_bundle, cid, "exit 0")
    wait_for(lambda: json.loads(pyrunc("state", cid).stdout)["status"] == "stopped", "the container to stop")
    out = pyrunc("events", "--stats", cid)
    assert out.returncode == 1 and "is not running" in out.stderr and out.stdout == ""
    out = pyrunc("events", "no-such-container")
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = pyrunc("events", "--interval", "0s", cid)
    assert out.returncode == 1 and "greater than 0" in out.stderr
    out = pyrunc("events", "--interval", "soon", cid)
    assert out.returncode == 1 and "invalid duration" in out.stderr


def _start_events(state_root, cid, *flags) -> subprocess.Popen:
    return subprocess.Popen([*PYRUNC, "--root", str(state_root), "events", *flags, cid],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _next_event(proc: subprocess.Popen, timeout: float = 15) -> dict:
    """One line of events' output, without hanging the suite if it never comes."""
    fd = proc.stdout.fileno()
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError("no event from pyrunc events")
        chunk = os.read(fd, 1)   # byte by byte: nothing of the next line is taken from the pipe
        if not chunk:
            raise AssertionError(f"pyrunc events ended early: {proc.stderr.read().decode()}")
        line += chunk
    return json.loads(line)


def _finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"events did not exit after the container stopped: {err.decode()}")
    return proc.returncode, out, err


@needs_root
def test_events_stream_stats_until_the_container_stops(make_bundle, pyrunc, state_root):
    cid = unique("ev-stream")
    run_detached(pyrunc, make_bundle, cid, "exec sleep 1000")
    proc = _start_events(state_root, cid, "--interval", "100ms")
    try:
        first = _next_event(proc)
        second = _next_event(proc)
    finally:
        assert pyrunc("kill", cid, "KILL").returncode == 0
    code, rest, err = _finish(proc)
    assert code == 0, err.decode()
    for event in [first, second] + [json.loads(line) for line in rest.splitlines()]:
        assert event["type"] == "stats" and event["id"] == cid and event["data"]["pids"]["current"] >= 0


@needs_root
def test_events_reports_an_oom_kill(make_bundle, pyrunc, state_root, rootfs):
    cid = unique("ev-oom")
    # tail keeps the whole never-ending "line" of /dev/zero in memory: the OOM killer ends it.
    script = "while [ ! -e /tmp/go ]; do sleep 0.05; done; tail /dev/zero; exit 0"
    run_detached(pyrunc, make_bundle, cid, script, {"memory": {"limit": 16 * MiB, "swap": 16 * MiB}})
    proc = _start_events(state_root, cid, "--interval", "100ms")
    try:
        # The first stats event comes after the OOM watch is in place: only then let the container go.
        assert _next_event(proc)["type"] == "stats"
        (rootfs / "tmp" / "go").touch()
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    code, rest, err = _finish(proc)
    assert code == 0, err.decode()
    events = [json.loads(line) for line in rest.splitlines()]
    assert {"type": "oom", "id": cid} in events, rest
    assert json.loads(pyrunc("state", cid).stdout)["status"] == "stopped"


@needs_root
def test_update_ignores_device_rules_whatever_their_access(make_bundle, pyrunc):
    """runc never changes device rules on update and does not check them: an access like "rwa" is no error."""
    assert pyrunc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "upd").returncode == 0
    out = pyrunc("update", "--resources", "-", "upd",
                 input=json.dumps({"devices": [{"allow": True, "access": "rwa"}], "pids": {"limit": 77}}))
    assert out.returncode == 0 and "cannot be changed by update" in out.stderr, out.stderr
    assert json.loads(pyrunc("events", "--stats", "upd").stdout)["data"]["pids"]["limit"] == 77


@needs_root
def test_flags_may_follow_the_container_id_as_with_runc(make_bundle, pyrunc):
    assert pyrunc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "late").returncode == 0
    out = pyrunc("update", "late", "--pids-limit", "33")
    assert out.returncode == 0, out.stderr
    assert json.loads(pyrunc("events", "late", "--stats").stdout)["data"]["pids"]["limit"] == 33
