"""cgroups layer against the real kernel (run as root).

v1 tests use the host's v1 hierarchies; v2 tests use a cgroup2 mount (/sys/fs/cgroup itself on a
pure v2 host, /sys/fs/cgroup/unified on a hybrid one, where few controllers are available but
creation, cgroup.procs, cgroup.freeze, cgroup.kill and eBPF device programs all work).
Every cgroup is named pyrunc-test-<random> and removed, with its processes, afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from oci_runtime.cgroups import (DEFAULT_DEVICE_RULES, CgroupError, cgroup_version, open_manager,
                                 open_manager_from_state)
from oci_runtime.cgroups import paths
from oci_runtime.cgroups.devices import DeviceRule, DeviceState, parse_oci_rules
from oci_runtime.cgroups.resources import parse_resources
from oci_runtime.cgroups.v2 import blkio_weight_to_io_weight, cpu_shares_to_weight, memory_swap_to_v2


IS_V1 = cgroup_version() == 1
MiB = 1024 * 1024


def _cgroup2_mount() -> str | None:
    if not IS_V1:
        return paths.CGROUP_ROOT
    for m in paths.cgroup_mounts():
        if m.fstype == "cgroup2":
            return m.mountpoint
    return None


CGROUP2 = _cgroup2_mount()
needs_v1 = pytest.mark.skipif(not IS_V1, reason="host is not cgroup v1")
needs_v2 = pytest.mark.skipif(CGROUP2 is None, reason="no cgroup2 mount")


def unique_name() -> str:
    return f"pyrunc-test-{uuid.uuid4().hex[:10]}"


def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Children:
    """Child processes started by a test; all killed and reaped at the end."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, args, **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def python(self, code: str) -> subprocess.Popen:
        """A Python child that waits for a line on stdin before running `code` (so it can be moved
        into a cgroup first); its stdout is a pipe."""
        script = "import sys, os\nsys.stdin.readline()\n" + code
        return self.start([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream:
                    stream.close()


def go(p: subprocess.Popen) -> None:
    p.stdin.write("go\n")
    p.stdin.flush()


@pytest.fixture
def children():
    c = Children()
    yield c
    c.cleanup()


def _cleanup(mgr) -> None:
    try:
        if mgr.exists():
            if mgr.frozen():
                mgr.thaw()
            mgr.kill_all(9)
            wait_until(lambda: not mgr.pids())
    finally:
        mgr.destroy()


@pytest.fixture
def v1mgr():
    if not IS_V1:
        pytest.skip("host is not cgroup v1")
    mgr = open_manager("/" + unique_name(), "unused")
    mgr.create()
    yield mgr
    _cleanup(mgr)


@pytest.fixture
def cgroup2_root():
    """The cgroup2 mount, with the root's subtree_control put back as it was afterwards."""
    if CGROUP2 is None:
        pytest.skip("no cgroup2 mount")
    before = set(read(CGROUP2, "cgroup.subtree_control").split())
    yield CGROUP2
    for controller in set(read(CGROUP2, "cgroup.subtree_control").split()) - before:
        try:
            with open(os.path.join(CGROUP2, "cgroup.subtree_control"), "w") as f:
                f.write("-" + controller)
        except OSError:
            pass


@pytest.fixture
def v2mgr(cgroup2_root):
    mgr = open_manager("/" + unique_name(), "unused", v2_mountpoint=cgroup2_root)
    mgr.create()
    yield mgr
    _cleanup(mgr)


# --- paths -----------------------------------------------------------------------------------------

def test_cgroups_path_cleaning_and_escape():
    assert paths.clean_cgroups_path("/docker/abc") == "/docker/abc"
    assert paths.clean_cgroups_path("/a/./b/../c//") == "/a/c"
    assert paths.clean_cgroups_path("rel/x") == "rel/x"
    for bad in ("/../etc", "/a/../../etc", "../x", "a/../../x", "/..", "/", ".", "a/.."):
        with pytest.raises(CgroupError) as exc:
            paths.clean_cgroups_path(bad)
        assert f'"{bad}"' in str(exc.value)


def test_escaping_path_refused_by_open_manager():
    with pytest.raises(CgroupError, match=r'cgroupsPath "/foo/\.\./\.\./etc" escapes the cgroup hierarchy'):
        open_manager("/foo/../../etc", "x")


@needs_v1
def test_v1_relative_and_default_paths_follow_runc():
    own = paths.own_cgroups()
    rel = open_manager("pyrunc-rel/child", "x")
    memory_base = own["memory"].rstrip("/")
    assert rel.path("memory") == f"/sys/fs/cgroup/memory{memory_base}/pyrunc-rel/child"
    assert rel.path("pids") == f"/sys/fs/cgroup/pids{own['pids'].rstrip('/')}/pyrunc-rel/child"
    default = open_manager(None, "mycontainer")
    assert default.path("devices").endswith("/mycontainer")
    assert default.inner == "mycontainer"
    absolute = open_manager("/docker/abc", "x")
    assert absolute.path("cpu") == "/sys/fs/cgroup/cpu/docker/abc"


@needs_v2
def test_v2_relative_path_goes_under_the_parent_of_our_cgroup(cgroup2_root):
    own = paths.own_cgroups()[""]
    mgr = open_manager("pyrunc-rel", "x", v2_mountpoint=cgroup2_root)
    parent = os.path.dirname(own.rstrip("/")) if own != "/" else "/"
    assert mgr.path == os.path.normpath(f"{cgroup2_root}/{parent}/pyrunc-rel")


def test_systemd_driver_refused_clearly_when_systemd_is_absent():
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is running here")
    with pytest.raises(CgroupError, match="systemd cgroup driver requested but systemd is not running"):
        open_manager("system.slice:docker:abc", "abc", systemd=True)


def test_systemd_path_parsing():
    from oci_runtime.cgroups.systemd import expand_slice, parse_systemd_path, unit_name
    assert parse_systemd_path("system.slice:docker:abc", "x") == ("system.slice", "docker", "abc")
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == "/"
    assert unit_name("docker", "abc") == "docker-abc.scope"
    with pytest.raises(CgroupError, match='format "slice:prefix:name"'):
        parse_systemd_path("/not/systemd", "x")


# --- resources parsing and conversions -------------------------------------------------------------

def test_malformed_resource_names_the_field():
    with pytest.raises(CgroupError, match=r"linux\.resources\.memory\.limit: expected an integer, got '10'"):
        parse_resources({"memory": {"limit": "10"}})
    with pytest.raises(CgroupError, match=r"devices\[0\].*access"):
        parse_resources({"devices": [{"allow": True, "type": "c", "access": "rwx"}]})
    with pytest.raises(CgroupError, match="swappiness"):
        parse_resources({"memory": {"swappiness": 101}})


def test_v2_conversions_match_runc():
    assert [cpu_shares_to_weight(s) for s in (0, 2, 1024, 262144)] == [0, 1, 100, 10000]
    assert cpu_shares_to_weight(512) == 59 and cpu_shares_to_weight(2048) == 174
    assert [blkio_weight_to_io_weight(w) for w in (0, 10, 500, 1000)] == [0, 1, 4950, 10000]
    assert memory_swap_to_v2(200, 100) == 100
    assert memory_swap_to_v2(0, -1) == -1
    assert memory_swap_to_v2(-1, 100) == -1
    with pytest.raises(CgroupError, match="must be >= memory limit"):
        memory_swap_to_v2(50, 100)


def test_default_device_rules_are_runcs():
    strings = [r.cgroup_string() for r in DEFAULT_DEVICE_RULES]
    assert strings == ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
                       "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"]
    assert all(r.allow for r in DEFAULT_DEVICE_RULES)


def test_device_state_models_the_v1_controller():
    rules = parse_oci_rules([{"allow": False, "access": "rwm"}]) + list(DEFAULT_DEVICE_RULES)
    state = DeviceState.from_rules(rules)
    assert not state.default_allow
    assert state.allows("c", 1, 3, "rw") and state.allows("c", 136, 4, "w") and state.allows("b", 8, 0, "m")
    assert not state.allows("b", 8, 0, "r") and not state.allows("c", 1, 11, "r")
    # Moving between two allow-lists only writes the differences.
    smaller = DeviceState.from_rules(rules[:-1])
    assert [r.cgroup_string() for r in smaller.transition_from(state)] == ["c 10:200 rwm"]
    assert not smaller.transition_from(state)[0].allow
    # Denying one device inside a wider allowed wildcard cannot be expressed on v1.
    with pytest.raises(CgroupError, match="punch a hole"):
        DeviceState.from_rules(parse_oci_rules([{"allow": False, "access": "rwm"},
                                                {"allow": True, "type": "c", "access": "rwm"},
                                                {"allow": False, "type": "c", "major": 1, "minor": 3,
                                                 "access": "rwm"}]))
    blacklist = DeviceState.from_rules([DeviceRule(True, "a", -1, -1, "rwm"), DeviceRule(False, "c", 1, 3, "w")])
    assert blacklist.allows("c", 1, 3, "r") and not blacklist.allows("c", 1, 3, "rw")


# --- v1 ----------------------------------------------------------------------------------------------

@pytest.mark.root
def test_v1_create_makes_every_hierarchy_and_destroy_removes_them():
    if not IS_V1:
        pytest.skip("host is not cgroup v1")
    mgr = open_manager(f"/{unique_name()}/nested", "x")
    parent = os.path.dirname(mgr.path("memory"))
    try:
        mgr.create()
        for h in mgr.hierarchies:
            assert os.path.isdir(h.path), h.path
        # cpuset levels inherit CPUs and memory nodes, or no task could join.
        assert read(mgr.path("cpuset"), "cpuset.cpus") == read("/sys/fs/cgroup/cpuset", "cpuset.cpus")
        os.mkdir(os.path.join(mgr.path("pids"), "sub"))   # a child cgroup is removed too
        mgr.destroy()
        for h in mgr.hierarchies:
            assert not os.path.exists(h.path), h.path
        mgr.destroy()   # already gone: fine
    finally:
        mgr.destroy()
        for h in mgr.hierarchies:
            top = os.path.dirname(h.path)
            if os.path.isdir(top):
                os.rmdir(top)
    assert not os.path.exists(parent)


@pytest.mark.root
def test_v1_limits_are_written(v1mgr):
    vda = os.stat("/").st_dev
    major, minor = os.major(vda), os.minor(vda)
    block = os.path.exists(f"/sys/dev/block/{major}:{minor}")
    res = {
        "memory": {"limit": 100 * MiB, "reservation": 50 * MiB, "swappiness": 10, "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"weight": 300},
    }
    swap = os.path.exists(os.path.join(v1mgr.path("memory"), "memory.memsw.limit_in_bytes"))
    if swap:
        res["memory"]["swap"] = 200 * MiB
    if block:
        res["blockIO"]["throttleReadBpsDevice"] = [{"major": major, "minor": minor, "rate": MiB}]
        res["blockIO"]["throttleWriteIOPSDevice"] = [{"major": major, "minor": minor, "rate": 100}]
    v1mgr.set(res)
    mem, cpu = v1mgr.path("memory"), v1mgr.path("cpu")
    assert read(mem, "memory.limit_in_bytes") == str(100 * MiB)
    if swap:
        assert read(mem, "memory.memsw.limit_in_bytes") == str(200 * MiB)
    assert read(mem, "memory.soft_limit_in_bytes") == str(50 * MiB)
    assert read(mem, "memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read(mem, "memory.oom_control")
    assert read(cpu, "cpu.shares") == "512"
    assert read(cpu, "cpu.cfs_quota_us") == "50000"
    assert read(cpu, "cpu.cfs_period_us") == "100000"
    assert read(v1mgr.path("cpuset"), "cpuset.cpus") == "0"
    assert read(v1mgr.path("cpuset"), "cpuset.mems") == "0"
    assert read(v1mgr.path("pids"), "pids.max") == "20"
    blkio = v1mgr.path("blkio")
    weight_file = "blkio.weight" if os.path.exists(os.path.join(blkio, "blkio.weight")) else "blkio.bfq.weight"
    assert read(blkio, weight_file).split()[-1] == "300"
    if block:
        assert f"{major}:{minor} {MiB}" in read(blkio, "blkio.throttle.read_bps_device")
        assert f"{major}:{minor} 100" in read(blkio, "blkio.throttle.write_iops_device")
    # The default device rules are in place (runc's allow-list after a deny-all).
    listed = read(v1mgr.path("devices"), "devices.list").splitlines()
    assert sorted(listed) == sorted(r.cgroup_string() for r in DEFAULT_DEVICE_RULES)


@pytest.mark.root
def test_v1_process_joins_is_listed_and_freezes(v1mgr, children):
    p = children.start(["sleep", "60"])
    v1mgr.apply(p.pid)
    assert v1mgr.pids() == [p.pid]
    assert wait_until(lambda: proc_state(p.pid) == "S")
    v1mgr.freeze()
    assert v1mgr.frozen()
    assert read(v1mgr.path("freezer"), "freezer.state") == "FROZEN"
    assert proc_state(p.pid) == "D"   # the v1 freezer shows frozen tasks as uninterruptible
    v1mgr.thaw()
    assert not v1mgr.frozen()
    assert wait_until(lambda: proc_state(p.pid) == "S")


@pytest.mark.root
def test_v1_pids_limit_stops_forks(v1mgr, children):
    v1mgr.set({"pids": {"limit": 1}})
    p = children.python("try:\n    pid = os.fork()\nexcept OSError as e:\n    print('refused', e.errno)\n"
                        "else:\n    os._exit(0) if pid == 0 else print('forked')\n")
    v1mgr.apply(p.pid)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.strip() == "refused 11"   # EAGAIN: the pids controller said no


@pytest.mark.root
def test_v1_devices_allow_defaults_only(v1mgr, children):
    v1mgr.set({"devices": [{"allow": False, "access": "rwm"}]})
    code = ("import errno\nfor dev in ('/dev/null', '/dev/zero', '/dev/kmsg'):\n"
            "    try:\n        os.close(os.open(dev, os.O_RDONLY)); print(dev, 'ok')\n"
            "    except OSError as e:\n        print(dev, errno.errorcode[e.errno])\n")
    p = children.python(code)
    v1mgr.apply(p.pid)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.split("\n")[:3] == ["/dev/null ok", "/dev/zero ok", "/dev/kmsg EPERM"]


@pytest.mark.root
def test_v1_update_with_zeros_leaves_values(v1mgr):
    v1mgr.set({"memory": {"limit": 64 * MiB}, "cpu": {"shares": 512, "quota": 20000, "period": 100000},
               "blockIO": {"weight": 200}, "pids": {"limit": 30}})
    mem = v1mgr.path("memory")
    has_swap = os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes"))
    # docker update --memory 128m --memory-swap 256m, zeros elsewhere
    update = {"memory": {"limit": 128 * MiB, "reservation": 0, "kernel": 0},
              "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}, "pids": {"limit": 0}}
    if has_swap:
        update["memory"]["swap"] = 256 * MiB
    v1mgr.update(update)
    assert read(mem, "memory.limit_in_bytes") == str(128 * MiB)
    if has_swap:
        assert read(mem, "memory.memsw.limit_in_bytes") == str(256 * MiB)
        # Going down again needs memory first, then memory+swap: the manager picks the order.
        v1mgr.update({"memory": {"limit": 32 * MiB, "swap": 48 * MiB}})
        assert read(mem, "memory.memsw.limit_in_bytes") == str(48 * MiB)
        assert read(mem, "memory.limit_in_bytes") == str(32 * MiB)
    assert read(v1mgr.path("cpu"), "cpu.shares") == "512"
    assert read(v1mgr.path("cpu"), "cpu.cfs_quota_us") == "20000"
    assert read(v1mgr.path("pids"), "pids.max") == "30"
    assert read(v1mgr.path("memory"), "memory.soft_limit_in_bytes") != "0"
    # update leaves the device rules alone when it carries none
    assert sorted(read(v1mgr.path("devices"), "devices.list").splitlines()) == \
        sorted(r.cgroup_string() for r in DEFAULT_DEVICE_RULES)


@pytest.mark.root
def test_v1_refused_update_is_clear_and_rolled_back(v1mgr):
    v1mgr.set({"pids": {"limit": 10}, "memory": {"limit": 64 * MiB}, "cpu": {"quota": 30000}})
    cpu = v1mgr.path("cpu")
    with pytest.raises(CgroupError) as exc:
        # the kernel refuses a CFS quota below 1ms, after pids and memory were already written
        v1mgr.update({"pids": {"limit": 50}, "memory": {"limit": 96 * MiB}, "cpu": {"quota": 500}})
    assert str(exc.value) == f'cgroup: writing "500" to {cpu}/cpu.cfs_quota_us: invalid argument'
    assert read(v1mgr.path("pids"), "pids.max") == "10"
    assert read(v1mgr.path("memory"), "memory.limit_in_bytes") == str(64 * MiB)
    assert read(cpu, "cpu.cfs_quota_us") == "30000"


@pytest.mark.root
def test_v1_refused_set_then_destroy_leaves_nothing():
    if not IS_V1:
        pytest.skip("host is not cgroup v1")
    mgr = open_manager("/" + unique_name(), "x")
    mgr.create()
    try:
        mem, cpu = mgr.path("memory"), mgr.path("cpu")
        unlimited = read(mem, "memory.limit_in_bytes")
        with pytest.raises(CgroupError) as exc:
            mgr.set({"memory": {"limit": 64 * MiB}, "cpu": {"quota": 500}})
        assert str(exc.value) == f'cgroup: writing "500" to {cpu}/cpu.cfs_quota_us: invalid argument'
        assert read(mem, "memory.limit_in_bytes") == unlimited   # the memory limit written first was undone
        bad_cpu = str(os.cpu_count() + 7)
        with pytest.raises(CgroupError, match=f'^cgroup: writing "{bad_cpu}" to {mgr.path("cpuset")}/cpuset.cpus: '):
            mgr.set({"cpu": {"cpus": bad_cpu}})
    finally:
        mgr.destroy()
    assert not any(os.path.exists(h.path) for h in mgr.hierarchies)


@pytest.mark.root
def test_v1_memory_limit_below_usage_is_explained(v1mgr, children):
    p = children.python("buf = bytearray(24 * 1024 * 1024)\nfor i in range(0, len(buf), 4096): buf[i] = 1\n"
                        "print('ready', flush=True)\nsys.stdin.readline()\n")
    v1mgr.apply(p.pid)
    go(p)
    assert p.stdout.readline().strip() == "ready"
    mem = v1mgr.path("memory")
    v1mgr.set({"memory": {"limit": 512 * MiB}})
    with pytest.raises(CgroupError, match=r"rejecting memory limit 4194304 <= usage \d+"):
        v1mgr.update({"memory": {"limit": 4 * MiB, "checkBeforeUpdate": True}})
    assert read(mem, "memory.limit_in_bytes") == str(512 * MiB)
    if not os.path.exists("/proc/swaps") or len(open("/proc/swaps").read().splitlines()) > 1:
        return   # with swap the kernel could push the memory out instead of refusing
    # Without the check the kernel tries to reclaim, fails (no swap), and refuses with EBUSY.
    with pytest.raises(CgroupError, match=r'writing "4194304" to .*memory.limit_in_bytes: device or resource busy: '
                                          r"unable to set memory limit to 4194304 \(current usage: \d+"):
        v1mgr.update({"memory": {"limit": 4 * MiB}})
    assert read(mem, "memory.limit_in_bytes") == str(512 * MiB)


@pytest.mark.root
def test_v1_stats(v1mgr, children):
    v1mgr.set({"pids": {"limit": 42}, "memory": {"limit": 256 * MiB}})
    p = children.python("buf = bytearray(16 * 1024 * 1024)\nfor i in range(0, len(buf), 4096): buf[i] = 1\n"
                        "x = sum(range(2_000_000))\nprint('ready', flush=True)\nsys.stdin.readline()\n")
    v1mgr.apply(p.pid)
    go(p)
    assert p.stdout.readline().strip() == "ready"
    stats = json.loads(json.dumps(v1mgr.stats()))   # plain JSON, as `events --stats` prints it
    assert set(stats) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert stats["pids"] == {"current": 1, "limit": 42}
    assert stats["memory"]["usage"]["limit"] == 256 * MiB
    assert stats["memory"]["usage"]["usage"] >= 16 * MiB
    assert stats["memory"]["usage"]["max"] >= stats["memory"]["usage"]["usage"]
    assert "rss" in stats["memory"]["raw"] and "cache" in stats["memory"]
    assert stats["cpu"]["usage"]["total"] > 0
    assert len(stats["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert set(stats["cpu"]["throttling"]) == {"periods", "throttledPeriods", "throttledTime"}
    assert set(stats["memory"]["swap"]) == {"limit", "usage", "max", "failcnt"}
    assert isinstance(stats["blkio"]["ioServiceBytesRecursive"], list)


@pytest.mark.root
def test_v1_kill_all_reaches_every_process(v1mgr, children):
    procs = [children.start(["sleep", "60"]) for _ in range(3)]
    for p in procs:
        v1mgr.apply(p.pid)
    assert v1mgr.pids() == sorted(p.pid for p in procs)
    v1mgr.kill_all(15)
    for p in procs:
        assert p.wait(timeout=30) == -15
    assert wait_until(lambda: v1mgr.pids() == [])


@pytest.mark.root
def test_v1_state_round_trip(v1mgr, children):
    p = children.start(["sleep", "60"])
    v1mgr.apply(p.pid)
    again = open_manager_from_state(json.loads(json.dumps(v1mgr.to_state())))
    assert again.pids() == [p.pid]
    assert [h.path for h in again.hierarchies] == [h.path for h in v1mgr.hierarchies]


@pytest.mark.root
def test_v1_mounts_for_container(v1mgr):
    mounts = v1mgr.mounts_for_container()
    binds = [(src, name) for src, name in mounts if src.startswith("/")]
    links = [(target, name) for target, name in mounts if not target.startswith("/")]
    names = {name for _src, name in binds}
    assert (v1mgr.path("memory"), "memory") in binds
    assert "unified" not in names
    for src, name in binds:
        assert os.path.isdir(src)
        assert os.path.ismount(f"/sys/fs/cgroup/{name}")
        assert src.startswith(f"/sys/fs/cgroup/{name}/")
    for target, name in links:
        assert target in names and name not in names


@pytest.mark.root
def test_v1_unified_refused(v1mgr):
    with pytest.raises(CgroupError, match="cgroup v1"):
        v1mgr.set({"unified": {"memory.high": "1000000"}})


@pytest.mark.root
def test_v1_missing_controller_is_named(v1mgr):
    if v1mgr.path("net_cls") is not None:
        pytest.skip("net_cls is mounted here")
    with pytest.raises(CgroupError, match="cannot set network.classID: the net_cls controller is not mounted"):
        v1mgr.set({"network": {"classID": 0x100001}})


# --- v2 ----------------------------------------------------------------------------------------------

@pytest.mark.root
def test_v2_create_procs_and_recursive_pids(v2mgr, children):
    a, b = children.start(["sleep", "60"]), children.start(["sleep", "60"])
    v2mgr.apply(a.pid)
    assert read(v2mgr.path, "cgroup.procs") == str(a.pid)
    sub = os.path.join(v2mgr.path, "sub")
    os.mkdir(sub)
    with open(os.path.join(sub, "cgroup.procs"), "w") as f:
        f.write(str(b.pid))
    assert v2mgr.pids() == sorted([a.pid, b.pid])
    assert v2mgr.stats()["pids"]["current"] == 1   # only the top directory's own processes count there


@pytest.mark.root
def test_v2_freeze_and_thaw(v2mgr, children):
    p = children.start([sys.executable, "-c", "import time, sys\nwhile True:\n    print(1, flush=True)\n"
                        "    time.sleep(0.01)\n"], stdout=subprocess.PIPE)
    v2mgr.apply(p.pid)
    assert p.stdout.readline() == b"1\n"
    v2mgr.freeze()
    assert v2mgr.frozen()
    assert "frozen 1" in read(v2mgr.path, "cgroup.events")
    fd = p.stdout.fileno()
    while _readable(fd) and os.read(fd, 65536):
        pass   # drain what was written before the freeze
    time.sleep(0.2)
    assert not _readable(fd), "a frozen process kept running"
    v2mgr.thaw()
    assert not v2mgr.frozen()
    assert wait_until(lambda: _readable(fd))


def _readable(fd: int) -> bool:
    import select
    return bool(select.select([fd], [], [], 0)[0])


@pytest.mark.root
def test_v2_kill_all_uses_cgroup_kill(v2mgr, children):
    procs = [children.start(["sleep", "60"]) for _ in range(2)]
    for p in procs:
        v2mgr.apply(p.pid)
    v2mgr.kill_all(9)
    for p in procs:
        assert p.wait(timeout=30) == -9
    assert wait_until(lambda: v2mgr.pids() == [])


def _open_devices_child(children, devices):
    code = ("import errno\nfor dev in %r:\n" % (devices,) +
            "    try:\n        os.close(os.open(dev, os.O_RDONLY)); print(dev, 'ok')\n"
            "    except OSError as e:\n        print(dev, errno.errorcode[e.errno])\n")
    return children.python(code)


@pytest.mark.root
def test_v2_device_program_denies_dev_null_and_allows_others(v2mgr, children):
    from oci_runtime.cgroups import bpf
    # An allow-list without /dev/null: only the eBPF program can enforce that on v2.
    rules = [DeviceRule(False, "a", -1, -1, "rwm")] + [r for r in DEFAULT_DEVICE_RULES if (r.major, r.minor) != (1, 3)]
    bpf.set_device_filter(v2mgr.path, DeviceState.from_rules(rules))
    p = _open_devices_child(children, ("/dev/null", "/dev/zero", "/dev/urandom"))
    v2mgr.apply(p.pid)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.split("\n")[:3] == ["/dev/null EPERM", "/dev/zero ok", "/dev/urandom ok"]
    assert len(bpf.attached_program_ids(v2mgr.path)) == 1


@pytest.mark.root
def test_v2_set_devices_uses_runc_defaults_and_update_replaces_program(v2mgr, children):
    from oci_runtime.cgroups import bpf
    v2mgr.set({"devices": [{"allow": False, "access": "rwm"}]})
    first = bpf.attached_program_ids(v2mgr.path)
    p = _open_devices_child(children, ("/dev/null", "/dev/kmsg"))
    v2mgr.apply(p.pid)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.split("\n")[:2] == ["/dev/null ok", "/dev/kmsg EPERM"]
    v2mgr.update({"devices": [{"allow": False, "access": "rwm"},
                              {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}]})
    second = bpf.attached_program_ids(v2mgr.path)
    assert len(first) == len(second) == 1 and first != second
    p = _open_devices_child(children, ("/dev/kmsg",))
    v2mgr.apply(p.pid)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.strip() == "/dev/kmsg ok"
    v2mgr.update({"pids": {"limit": 0}})   # no devices in the update: the program stays
    assert bpf.attached_program_ids(v2mgr.path) == second


@pytest.mark.root
def test_v2_unified_keys_and_missing_controllers(v2mgr):
    v2mgr.set({"unified": {"cgroup.max.descendants": "3"}})
    assert read(v2mgr.path, "cgroup.max.descendants") == "3"
    missing = sorted({"memory", "pids", "cpu"} - v2mgr.controllers())
    if not missing:
        pytest.skip("every controller is available here")
    key = {"memory": "memory.high", "pids": "pids.max", "cpu": "cpu.weight"}[missing[0]]
    with pytest.raises(CgroupError, match=f'"{key}" can\'t be set: controller "{missing[0]}" not available'):
        v2mgr.set({"unified": {key: "10"}})
    with pytest.raises(CgroupError, match=f"the {missing[0]} controller is not enabled"):
        v2mgr.set({"memory": {"memory": {"limit": MiB}}, "pids": {"pids": {"limit": 5}},
                   "cpu": {"cpu": {"shares": 100}}}[missing[0]])


@pytest.mark.root
def test_v2_hugetlb_limits_when_available(v2mgr):
    if "hugetlb" not in v2mgr.controllers():
        pytest.skip("hugetlb controller not available on the cgroup2 mount")
    from oci_runtime.cgroups.stats import hugepage_sizes
    size = hugepage_sizes()[0]
    v2mgr.set({"hugepageLimits": [{"pageSize": size, "limit": 0}]})
    assert read(v2mgr.path, f"hugetlb.{size}.max") == "0"
    assert size in v2mgr.stats()["hugetlb"]
    with pytest.raises(CgroupError, match="page size 3MB"):
        v2mgr.set({"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]})


@pytest.mark.root
def test_v2_state_round_trip_and_mount(v2mgr, children):
    p = children.start(["sleep", "60"])
    v2mgr.apply(p.pid)
    again = open_manager_from_state(json.loads(json.dumps(v2mgr.to_state())))
    assert again.pids() == [p.pid] and again.path == v2mgr.path
    assert v2mgr.mounts_for_container() == [(v2mgr.path, "")]
    assert v2mgr.stats()["pids"]["current"] == 1


@pytest.mark.root
def _wait_for_free_rt_budget(cpu_dir: str, runtime: int) -> None:
    """A realtime budget held by a cgroup just removed (runc's update test gives one all of the root's) comes
    back to the root a moment after rmdir, when the kernel frees the group: wait for it, bounded."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with open(os.path.join(cpu_dir, "cpu.rt_runtime_us"), "w") as f:
                f.write(str(runtime))
            break
        except OSError:
            if time.monotonic() > deadline:
                break  # the manager's own write below then says what is wrong
            time.sleep(0.05)
    with open(os.path.join(cpu_dir, "cpu.rt_runtime_us"), "w") as f:
        f.write("0")


def test_v1_realtime_idle_and_kernel_memory(v1mgr):
    _wait_for_free_rt_budget(v1mgr.path("cpu"), 10000)
    v1mgr.set({"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000},
               "memory": {"kernel": 64 * MiB, "kernelTCP": 32 * MiB}})
    cpu, mem = v1mgr.path("cpu"), v1mgr.path("memory")
    assert read(cpu, "cpu.rt_period_us") == "1000000"
    assert read(cpu, "cpu.rt_runtime_us") == "10000"
    if os.path.exists(os.path.join(mem, "memory.kmem.tcp.limit_in_bytes")):
        assert int(read(mem, "memory.kmem.tcp.limit_in_bytes")) == 32 * MiB
    if os.path.exists(os.path.join(cpu, "cpu.idle")):
        v1mgr.update({"cpu": {"idle": 1}})
        assert read(cpu, "cpu.idle") == "1"


@pytest.mark.root
def test_v1_device_update_and_rollback(v1mgr):
    devices = v1mgr.path("devices")
    v1mgr.set({"devices": [{"allow": False, "access": "rwm"}]})
    before = sorted(read(devices, "devices.list").splitlines())
    kmsg = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}
    v1mgr.update({"devices": [{"allow": False, "access": "rwm"}, kmsg]})
    assert sorted(read(devices, "devices.list").splitlines()) == sorted(before + ["c 1:11 r"])
    # A later refusal puts the device rules back too.
    with pytest.raises(CgroupError, match="cpu.cfs_quota_us"):
        v1mgr.update({"devices": [{"allow": False, "access": "rwm"}], "cpu": {"quota": 500}})
    assert sorted(read(devices, "devices.list").splitlines()) == sorted(before + ["c 1:11 r"])


@pytest.mark.root
def test_v1_freeze_reaches_nested_cgroups(v1mgr, children):
    p = children.start(["sleep", "60"])
    nested = os.path.join(v1mgr.path("freezer"), "nested")
    os.mkdir(nested)
    with open(os.path.join(nested, "cgroup.procs"), "w") as f:
        f.write(str(p.pid))
    assert v1mgr.pids() == [p.pid]
    v1mgr.freeze()
    assert proc_state(p.pid) == "D"
    assert read(nested, "freezer.state") == "FROZEN"
    v1mgr.thaw()
    assert wait_until(lambda: proc_state(p.pid) == "S")
    v1mgr.kill_all(9)
    assert p.wait(timeout=30) == -9


@pytest.mark.root
def test_v2_blacklist_program_denies_only_the_listed_access(v2mgr, children):
    from oci_runtime.cgroups import bpf
    state = DeviceState.from_rules([DeviceRule(True, "a", -1, -1, "rwm"), DeviceRule(False, "c", 1, 3, "w")])
    bpf.set_device_filter(v2mgr.path, state)
    code = ("import errno\nfor flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):\n"
            "    try:\n        os.close(os.open('/dev/null', flags)); print('ok')\n"
            "    except OSError as e:\n        print(errno.errorcode[e.errno])\n")
    p = children.python(code)
    v2mgr.apply(p.pid)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.split() == ["ok", "EPERM", "EPERM"]   # as v1 would: any overlap with a denied access


@pytest.mark.root
def test_v2_destroy_removes_the_tree_and_names_live_processes(cgroup2_root, children):
    mgr = open_manager("/" + unique_name(), "x", v2_mountpoint=cgroup2_root)
    mgr.create()
    try:
        os.makedirs(os.path.join(mgr.path, "a", "b"))
        p = children.start(["sleep", "60"])
        mgr.apply(p.pid)
        with pytest.raises(CgroupError, match=rf"removing {mgr.path}: device or resource busy "
                                              rf"\(processes still in it: \[{p.pid}\]\)"):
            mgr.destroy()
        assert os.path.isdir(mgr.path) and not os.path.exists(os.path.join(mgr.path, "a"))
        mgr.kill_all(9)
        p.wait(timeout=30)
        mgr.destroy()
        assert not os.path.exists(mgr.path)
        mgr.destroy()
    finally:
        _cleanup(mgr)
