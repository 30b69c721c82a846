"""pydock's bridge networking against real containers: name resolution on user-defined networks, isolation,
--internal, none, container:NAME, address release, bad input, and what a killed monitor leaves.
Every pydock here runs inside a network namespace this module makes (nsenter --net=), itself inside the
session's own one (tests/conftest.py); the host's links and routes are compared before and after."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.network import netns
from support import PYDOCK, run_captured, wait_for

pytestmark = pytest.mark.root


class NsPydock:
    """`pydock --root ROOT ...` run inside the module's network namespace."""

    def __init__(self, root: Path, ns: str):
        self.root, self.ns = root, ns

    def __call__(self, *args, check=False, timeout=120, input=None):
        proc = run_captured(["nsenter", f"--net={self.ns}", *PYDOCK, "--root", str(self.root), *map(str, args)],
                            timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"pydock {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def ip(self, *args) -> str:
        return subprocess.run(["nsenter", f"--net={self.ns}", "ip", *args], capture_output=True, text=True,
                              check=True).stdout


def host_view(host_netns: str) -> str:
    out = ""
    for args in (["-br", "link"], ["route"], ["-br", "addr"]):
        out += subprocess.run(["nsenter", f"--net={host_netns}", "ip", *args], capture_output=True, text=True,
                              check=True).stdout
    return out


@pytest.fixture(scope="module")
def host_before(host_netns):
    return host_view(host_netns)


@pytest.fixture(scope="module")
def dock(tmp_path_factory, busybox_tar, host_before):
    base = tmp_path_factory.mktemp("net")
    ns = os.fspath(base / "netns")
    netns.create(ns)
    d = NsPydock(base / "store", ns)
    d("import", busybox_tar, "busybox:latest", check=True)
    yield d
    for cid in d("ps", "-aq", "--no-trunc").stdout.split():
        d("rm", "-f", cid)
    d("network", "prune", "-f")
    netns.remove(ns)


def veths(dock) -> list[str]:
    return [line.split("@")[0] for line in dock.ip("-br", "link").splitlines() if line.startswith("veth")]


def endpoints(dock) -> dict:
    found = {}
    for path in (dock.root / "networks").glob("*/endpoints.json"):
        found.update(json.loads(path.read_text()))
    return found


def test_network_ls_lists_the_predefined_networks_in_dockers_columns(dock):
    lines = dock("network", "ls", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert {k: v[2:] for k, v in rows.items()} == {"bridge": ["bridge", "local"], "host": ["host", "local"],
                                                   "none": ["null", "local"]}
    assert dock("network", "ls", "-q", "--filter", "name=brid", check=True).stdout.split() == [rows["bridge"][0]]


def test_default_bridge_gives_an_address_route_and_docker_files(dock):
    script = "ip -4 -o addr show eth0; ip route; cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf"
    proc = dock("run", "--rm", "--name", "net-core-plain", "busybox", "sh", "-c", script, check=True)
    address = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", proc.stdout)
    assert address and address.group(1).endswith(".2")
    gateway = re.search(r"default via (\S+) dev eth0", proc.stdout).group(1)
    bridge = json.loads(dock("network", "inspect", "bridge", check=True).stdout)[0]
    assert bridge["IPAM"]["Config"][0]["Gateway"] == gateway
    assert f"{address.group(1)}\t" in proc.stdout and "127.0.0.1\tlocalhost" in proc.stdout
    assert "nameserver 127." not in proc.stdout
    assert veths(dock) == [] and endpoints(dock) == {}  # --rm: everything released
    assert "pydock-" not in dock.ip("-br", "link")  # the last container gone: the store's default bridge too


def test_inspect_shows_dockers_network_settings(dock):
    dock("run", "-d", "--name", "net-core-insp", "busybox", "sleep", "60", check=True)
    ip = dock("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "net-core-insp", check=True).stdout.strip()
    ranged = dock("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "net-core-insp",
                  check=True).stdout.strip()
    assert ip and ip == ranged
    bridge_name = dock("network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}', "bridge",
                       check=True).stdout.strip()
    assert bridge_name.startswith("pydock-") and bridge_name in dock.ip("-br", "link")  # the store's own
    doc = json.loads(dock("inspect", "net-core-insp", check=True).stdout)[0]
    assert doc["HostConfig"]["NetworkMode"] == "bridge"
    settings = doc["NetworkSettings"]
    assert os.path.exists(settings["SandboxKey"])
    entry = settings["Networks"]["bridge"]
    assert entry["IPPrefixLen"] == 16 and entry["MacAddress"] == "02:42:" + ":".join(
        f"{int(b):02x}" for b in ip.split("."))
    dock("stop", "-t", "0", "net-core-insp", check=True)
    stopped = json.loads(dock("inspect", "net-core-insp", check=True).stdout)[0]["NetworkSettings"]
    assert stopped["Networks"]["bridge"]["IPAddress"] == "" and not os.path.exists(settings["SandboxKey"])
    assert endpoints(dock) == {} and veths(dock) == []  # docker releases the endpoint on stop
    dock("rm", "net-core-insp", check=True)


def test_containers_reach_each_other_by_name_and_alias(dock):
    dock("network", "create", "net-core-app", check=True)
    early = dock("run", "-d", "--name", "net-core-early", "--network", "net-core-app", "busybox", "sleep", "300",
                 check=True).stdout.strip()
    dock("run", "-d", "--name", "net-core-web", "--network", "net-core-app", "--network-alias", "www", "busybox",
         "sh", "-c", "echo hello-from-web > /tmp/index.html; httpd -f -p 80 -h /tmp", check=True)
    web_ip = dock("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "net-core-web",
                  check=True).stdout.strip()
    # the earlier container learns of the later one
    assert dock("exec", early, "ping", "-c", "1", "-W", "2", "net-core-web").returncode == 0
    client = ("wget -qO- http://%s/index.html && wget -qO- http://www/index.html && "
              "wget -qO- http://net-core-web/index.html" % web_ip)
    assert wait_for(lambda: dock("run", "--rm", "--network", "net-core-app", "busybox", "sh", "-c", client)
                    .stdout == "hello-from-web\n" * 3, timeout=15)
    # after a restart the web container is found again (under its address of now)
    dock("restart", "-t", "0", "net-core-web", check=True)
    assert dock("exec", early, "ping", "-c", "1", "-W", "2", "www").returncode == 0
    hosts = dock("exec", "net-core-web", "cat", "/etc/hosts", check=True).stdout
    assert "net-core-early" in hosts
    net = json.loads(dock("inspect", "net-core-app", check=True).stdout)[0]  # a network by plain inspect too
    assert sorted(c["Name"] for c in net["Containers"].values()) == ["net-core-early", "net-core-web"]
    rm = dock("network", "rm", "net-core-app")
    assert rm.returncode == 125 and "active endpoints" in rm.stderr and rm.stderr.count("\n") == 1
    dock("rm", "-f", "net-core-early", "net-core-web", check=True)
    dock("network", "rm", "net-core-app", check=True)
    assert veths(dock) == [] and endpoints(dock) == {}


def test_two_networks_are_isolated(dock):
    dock("network", "create", "net-core-a", check=True)
    dock("network", "create", "net-core-b", check=True)
    dock("run", "-d", "--name", "net-core-in-a", "--network", "net-core-a", "busybox", "sleep", "300", check=True)
    a_ip = dock("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "net-core-in-a",
                check=True).stdout.strip()
    same = dock("run", "--rm", "--network", "net-core-a", "busybox", "ping", "-c", "1", "-W", "2", a_ip)
    other = dock("run", "--rm", "--network", "net-core-b", "busybox", "ping", "-c", "1", "-W", "2", a_ip)
    by_name = dock("run", "--rm", "--network", "net-core-b", "busybox", "ping", "-c", "1", "-W", "1", "net-core-in-a")
    assert same.returncode == 0 and other.returncode != 0 and by_name.returncode != 0
    dock("rm", "-f", "net-core-in-a", check=True)
    dock("network", "rm", "net-core-a", "net-core-b", check=True)


def test_internal_network_none_and_container_modes(dock):
    dock("network", "create", "--internal", "--subnet", "10.99.0.0/24", "net-core-int", check=True)
    routes = dock("run", "--rm", "--network", "net-core-int", "busybox", "ip", "route", check=True).stdout
    assert "default" not in routes and "10.99.0.0/24" in routes
    links = dock("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net", check=True).stdout.split()
    assert links == ["lo"]
    dock("run", "-d", "--name", "net-core-owner", "busybox", "sleep", "300", check=True)
    own = dock("exec", "net-core-owner", "ip", "-4", "-o", "addr", "show", "eth0", check=True).stdout.split()[3]
    shared = dock("run", "--rm", "--network", "container:net-core-owner", "busybox", "ip", "-4", "-o", "addr",
                  "show", "eth0", check=True).stdout.split()[3]
    assert own == shared
    dock("rm", "-f", "net-core-owner", check=True)
    dock("network", "rm", "net-core-int", check=True)


def test_rm_releases_the_address_and_ip_is_honoured(dock):
    dock("network", "create", "--subnet", "10.98.0.0/24", "--gateway", "10.98.0.254", "net-core-ipam", check=True)
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}"
    dock("run", "-d", "--name", "net-core-first", "--network", "net-core-ipam", "busybox", "sleep", "300", check=True)
    assert dock("inspect", "-f", fmt, "net-core-first", check=True).stdout.split() == ["10.98.0.1", "10.98.0.254"]
    dock("run", "-d", "--name", "net-core-fixed", "--network", "net-core-ipam", "--ip", "10.98.0.50", "busybox",
         "sleep", "300", check=True)
    assert dock("inspect", "-f", fmt, "net-core-fixed", check=True).stdout.split()[0] == "10.98.0.50"
    taken = dock("run", "--rm", "--network", "net-core-ipam", "--ip", "10.98.0.50", "busybox", "true")
    assert taken.returncode == 125 and "10.98.0.50" in taken.stderr
    dock("rm", "-f", "net-core-first", check=True)
    dock("run", "-d", "--name", "net-core-second", "--network", "net-core-ipam", "busybox", "sleep", "300", check=True)
    assert dock("inspect", "-f", fmt, "net-core-second", check=True).stdout.split()[0] == "10.98.0.1"
    dock("rm", "-f", "net-core-fixed", "net-core-second", check=True)
    dock("network", "rm", "net-core-ipam", check=True)


def test_connect_and_disconnect_a_running_container(dock):
    dock("network", "create", "--subnet", "10.97.0.0/24", "net-core-extra", check=True)
    dock("run", "-d", "--name", "net-core-multi", "busybox", "sleep", "300", check=True)
    dock("network", "connect", "--ip", "10.97.0.9", "--alias", "multi", "net-core-extra", "net-core-multi", check=True)
    addrs = dock("exec", "net-core-multi", "ip", "-4", "-o", "addr", check=True).stdout
    assert "eth1" in addrs and "10.97.0.9/24" in addrs
    assert dock("run", "--rm", "--network", "net-core-extra", "busybox", "ping", "-c1", "-W2", "multi").returncode == 0
    dock("network", "disconnect", "net-core-extra", "net-core-multi", check=True)
    assert "eth1" not in dock("exec", "net-core-multi", "ip", "-o", "link", check=True).stdout
    dock("rm", "-f", "net-core-multi", check=True)
    dock("network", "rm", "net-core-extra", check=True)


@pytest.mark.parametrize("args, message", [
    (["network", "create", "--subnet", "10.96.0.0/16", "net-core-overlap"], "overlaps"),
    (["network", "create", "--subnet", "10.95.0.0/24", "--gateway", "10.1.0.1", "net-core-badgw"], "gateway"),
    (["network", "create", "--subnet", "nonsense", "net-core-badnet"], "invalid subnet"),
    (["run", "--rm", "--network", "net-core-fixture", "--ip", "10.200.0.5", "busybox", "true"], "outside the subnet"),
    (["run", "--rm", "--network", "net-core-nosuch", "busybox", "true"], "network net-core-nosuch not found"),
    (["run", "--rm", "--ip", "172.17.0.9", "busybox", "true"], "user defined networks only"),
    (["run", "--rm", "--network-alias", "x", "busybox", "true"], "user defined networks"),
    (["run", "--rm", "--network", "container:net-core-nosuch", "busybox", "true"], "No such container"),
    (["network", "rm", "bridge"], "pre-defined"),
    (["run", "--rm", "--network", "net-core-auto", "--ip", "172.30.0.9", "busybox", "true"], "user configured subnets"),
    (["network", "create", "host"], "pre-defined"),
    (["network", "create", "-d", "overlay", "net-core-ov"], "overlay"),
    (["network", "rm", "net-core-nosuch"], "not found"),
])
def test_bad_input_is_one_line_exit_125_and_leaves_nothing(dock, args, message):
    if dock("network", "inspect", "net-core-fixture").returncode != 0:
        dock("network", "create", "--subnet", "10.96.0.0/24", "net-core-fixture", check=True)
        dock("network", "create", "net-core-auto", check=True)
    before = (dock("ps", "-aq").stdout, dock("network", "ls", "-q").stdout, veths(dock), endpoints(dock))
    proc = dock(*args)
    assert proc.returncode == 125
    assert proc.stderr.startswith("pydock: error: ") and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert (dock("ps", "-aq").stdout, dock("network", "ls", "-q").stdout, veths(dock), endpoints(dock)) == before


def test_concurrent_runs_get_distinct_addresses(dock):
    dock("network", "create", "--subnet", "10.94.0.0/24", "net-core-busy", check=True)
    procs = [subprocess.Popen(["nsenter", f"--net={dock.ns}", *PYDOCK, "--root", str(dock.root), "run", "-d",
                               "--name", f"net-core-busy{i}", "--network", "net-core-busy", "busybox", "sleep", "300"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(4)]
    assert [p.wait(120) for p in procs] == [0] * 4
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    ips = [dock("inspect", "-f", fmt, f"net-core-busy{i}", check=True).stdout.strip() for i in range(4)]
    assert sorted(ips) == [f"10.94.0.{n}" for n in range(2, 6)]  # .1 is the gateway
    assert len(veths(dock)) == 4
    dock("rm", "-f", *[f"net-core-busy{i}" for i in range(4)], check=True)
    dock("network", "rm", "net-core-busy", check=True)


def test_pyroute2_is_imported_only_for_bridge_networking(dock):
    # -X importtime: the pydock launcher runs Python with -I, which ignores PYTHONPROFILEIMPORTTIME
    traced = [sys.executable, "-X", "importtime", "-m", "builder", "--root", str(dock.root)]
    none = run_captured(["nsenter", f"--net={dock.ns}", *traced, "run", "--rm", "--network", "none", "busybox", "true"])
    bridge = run_captured(["nsenter", f"--net={dock.ns}", *traced, "run", "--rm", "busybox", "true"])
    assert none.returncode == bridge.returncode == 0
    assert "pyroute2" not in none.stderr and "pyroute2" in bridge.stderr
    # only the route netlink parts: not the families pyroute2's package __init__ would pull in
    for family in ("pyroute2.ndb", "pyroute2.ipset", "pyroute2.conntrack", "pyroute2.iwutil", "pyroute2.ipvs"):
        assert f"| {family}" not in bridge.stderr, family


def test_killed_monitor_and_cli_leave_no_veth_or_address(dock):
    cid = dock("run", "-d", "--name", "net-core-victim", "busybox", "sleep", "300", check=True).stdout.strip()
    record = json.loads((dock.root / "containers" / cid / "config.json").read_text())
    assert len(veths(dock)) == 1 and cid in endpoints(dock)
    for pid in (record["Monitor"]["Pid"], record["Guard"]["Pid"], record["State"]["Pid"]):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    assert "Exited" in dock("ps", "-a", check=True).stdout  # the next command reconciles
    assert veths(dock) == [] and endpoints(dock) == {} and not (dock.root / "netns" / cid).exists()
    dock("rm", cid, check=True)

    # the CLI killed in a foreground run: the container goes on under its monitor, and rm -f releases it
    cli = subprocess.Popen(["nsenter", f"--net={dock.ns}", *PYDOCK, "--root", str(dock.root), "run",
                            "--name", "net-core-orphan", "busybox", "sleep", "300"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: len(veths(dock)) == 1, timeout=30)
    cli.kill()
    cli.wait()
    dock("rm", "-f", "net-core-orphan", check=True)
    assert veths(dock) == [] and endpoints(dock) == {} and os.listdir(dock.root / "netns") == []


def test_build_run_steps_on_the_default_bridge(dock, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN ip -4 -o addr show eth0 > /addr && ip route > /route\n")
    dock("build", "--network", "bridge", "-t", "net-core-built", tmp_path, check=True)
    out = dock("run", "--rm", "--network", "none", "net-core-built", "cat", "/addr", "/route", check=True).stdout
    bridge = json.loads(dock("network", "inspect", "bridge", check=True).stdout)[0]["IPAM"]["Config"][0]
    assert re.search(r"inet \d+\.\d+\.\d+\.\d+/16", out) and f"default via {bridge['Gateway']}" in out
    assert veths(dock) == [] and endpoints(dock) == {}
    bad = dock("build", "--network", "bogus", tmp_path)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "bogus" in bad.stderr


def test_the_hosts_network_is_unchanged(dock, host_netns, host_before):
    assert host_view(host_netns) == host_before
