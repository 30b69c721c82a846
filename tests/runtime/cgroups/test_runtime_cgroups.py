"""Containers and their cgroups: limits enforced, pause/resume, ps, kill --all, paths, cleanup."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.root

V1 = os.path.isdir("/sys/fs/cgroup/memory")
# Parents of this session's own (two suites running at once must not share or remove each other's)
TEST = f"pyrunc-test-{os.getpid()}"
REL = f"pyrunc-rel-{os.getpid()}"


@pytest.fixture(autouse=True)
def remove_test_parents():
    """The runtime removes a container's own cgroup, not the parents a cgroupsPath made: these tests do."""
    yield
    for parent in (TEST, REL):
        for base, dirs, _ in os.walk("/sys/fs/cgroup"):
            if parent in dirs:
                for sub, _, _ in sorted(os.walk(os.path.join(base, parent)), key=lambda t: -t[0].count("/")):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
            dirs[:] = [d for d in dirs if base.count("/") < 7 and d not in (parent,)]


def state(pyrunc, cid):
    return json.loads(pyrunc("state", cid).stdout)


def wait_status(pyrunc, cid, wanted, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state(pyrunc, cid)["status"] == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} is {state(pyrunc, cid)['status']}, not {wanted}")


def cgroup_dir(pid: int, controller: str) -> str:
    for line in open(f"/proc/{pid}/cgroup"):
        _, controllers, path = line.rstrip("\n").split(":", 2)
        if controller in controllers.split(","):
            return f"/sys/fs/cgroup/{controller}{path}"
    raise AssertionError(f"{pid} has no {controller} cgroup")


@pytest.mark.skipif(not V1, reason="cgroup v1 layout")
def test_limits_applied_before_the_process_runs(make_bundle, pyrunc):
    def limits(spec):
        spec["linux"]["cgroupsPath"] = f"/{TEST}/limits"
        spec["linux"]["resources"].update({
            "memory": {"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 40},
        })

    bundle = make_bundle(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                          "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                          "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpuset/cpuset.cpus"], edit=limits)
    out = pyrunc("run", "--bundle", bundle, "lim")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(64 * 1024 * 1024), "512", "50000", "40", "0"]
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{TEST}/limits")  # removed with the container


@pytest.mark.skipif(not V1, reason="cgroup v1 layout")
def test_memory_limit_kills_the_hog(make_bundle, pyrunc):
    def limits(spec):
        spec["linux"]["resources"]["memory"] = {"limit": 16 * 1024 * 1024, "swap": 16 * 1024 * 1024}
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]

    bundle = make_bundle(["sh", "-c", "x=a; while :; do x=$x$x; done"], edit=limits)
    out = pyrunc("run", "--bundle", bundle, "oom", timeout=120)
    assert out.returncode == 137, (out.returncode, out.stderr)


def test_pids_limit_holds_a_fork_bomb(make_bundle, pyrunc):
    def limits(spec):
        spec["linux"]["resources"]["pids"] = {"limit": 20}

    # the bomb's shell dies when a fork fails; the container's init goes on sleeping
    script = "(i=0; while [ $i -lt 200 ]; do sleep 300 & i=$((i+1)); done) 2>/dev/null; exec sleep 1000"
    assert pyrunc("run", "-d", "--bundle", make_bundle(["sh", "-c", script], edit=limits), "bomb").returncode == 0
    time.sleep(1)
    pids = json.loads(pyrunc("ps", "--format", "json", "bomb").stdout)
    assert 10 <= len(pids) <= 20  # it did fork, and it was held at the limit
    assert state(pyrunc, "bomb")["status"] == "running"
    assert pyrunc("delete", "--force", "bomb").returncode == 0
    time.sleep(0.2)
    assert all(not os.path.exists(f"/proc/{p}") or "Z" in open(f"/proc/{p}/stat").read().split(")")[1][:3]
               for p in pids)


def test_pause_resume_ps_and_delete_force_of_paused(make_bundle, pyrunc):
    bundle = make_bundle(["sh", "-c", "sleep 1000 & while :; do sleep 0.1; done"])
    assert pyrunc("run", "-d", "--bundle", bundle, "pz").returncode == 0
    pid = state(pyrunc, "pz")["pid"]
    time.sleep(0.3)
    pids = json.loads(pyrunc("ps", "--format", "json", "pz").stdout)
    assert pid in pids and len(pids) >= 2
    table = pyrunc("ps", "pz").stdout.splitlines()
    assert "PID" in table[0] and any(str(pid) in line for line in table[1:])

    assert pyrunc("pause", "pz").returncode == 0
    assert state(pyrunc, "pz")["status"] == "paused"
    out = pyrunc("pause", "pz")
    assert out.returncode != 0
    assert pyrunc("resume", "pz").returncode == 0
    assert state(pyrunc, "pz")["status"] == "running"
    out = pyrunc("resume", "pz")
    assert out.returncode != 0 and "not paused" in out.stderr

    assert pyrunc("pause", "pz").returncode == 0
    assert pyrunc("delete", "pz").returncode != 0
    assert pyrunc("delete", "--force", "pz").returncode == 0
    time.sleep(0.2)
    for p in pids:
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split(")")[1].split()[0] == "Z"


