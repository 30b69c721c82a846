"""`pydock run -p/-P/--expose`, `pydock port` and the ps PORTS column, end to end on the default bridge:
busybox httpd reached from the host on 127.0.0.1 and on another address of the test's netns, and from
another container (hairpin); UDP through -p .../udp; a port in use refused before anything exists; a stop
or a killed monitor releasing the port. The module runs in a netns of its own (the session's is shared
with every other store's default bridge); the extra address is a veth pair made here; the machine's own
firewall is checked to be unchanged."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from builder_support import Pydock
from support import PYDOCK, own_netns, wait_for

pytestmark = pytest.mark.root

OTHER_ADDRESS = "10.233.0.1"
HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-net-ports > /www/index.html && exec httpd -f -p 80 -h /www"]
# Debian's busybox nc has no UDP: the host's python, mounted read-only, answers datagrams
UDP_ECHO = ["-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro", "busybox", "/usr/bin/python3", "-S",
            "-c", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 5353))\n"
                  "while True:\n    data, peer = s.recvfrom(2048)\n    s.sendto(b'echo ' + data, peer)"]


def nft_ruleset(netns: str | None = None) -> str:
    cmd = ["nft", "list", "ruleset"]
    done = subprocess.run(["nsenter", f"--net={netns}", *cmd] if netns else cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def dock(tmp_path_factory, busybox_tar, host_netns):
    before = nft_ruleset(host_netns)
    with own_netns():
        yield from _published_store(tmp_path_factory, busybox_tar)
    assert nft_ruleset(host_netns) == before, "the machine's own firewall changed"


def _published_store(tmp_path_factory, busybox_tar):
    from pyroute2 import IPRoute

    with IPRoute() as ipr:  # the module's netns: "another address of the host"
        ipr.link("add", ifname="npuplink0", kind="veth", peer={"ifname": "npuplink1"})
        for name in ("npuplink0", "npuplink1"):
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        ipr.addr("add", index=ipr.link_lookup(ifname="npuplink0")[0], address=OTHER_ADDRESS, prefixlen=24)
    p = Pydock(tmp_path_factory.mktemp("net-ports") / "store")
    p("import", busybox_tar, "busybox:latest", check=True)
    try:
        yield p
    finally:
        for cid in p("ps", "-aq", "--no-trunc").stdout.split():
            p("rm", "-f", cid)
        with IPRoute() as ipr:
            ipr.link("del", index=ipr.link_lookup(ifname="npuplink0")[0])


def fetch(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as r:
        return r.read().decode()


def serves(host: str, port: int) -> bool:
    try:
        return fetch(host, port) == "hello-net-ports\n"
    except OSError:
        return False


def udp(host: str, port: int, text: bytes) -> bytes:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    with s:
        s.sendto(text, (host, port))
        return s.recvfrom(2048)[0]


def record(dock: Pydock, ref: str) -> dict:
    cid = json.loads(dock("inspect", ref, check=True).stdout)[0]["Id"]
    return json.loads((dock.root / "containers" / cid / "config.json").read_text())


def bindable(port: int, proto: str = "tcp") -> bool:
    """Free on 0.0.0.0 and on [::]."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((address, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def publish_rules() -> str:
    return "\n".join(line for line in nft_ruleset().splitlines() if "dnat to" in line)


def test_httpd_is_reached_from_the_host_its_addresses_and_other_containers(dock):
    dock("run", "-d", "--name", "net-ports-web", "-p", "18081:80", "busybox", *HTTPD, check=True)
    assert wait_for(lambda: serves("127.0.0.1", 18081), timeout=15)
    assert fetch(OTHER_ADDRESS, 18081) == "hello-net-ports\n"  # DNAT from the host's own traffic
    gateway = record(dock, "net-ports-web")["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
    for address in (OTHER_ADDRESS, gateway):  # hairpin: a container on the same bridge, through the host
        out = dock("run", "--rm", "busybox", "wget", "-qO-", f"http://{address}:18081/")
        assert (out.returncode, out.stdout) == (0, "hello-net-ports\n"), out.stderr
    assert fetch("::1", 18081) == "hello-net-ports\n"  # held on [::] too, as docker; the proxy carries it
    assert dock("port", "net-ports-web", check=True).stdout == "80/tcp -> 0.0.0.0:18081\n80/tcp -> [::]:18081\n"
    assert dock("port", "net-ports-web", "80/tcp", check=True).stdout == "0.0.0.0:18081\n[::]:18081\n"
    missing = dock("port", "net-ports-web", "81")
    assert (missing.returncode, missing.stderr) == (1, "Error: No public port '81/tcp' published for net-ports-web\n")
    ps = dock("ps", check=True).stdout.splitlines()
    header, row = ps[0], next(line for line in ps if line.endswith("net-ports-web"))
    assert row[header.index("PORTS"):].startswith("0.0.0.0:18081->80/tcp, [::]:18081->80/tcp ")
    doc = record(dock, "net-ports-web")
    assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "18081"}]}
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18081"},
                                                          {"HostIp": "::", "HostPort": "18081"}]}
    dock("rm", "-f", "net-ports-web", check=True)
    assert bindable(18081) and publish_rules() == ""


