"""The publishing mechanism (builder.network.ports) on a lab the test builds itself, apart from the rest of
pydock's networking: a "host" network namespace with a bridge and a second address, two "container"
namespaces on that bridge, a TCP and UDP echo server in the first one. Everything runs inside those
namespaces (the code under test through nsenter); the machine's own firewall is checked to be unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

from support import REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nsenter"), reason="needs root and nsenter")

BRIDGE_NET = "10.231.0"
OTHER_ADDRESS = "10.232.0.1"  # the lab host's second address (as the host's eth0 would be)
SERVER = textwrap.dedent("""
    import socket, sys, threading
    def tcp():
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 8080)); s.listen(16)
        while True:
            c, peer = s.accept()
            c.sendall(("hello " + peer[0] + "\\n").encode()); c.close()
    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5353))
        while True:
            data, peer = s.recvfrom(2048); s.sendto(b"echo " + data, peer)
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    tcp()
""")


def host_ruleset(host_netns: str) -> str:
    """The machine's own firewall (the session runs in a netns of its own: see conftest)."""
    done = subprocess.run(["nsenter", f"--net={host_netns}", "nft", "list", "ruleset"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Lab:
    """Named network namespaces made with pyroute2 (removed at the end)."""

    def __init__(self):
        from pyroute2 import NetNS

        tag = uuid.uuid4().hex[:6]
        self.host, self.c1, self.c2 = (f"net-ports-{tag}-{n}" for n in ("host", "c1", "c2"))
        self.procs: list[subprocess.Popen] = []

    def build(self):
        from pyroute2 import NetNS

        host = NetNS(self.host, flags=os.O_CREAT)
        try:
            lo = host.link_lookup(ifname="lo")[0]
            host.link("set", index=lo, state="up")
            host.link("add", ifname="br0", kind="bridge")
            br = host.link_lookup(ifname="br0")[0]
            host.addr("add", index=br, address=f"{BRIDGE_NET}.1", prefixlen=24)
            host.link("set", index=br, state="up")
            host.link("add", ifname="other0", kind="veth", peer={"ifname": "other1"})
            other = host.link_lookup(ifname="other0")[0]
            host.addr("add", index=other, address=OTHER_ADDRESS, prefixlen=24)
            host.link("set", index=other, state="up")
            for n, name in ((2, self.c1), (3, self.c2)):
                ctr = NetNS(name, flags=os.O_CREAT)
                host.link("add", ifname=f"veth{n}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": name})
                veth = host.link_lookup(ifname=f"veth{n}")[0]
                host.link("set", index=veth, master=br, state="up")
                eth = ctr.link_lookup(ifname="eth0")[0]
                ctr.addr("add", index=eth, address=f"{BRIDGE_NET}.{n}", prefixlen=24)
                ctr.link("set", index=eth, state="up")
                ctr.link("set", index=ctr.link_lookup(ifname="lo")[0], state="up")
                ctr.route("add", dst="0.0.0.0/0", gateway=f"{BRIDGE_NET}.1")
                ctr.close()
        finally:
            host.close()
        self.run(self.host, "import pathlib; pathlib.Path('/proc/sys/net/ipv4/ip_forward').write_text('1')")
        server = self.popen(self.c1, SERVER)
        assert server.stdout.readline().strip() == "ready"

    def popen(self, ns: str, *parts: str) -> subprocess.Popen:
        code = "\n".join(textwrap.dedent(part) for part in parts)
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", code],
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.procs.append(proc)
        return proc

    def run(self, ns: str, *parts: str, check: bool = True) -> subprocess.CompletedProcess:
        code = "\n".join(textwrap.dedent(part) for part in parts)
        done = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", code],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def close(self):
        from pyroute2 import netns

        for proc in self.procs:
            proc.kill()
            proc.wait()
        for ns in (self.host, self.c1, self.c2):
            try:
                netns.remove(ns)
            except OSError:
                pass


@pytest.fixture
def lab(host_netns):
    before = host_ruleset(host_netns)
    made = Lab()
    try:
        made.build()
        yield made
    finally:
        made.close()
        assert host_ruleset(host_netns) == before, "the machine's own firewall changed"


CLIENT = """
import socket
def tcp(host, port):
    with socket.create_connection((host, port), timeout=5) as s:
        return s.makefile().readline().strip()
def udp(host, port, text):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    s.sendto(text.encode(), (host, port)); return s.recvfrom(2048)[0].decode()
"""

PUBLISH = """
import json, os, sys, time
from builder.network import ports, firewall
TABLE = "pydock-test"
doc = {"Id": "net-ports-" + "a" * 54, "Config": {"ExposedPorts": {"8080/tcp": {}, "5353/udp": {}, "9/tcp": {}}},
       "HostConfig": {"NetworkMode": "bridge", "PublishAllPorts": False, "PortBindings": {
           "8080/tcp": [{"HostIp": "", "HostPort": "18080"}, {"HostIp": "127.0.0.1", "HostPort": ""}],
           "5353/udp": [{"HostIp": "", "HostPort": "15353"}]}}}
"""


def test_published_ports_reach_the_container_from_everywhere(lab):
    out = lab.run(lab.host, PUBLISH, CLIENT, f"""
        published, pid = ports.publish(TABLE, doc, "{BRIDGE_NET}.2", "{BRIDGE_NET}.0/24")
        random_port = int(published["8080/tcp"][-1]["HostPort"])
        result = {{"ports": published, "random": random_port, "range": ports.ephemeral_range(),
                  "loopback": tcp("127.0.0.1", 18080), "other": tcp("{OTHER_ADDRESS}", 18080),
                  "random_loopback": tcp("127.0.0.1", random_port),
                  "udp": udp("127.0.0.1", 15353, "ping"), "udp_other": udp("{OTHER_ADDRESS}", 15353, "pong"),
                  "rules": len([r for r in firewall.rules(TABLE, "publish") if r.get("comment") == doc["Id"]])}}
        try:
            ports.check_free({{"1/tcp": [{{"HostIp": "", "HostPort": "18080"}}]}})
        except ports.PublishError as e:
            result["in_use"] = str(e)
        ports.unpublish(TABLE, doc["Id"], pid)
        ports.check_free({{"1/tcp": [{{"HostIp": "", "HostPort": "18080"}}], "2/udp": [{{"HostIp": "", "HostPort": "15353"}}]}})
        result["rules_after"] = len(firewall.rules(TABLE, "publish"))
        print(json.dumps(result))
    """)
    result = json.loads(out.stdout)
    assert result["ports"]["8080/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "18080"},
                                           {"HostIp": "::", "HostPort": "18080"},  # as docker, where IPv6 works
                                           {"HostIp": "127.0.0.1", "HostPort": str(result["random"])}]
    assert result["ports"]["9/tcp"] is None  # exposed, not published
    assert result["range"][0] <= result["random"] <= result["range"][1]
    # the proxy carries loopback (the client is seen from the bridge's address); DNAT keeps the source
    assert result["loopback"] == f"hello {BRIDGE_NET}.1"
    assert result["random_loopback"] == f"hello {BRIDGE_NET}.1"
    assert result["other"] == f"hello {OTHER_ADDRESS}"
    assert result["udp"] == "echo ping" and result["udp_other"] == "echo pong"
    assert result["rules"] == 2  # 18080/tcp and 15353/udp on every address; 127.0.0.1 is the proxy's alone
    assert result["in_use"] == "Bind for 0.0.0.0:18080 failed: port is already allocated"
    assert result["rules_after"] == 0


def test_hairpin_from_a_container_on_the_same_bridge(lab):
    holder = lab.popen(lab.host, PUBLISH, f"""
ports.publish(TABLE, doc, "{BRIDGE_NET}.2", "{BRIDGE_NET}.0/24")
print("published", flush=True)
time.sleep(600)
""")
    assert holder.stdout.readline().strip() == "published"
    out = lab.run(lab.c2, CLIENT, f"""
        print(tcp("{OTHER_ADDRESS}", 18080)); print(tcp("{BRIDGE_NET}.1", 18080)); print(udp("{OTHER_ADDRESS}", 15353, "x"))
    """)
    assert out.stdout.split("\n")[:3] == [f"hello {BRIDGE_NET}.1"] * 2 + ["echo x"]


def test_a_port_in_use_fails_whole_and_a_killed_owner_frees_everything(lab):
    holder = lab.popen(lab.host, PUBLISH, f"""
ports.publish(TABLE, doc, "{BRIDGE_NET}.2", "{BRIDGE_NET}.0/24")
print("published", flush=True)
time.sleep(600)
""")
    assert holder.stdout.readline().strip() == "published"
    out = lab.run(lab.host, PUBLISH, f"""
        doc["Id"] = "net-ports-" + "b" * 54
        doc["HostConfig"]["PortBindings"] = {{"7/tcp": [{{"HostIp": "", "HostPort": "17007"}}],
                                              "8080/tcp": [{{"HostIp": "", "HostPort": "18080"}}]}}
        try:
            ports.publish(TABLE, doc, "{BRIDGE_NET}.2", "{BRIDGE_NET}.0/24")
        except ports.PublishError as e:
            print(e)
        print(sorted(r["comment"] for r in firewall.rules(TABLE, "publish")))
        ports.check_free({{"7/tcp": [{{"HostIp": "", "HostPort": "17007"}}]}})  # the first port was let go
    """)
    lines = out.stdout.splitlines()
    assert lines[0] == "Bind for 0.0.0.0:18080 failed: port is already allocated"
    assert lines[1] == repr(["net-ports-" + "a" * 54] * 2)
    holder.kill()  # SIGKILL: its proxy dies with it (PDEATHSIG); the rules wait for a reconcile
    holder.wait()
    out = lab.run(lab.host, """
        import time
        from builder.network import ports, firewall
        TABLE = "pydock-test"
        for _ in range(100):
            try:
                ports.check_free({"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]}); break
            except ports.PublishError:
                time.sleep(0.05)
        before = len(firewall.rules(TABLE, "publish"))
        ports.remove_stale_rules(TABLE, {"net-ports-" + "a" * 54})
        print(before, len(firewall.rules(TABLE, "publish")))
        ports.check_free({"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]})
    """)
    assert out.stdout.split() == ["2", "0"]