def test_kill_all_without_pid_namespace(make_bundle, pyrunc):
    def no_pidns(spec):
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]

    bundle = make_bundle(["sh", "-c", "sleep 1000 & sleep 1000 & wait"], edit=no_pidns)
    assert pyrunc("run", "-d", "--bundle", bundle, "ka").returncode == 0
    time.sleep(0.3)
    pids = json.loads(pyrunc("ps", "--format", "json", "ka").stdout)
    assert len(pids) == 3
    assert pyrunc("kill", "--all", "ka", "KILL").returncode == 0
    wait_status(pyrunc, "ka", "stopped")
    time.sleep(0.2)
    for p in pids:
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split(")")[1].split()[0] == "Z"
    assert pyrunc("delete", "ka").returncode == 0


@pytest.mark.skipif(not V1, reason="cgroup v1 layout")
def test_relative_and_default_cgroup_paths(make_bundle, pyrunc):
    def relative(spec):
        spec["linux"]["cgroupsPath"] = f"{REL}/inner"

    assert pyrunc("run", "-d", "--bundle", make_bundle(["sleep", "100"], edit=relative), "rel").returncode == 0
    pid = state(pyrunc, "rel")["pid"]
    assert cgroup_dir(pid, "pids").endswith(f"/{REL}/inner")
    assert pyrunc("delete", "--force", "rel").returncode == 0

    assert pyrunc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "dflt").returncode == 0
    pid = state(pyrunc, "dflt")["pid"]
    assert cgroup_dir(pid, "pids").endswith("/dflt")
    path = cgroup_dir(pid, "pids")
    assert pyrunc("delete", "--force", "dflt").returncode == 0
    assert not os.path.exists(path)


def test_escaping_cgroup_path_refused(make_bundle, pyrunc, state_root):
    def escape(spec):
        spec["linux"]["cgroupsPath"] = "../../../../escape"

    out = pyrunc("create", "--bundle", make_bundle(edit=escape), "esc")
    assert out.returncode != 0 and "escape" in out.stderr
    assert os.listdir(state_root) == []


@pytest.mark.skipif(not V1, reason="cgroup v1 layout")
def test_refused_limit_is_a_clear_error_and_leaves_nothing(make_bundle, pyrunc, state_root):
    def bad(spec):
        spec["linux"]["cgroupsPath"] = f"/{TEST}/refused"
        spec["linux"]["resources"]["cpu"] = {"cpus": "999"}

    out = pyrunc("create", "--bundle", make_bundle(edit=bad), "ref")
    assert out.returncode != 0 and "cpuset.cpus" in out.stderr
    assert os.listdir(state_root) == []
    assert not os.path.exists(f"/sys/fs/cgroup/cpuset/{TEST}/refused")


@pytest.mark.parametrize("v2", [False, True], ids=["host-layout", "cgroup2"])
def test_device_rules_enforced(make_bundle, pyrunc, v2, monkeypatch):
    """A node made in the container but not allowed by the device rules cannot be opened
    (v1 devices.allow/deny, or on cgroup2 the eBPF program the runtime loads)."""
    if v2:
        if not os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") and not os.path.exists("/sys/fs/cgroup/cgroup.procs"):
            pytest.skip("no cgroup2 mount")
        mount = "/sys/fs/cgroup/unified" if os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") else "/sys/fs/cgroup"
        monkeypatch.setenv("PYRUNC_CGROUP2_MOUNT", mount)

    def devices(spec):
        spec["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666},
                                    {"path": "/dev/loop-allowed", "type": "b", "major": 7, "minor": 0,
                                     "fileMode": 0o666}]
        spec["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"},
                                                 {"allow": True, "type": "b", "major": 7, "minor": 0,
                                                  "access": "r"}]

    script = ("head -c 1 /dev/kmsg >/dev/null 2>&1 && echo kmsg-open || echo kmsg-denied; "
              "echo > /dev/null && echo null-ok; head -c 1 /dev/urandom | wc -c; "
              "echo x > /dev/loop-allowed 2>/dev/null && echo loop-write || echo loop-write-denied")
    out = pyrunc("run", "--bundle", make_bundle(["sh", "-c", script], edit=devices), "dev")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["kmsg-denied", "null-ok", "1", "loop-write-denied"]