def test_a_published_port_is_reached_from_another_network_but_the_container_itself_is_not(dock):
    # docker: isolation between networks keeps containers apart, yet a published port is for everyone
    dock("network", "create", "net-ports-other", check=True)
    try:
        dock("run", "-d", "--name", "net-ports-web2", "-p", "18082:80", "busybox", *HTTPD, check=True)
        assert wait_for(lambda: serves("127.0.0.1", 18082), timeout=15)
        out = dock("run", "--rm", "--network", "net-ports-other", "busybox", "wget", "-qO-",
                   f"http://{OTHER_ADDRESS}:18082/")
        assert (out.returncode, out.stdout) == (0, "hello-net-ports\n"), out.stderr
        web_ip = record(dock, "net-ports-web2")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        direct = dock("run", "--rm", "--network", "net-ports-other", "busybox", "timeout", "3", "wget", "-qO-",
                      f"http://{web_ip}:80/")
        assert direct.returncode != 0 and "hello" not in direct.stdout
    finally:
        dock("rm", "-f", "net-ports-web2")
        dock("network", "rm", "net-ports-other")


def test_udp_through_publish_udp(dock):
    dock("run", "-d", "--name", "net-ports-udp", "-p", "15353:5353/udp", *UDP_ECHO, check=True)

    def answers(host):
        try:
            return udp(host, 15353, b"ping") == b"echo ping"
        except OSError:
            return False

    assert wait_for(lambda: answers("127.0.0.1"), timeout=15)
    assert answers(OTHER_ADDRESS)
    assert answers("::1")
    assert dock("port", "net-ports-udp", check=True).stdout == "5353/udp -> 0.0.0.0:15353\n5353/udp -> [::]:15353\n"
    dock("rm", "-f", "net-ports-udp", check=True)
    assert bindable(15353, "udp")


def test_publish_all_and_loopback_only_bindings_get_ports_that_port_reports(dock):
    dock("run", "-d", "--name", "net-ports-all", "--expose", "80", "--expose", "7000-7001/udp", "-P",
         "-p", "127.0.0.1::80", "busybox", *HTTPD, check=True)
    lines = dock("port", "net-ports-all", check=True).stdout.splitlines()
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    found = {}
    for line in lines:
        key, _, address = line.partition(" -> ")
        host, _, port = address.rpartition(":")
        assert low <= int(port) <= high, line
        found.setdefault(key, []).append((host, int(port)))
    for key in ("7000/udp", "7001/udp"):  # a random port is the same number on 0.0.0.0 and [::]
        assert [h for h, _ in found[key]] == ["0.0.0.0", "[::]"] and len({p for _, p in found[key]}) == 1
    assert sorted(found) == ["7000/udp", "7001/udp", "80/tcp"]
    # -P adds bindings only for exposed ports that -p did not bind (docker's rule)
    assert [h for h, _ in found["80/tcp"]] == ["127.0.0.1"]
    assert wait_for(lambda: serves("127.0.0.1", found["80/tcp"][0][1]), timeout=15)
    assert not serves(OTHER_ADDRESS, found["80/tcp"][0][1])
    doc = record(dock, "net-ports-all")
    assert doc["HostConfig"]["PublishAllPorts"] is True
    dock("rm", "-f", "net-ports-all", check=True)


def test_a_port_in_use_is_refused_before_anything_is_created(dock):
    holder = socket.socket()
    holder.bind(("0.0.0.0", 18082))
    holder.listen(1)
    before = dock("ps", "-aq").stdout
    try:
        out = dock("run", "-d", "--name", "net-ports-busy", "-p", "18082:80", "busybox", *HTTPD)
    finally:
        holder.close()
    assert out.returncode == 125
    assert out.stderr == "pydock: error: Bind for 0.0.0.0:18082 failed: port is already allocated\n"
    assert dock("ps", "-aq").stdout == before
    assert "18082" not in publish_rules()
    bad = dock("run", "-p", "80:http", "busybox", "true")
    assert (bad.returncode, bad.stderr) == (125, "pydock: error: invalid containerPort: http\n")
    holder = socket.socket(socket.AF_INET6)
    holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    holder.bind(("::", 18083))
    holder.listen(1)
    try:
        out = dock("run", "-d", "-p", "18083:80", "busybox", *HTTPD)
        random = dock("run", "-d", "--name", "net-ports-random6", "-p", "80", "busybox", *HTTPD, check=True)
    finally:
        holder.close()
    assert (out.returncode, out.stderr) == (125, "pydock: error: Bind for [::]:18083 failed: port is already allocated\n")
    assert bindable(18083)  # 0.0.0.0:18083, bound first, was let go again
    assert random.returncode == 0
    dock("rm", "-f", "net-ports-random6", check=True)


