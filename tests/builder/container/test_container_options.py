"""pydock run's capability and resource flags, rename, top, and rmi of an image a container uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from builder_support import Pydock
from support import wait_for

pytestmark = pytest.mark.root

DOCKER_DEFAULT_CAPEFF = "00000000a80425fb"  # what `docker run busybox grep CapEff /proc/self/status` shows


def cap_eff(dock: Pydock, *flags: str) -> str:
    out = dock("run", "--rm", *flags, "busybox", "grep", "CapEff", "/proc/self/status", check=True).stdout
    return out.split()[1]


def test_capabilities_are_dockers_with_add_and_drop(dock):
    assert cap_eff(dock) == DOCKER_DEFAULT_CAPEFF
    assert cap_eff(dock, "--cap-drop", "ALL", "--cap-add", "NET_RAW") == f"{1 << 13:016x}"
    assert int(cap_eff(dock, "--cap-drop", "chown"), 16) == int(DOCKER_DEFAULT_CAPEFF, 16) & ~1
    assert dock("run", "--rm", "busybox", "sh", "-c", "chown 1:1 /tmp").returncode == 0
    bad = dock("run", "--rm", "--cap-add", "NOPE", "busybox", "true")
    assert bad.returncode == 125 and bad.stderr.count("\n") == 1 and dock("ps", "-aq").stdout == ""


def cgroup_file(pid: int, controller: str, name: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            mount = next(p for p in Path("/sys/fs/cgroup").iterdir() if controller in p.name.split(","))
            return (mount / path.lstrip("/") / name).read_text().strip()
    pytest.skip(f"no {controller} cgroup v1 controller")


def test_resource_limits_reach_the_cgroup(dock):
    dock("run", "-d", "--name", "limited", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "busybox",
         "sleep", "60", check=True)
    info = json.loads(dock("inspect", "limited", check=True).stdout)[0]
    assert (info["HostConfig"]["Memory"], info["HostConfig"]["NanoCpus"], info["HostConfig"]["PidsLimit"]) == \
        (64 << 20, 500_000_000, 50)
    pid = info["State"]["Pid"]
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(pid, "pids", "pids.max") == "50"
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    dock("rm", "-f", "limited", check=True)
    assert dock("run", "--rm", "-m", "1k", "busybox", "true").returncode == 125


def test_rename_and_top(dock):
    dock("run", "-d", "--name", "first", "busybox", "sh", "-c", "sleep 60 & sleep 70", check=True)
    dock("create", "--name", "other", "busybox", "true", check=True)
    assert dock("rename", "first", "other").returncode == 125
    dock("rename", "first", "second", check=True)
    assert dock("inspect", "first").returncode != 0
    assert json.loads(dock("inspect", "second").stdout)[0]["Name"] == "/second"
    top = dock("top", "second", check=True).stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "CMD"]
    assert sorted(line.split(None, 3)[3] for line in top[1:]) == ["sleep 60", "sleep 70"]
    assert dock("top", "other").returncode == 125  # not running
    dock("rm", "-f", "second", "other", check=True)


def test_rmi_refuses_an_image_a_container_uses(dock):
    dock("create", "--name", "user", "busybox", "true", check=True)
    proc = dock("rmi", "busybox")
    assert proc.returncode == 1 and "container" in proc.stderr
    dock("tag", "busybox", "alias:latest", check=True)
    dock("rmi", "alias", check=True)  # another name of it can go
    dock("rm", "user", check=True)


def state_of(dock: Pydock, ref: str) -> dict:
    return json.loads(dock("inspect", ref, check=True).stdout)[0]


def test_restart_on_failure_stops_after_its_count(dock):
    dock("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3",
         check=True)
    assert wait_for(lambda: state_of(dock, "flaky")["State"]["Status"] == "exited"
                    and state_of(dock, "flaky")["RestartCount"] == 2)
    assert dock("logs", "flaky").stdout == "run\n" * 3
    assert state_of(dock, "flaky")["State"]["ExitCode"] == 3
    dock("rm", "flaky", check=True)


def test_restart_always_until_stopped(dock):
    dock("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3", check=True)
    assert wait_for(lambda: state_of(dock, "phoenix")["RestartCount"] >= 2)
    dock("stop", "-t", "1", "phoenix", check=True)
    assert state_of(dock, "phoenix")["State"]["Status"] == "exited"
    count = state_of(dock, "phoenix")["RestartCount"]
    import time
    time.sleep(1)
    assert state_of(dock, "phoenix")["State"]["Status"] == "exited" and state_of(dock, "phoenix")["RestartCount"] == count
    dock("rm", "phoenix", check=True)
    assert dock("run", "--rm", "--restart", "always", "busybox", "true").returncode == 125
    assert dock("run", "--restart", "sometimes", "busybox", "true").returncode == 125


def test_pause_and_unpause(dock):
    import time

    dock("run", "-d", "--name", "frozen", "busybox", "sh", "-c", "while true; do echo t; sleep 0.1; done", check=True)
    assert wait_for(lambda: dock("logs", "frozen").stdout)
    dock("pause", "frozen", check=True)
    assert "(Paused)" in dock("ps").stdout and state_of(dock, "frozen")["State"]["Paused"]
    lines = dock("logs", "frozen").stdout.count("t\n")
    time.sleep(0.5)
    assert dock("logs", "frozen").stdout.count("t\n") == lines
    assert dock("exec", "frozen", "true").returncode == 125
    assert dock("pause", "frozen").returncode == 125
    dock("unpause", "frozen", check=True)
    assert wait_for(lambda: dock("logs", "frozen").stdout.count("t\n") > lines)
    dock("pause", "frozen", check=True)
    dock("stop", "-t", "1", "frozen", check=True)  # a paused container is thawed to be stopped
    assert state_of(dock, "frozen")["State"]["Status"] == "exited"
    dock("rm", "frozen", check=True)


def test_commit_makes_an_image_of_the_changes(dock):
    dock("run", "--name", "changed", "-e", "MARK=1", "busybox", "sh", "-c",
         "echo hi > /made; rm /bin/true; echo $MARK", check=True)
    image_id = dock("commit", "-m", "my change", "changed", "committed:v1", check=True).stdout.strip()
    assert image_id.startswith("sha256:")
    proc = dock("run", "--rm", "committed:v1", "sh", "-c", "cat /made; [ -e /bin/true ] || echo gone; echo $MARK")
    assert proc.stdout == "hi\ngone\n1\n"
    info = json.loads(dock("inspect", "committed:v1", check=True).stdout)[0]
    assert info["Config"]["Cmd"][0] == "sh" and info["History"][-1]["comment"] == "my change"
    dock("run", "-d", "--name", "busy", "busybox", "sh", "-c", "echo live > /live; sleep 60", check=True)
    assert wait_for(lambda: dock("exec", "busy", "cat", "/live").stdout == "live\n")
    dock("commit", "busy", "committed:v2", check=True)  # paused and thawed again
    assert state_of(dock, "busy")["State"]["Status"] == "running"
    assert dock("run", "--rm", "committed:v2", "cat", "/live").stdout == "live\n"
    dock("rm", "-f", "changed", "busy", check=True)
    dock("rmi", "committed:v1", "committed:v2", check=True)


def test_named_volumes_and_volumes_from(dock):
    dock("run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c", "echo kept > /data/f", check=True)
    dock("run", "--name", "holder", "-v", "shared:/data:ro", "busybox", "cat", "/data/f", check=True)
    mounts = state_of(dock, "holder")["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"], m["RW"]) for m in mounts] == [("volume", "shared", "/data", False)]
    proc = dock("run", "--rm", "--volumes-from", "holder", "busybox", "sh", "-c", "cat /data/f; touch /data/x")
    assert proc.stdout == "kept\n" and proc.returncode != 0  # read-only, as holder has it
    dock("run", "--rm", "--volumes-from", "holder:rw", "busybox", "touch", "/data/x", check=True)
    assert dock("logs", "holder").stdout == "kept\n"
    bad = dock("run", "--rm", "-v", "not/a/name:/x", "busybox", "true")
    assert bad.returncode == 125 and "volume name" in bad.stderr
    assert dock("run", "--rm", "--volumes-from", "nosuch", "busybox", "true").returncode == 125
    dock("rm", "holder", check=True)


def test_stats_no_stream(dock):
    dock("run", "-d", "--name", "spinner", "-m", "64m", "busybox", "sh", "-c", "while true; do :; done", check=True)
    lines = dock("stats", "--no-stream", "spinner", check=True).stdout.splitlines()
    assert re.split(r"\s{3,}", lines[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                                             "NET I/O", "BLOCK I/O", "PIDS"]
    cells = lines[1].split()
    assert cells[1] == "spinner" and float(cells[2].rstrip("%")) > 1.0
    assert "/ 64MiB" in lines[1] and cells[-1] == "1"
    dock("rm", "-f", "spinner", check=True)