def test_cgroup2_lifecycle(make_bundle, pyrunc, monkeypatch):
    mount = "/sys/fs/cgroup/unified"
    if not os.path.exists(f"{mount}/cgroup.procs"):
        pytest.skip("no cgroup2 mount beside v1")
    monkeypatch.setenv("PYRUNC_CGROUP2_MOUNT", mount)
    bundle = make_bundle(["sh", "-c", "sleep 1000 & while :; do sleep 0.1; done"])
    assert pyrunc("run", "-d", "--bundle", bundle, "v2c").returncode == 0
    pid = state(pyrunc, "v2c")["pid"]
    v2path = next(line.split(":", 2)[2].strip() for line in open(f"/proc/{pid}/cgroup") if line.startswith("0::"))
    assert v2path.endswith("/v2c")
    inside = pyrunc("exec", "v2c", "cat", "/sys/fs/cgroup/cgroup.procs").stdout.split()
    assert "1" in inside  # the container sees its own cgroup2 dir at /sys/fs/cgroup
    assert pyrunc("pause", "v2c").returncode == 0
    assert state(pyrunc, "v2c")["status"] == "paused"
    assert open(f"{mount}{v2path}/cgroup.freeze").read().strip() == "1"
    assert pyrunc("resume", "v2c").returncode == 0
    assert len(json.loads(pyrunc("ps", "--format", "json", "v2c").stdout)) >= 2
    assert pyrunc("delete", "--force", "v2c").returncode == 0
    assert not os.path.exists(f"{mount}{v2path}")


@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/freezer"), reason="no v1 freezer")
def test_a_frozen_cgroup_is_refused_not_joined(make_bundle, pyrunc, state_root):
    """runc's rule: joining a frozen cgroup would stop init there and create would never return."""
    frozen = f"/sys/fs/cgroup/freezer/{TEST}/frozen"
    os.makedirs(frozen)
    with open(f"{frozen}/freezer.state", "w") as f:
        f.write("FROZEN")
    try:
        bundle = make_bundle(["true"], edit=lambda spec: spec["linux"].update(cgroupsPath=f"/{TEST}/frozen"))
        out = pyrunc("run", "-d", "--bundle", bundle, "frozen", timeout=20)
        assert out.returncode == 1 and "unexpectedly frozen" in out.stderr, out.stderr
        assert os.listdir(state_root) == [] and os.path.isdir(frozen)  # theirs: left as it was
        assert open(f"{frozen}/freezer.state").read().strip() == "FROZEN"
    finally:
        with open(f"{frozen}/freezer.state", "w") as f:
            f.write("THAWED")


def test_kill_defaults_to_sigterm_and_signal_0_only_checks(make_bundle, pyrunc):
    bundle = make_bundle(["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"])
    assert pyrunc("run", "-d", "--bundle", bundle, "k").returncode == 0
    assert pyrunc("kill", "k", "0").returncode == 0
    assert pyrunc("kill", "--all", "k", "0").returncode == 0
    assert state(pyrunc, "k")["status"] == "running"
    out = pyrunc("kill", "k")
    assert out.returncode == 0, out.stderr
    wait_status(pyrunc, "k", "stopped")


@pytest.mark.skipif(not V1, reason="cgroup v1 layout")
def test_joining_a_populated_cgroup_warns(make_bundle, pyrunc):
    import subprocess

    path = f"/sys/fs/cgroup/freezer/{TEST}/shared"  # the hierarchy a v1 container's processes are read from
    os.makedirs(path)
    holder = subprocess.Popen(["sleep", "100"])
    try:
        with open(f"{path}/cgroup.procs", "w") as f:
            f.write(str(holder.pid))
        bundle = make_bundle(["true"], edit=lambda spec: spec["linux"].update(cgroupsPath=f"/{TEST}/shared"))
        out = pyrunc("run", "--bundle", bundle, "shared")
        assert out.returncode == 0 and "container's cgroup is not empty" in out.stderr, out.stderr
        assert holder.poll() is None  # not ours: left alone
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(not V1 or not os.path.isdir("/sys/fs/cgroup/cpu/"), reason="cgroup v1 layout with cpu")
def test_delete_removes_a_cgroup_it_found_as_runc_does(make_bundle, pyrunc):
    """runc's update test makes the cpu directories first, to give them a realtime budget; delete removes
    the found one too (runc does), so the parent can go and its budget is free for the next cgroup."""
    parent = f"pyrunc-test-found-{os.getpid()}"
    inner = f"/{parent}/ctr"
    cpu_root = "/sys/fs/cgroup/cpu"
    found = f"{cpu_root}{inner}"
    os.makedirs(found)
    try:
        for d in (f"{cpu_root}/{parent}", found):  # a budget, as runc's test gives (the root's period too)
            if os.path.exists(f"{d}/cpu.rt_runtime_us"):
                with open(f"{d}/cpu.rt_runtime_us", "w") as f:
                    f.write("10000")
        bundle = make_bundle(["true"], edit=lambda spec: spec["linux"].update(cgroupsPath=inner))
        out = pyrunc("run", "--bundle", bundle, "found")
        assert out.returncode == 0, out.stderr
        left = [d for d in os.listdir("/sys/fs/cgroup") if os.path.isdir(f"/sys/fs/cgroup/{d}{inner}")]
        assert left == []
        os.rmdir(f"{cpu_root}/{parent}")  # empty now, so the budget it held goes back to the root
    finally:
        for d in os.listdir("/sys/fs/cgroup"):
            for path in (f"/sys/fs/cgroup/{d}{inner}", f"/sys/fs/cgroup/{d}/{parent}"):
                if os.path.isdir(path) and not os.path.islink(f"/sys/fs/cgroup/{d}"):
                    try:
                        os.rmdir(path)
                    except OSError:
                        pass