def test_stop_releases_the_port_for_the_next_container(dock):
    dock("run", "-d", "--name", "net-ports-first", "-p", "18083:80", "busybox", *HTTPD, check=True)
    assert wait_for(lambda: serves("127.0.0.1", 18083), timeout=15)
    dock("stop", "-t", "1", "net-ports-first", check=True)
    assert record(dock, "net-ports-first")["NetworkSettings"]["Ports"] == {}
    assert dock("port", "net-ports-first", check=True).stdout == ""
    dock("run", "-d", "--name", "net-ports-second", "-p", "18083:80", "busybox", *HTTPD, check=True)
    assert wait_for(lambda: serves(OTHER_ADDRESS, 18083), timeout=15)
    second = record(dock, "net-ports-second")["Id"]
    assert publish_rules().count("dnat to") == 1 and second in publish_rules()
    dock("rm", "-f", "net-ports-first", "net-ports-second", check=True)


def test_a_killed_monitor_s_guard_releases_port_and_rules(dock):
    dock("run", "-d", "--name", "net-ports-guarded", "-p", "18085:80", "busybox", *HTTPD, check=True)
    assert wait_for(lambda: serves("127.0.0.1", 18085), timeout=15)
    cid = record(dock, "net-ports-guarded")["Id"]
    os.kill(record(dock, "net-ports-guarded")["Monitor"]["Pid"], signal.SIGKILL)
    assert wait_for(lambda: cid not in publish_rules() and bindable(18085), timeout=15)
    assert record(dock, "net-ports-guarded")["NetworkSettings"]["Ports"] == {}
    dock("rm", "-f", "net-ports-guarded", check=True)


def test_a_killed_monitor_and_guard_leave_nothing_after_the_next_command(dock):
    dock("run", "-d", "--name", "net-ports-killed", "-p", "18084:80", "busybox", *HTTPD, check=True)
    assert wait_for(lambda: serves("127.0.0.1", 18084), timeout=15)
    doc = record(dock, "net-ports-killed")
    for who in ("Guard", "Monitor"):
        os.kill(doc[who]["Pid"], signal.SIGKILL)
    assert wait_for(lambda: bindable(18084), timeout=10)  # the proxy died with the monitor
    assert doc["Id"] in publish_rules()
    dock("ps", check=True)
    assert publish_rules() == ""
    # the end nobody recorded is written down when the next command noticed it, and shown as an age
    state = record(dock, "net-ports-killed")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 255)
    assert state["FinishedAt"] != "0001-01-01T00:00:00Z"
    lines = dock("ps", "-a", check=True).stdout.splitlines()
    header, row = lines[0], next(line for line in lines if line.endswith("net-ports-killed"))
    status = row[header.index("STATUS"):header.index("PORTS")].strip()
    assert status.startswith("Exited (255) ") and status.endswith(" ago") and "years" not in status, status
    os.kill(doc["State"]["Pid"], signal.SIGKILL)  # the container itself, whose guard was killed too
    time.sleep(0.2)
    dock("rm", "-f", "net-ports-killed", check=True)


def test_a_privileged_port_is_refused_where_it_is_not_allowed(dock):
    """Without CAP_NET_BIND_SERVICE, ports below net.ipv4.ip_unprivileged_port_start cannot be bound."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("every port is unprivileged here")
    before = dock("ps", "-aq").stdout
    out = subprocess.run(["setpriv", "--bounding-set", "-net_bind_service", *PYDOCK, "--root", str(dock.root),
                          "run", "-d", "-p", "80:80", "busybox", *HTTPD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 125
    assert out.stderr.startswith("pydock: error: cannot publish privileged port 80 (0.0.0.0:80): permission denied")
    assert len(out.stderr.splitlines()) == 1
    assert dock("ps", "-aq").stdout == before


def test_container_prune_drops_rules_a_failed_release_left(dock):
    from builder.network import firewall, ports

    cid = dock("create", "--name", "net-ports-pruned", "-p", "18086:80", "busybox", "true", check=True).stdout.strip()
    table = firewall.table_for(dock.root)
    leftover = ports.dnat_commands(table, cid, {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18086"}]},
                                   "172.17.0.9", "172.17.0.0/16")
    firewall.ensure_publish_chains(table)
    firewall.apply(leftover)  # as if nft had failed while the container stopped
    assert cid in publish_rules()
    dock("container", "prune", "-f", check=True)
    assert cid not in publish_rules()
