"""Several pydock stores (`--root`) in one network namespace: each has its own default bridge on its own
pool and its own nftables table, so one store's containers never break another's published ports; a
store's default bridge goes with its last container, so many stores in turn never run out of pools; a
link that merely has a bridge's name is refused. The module runs in a netns of its own."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from builder_support import Pydock
from support import own_netns, wait_for

pytestmark = pytest.mark.root

OTHER_ADDRESS = "10.234.0.1"
# httpd answers with the address it saw the client come from (a CGI): the kernel's DNAT keeps the client's
# own address, the proxy shows the bridge's gateway
HTTPD = ["sh", "-c", "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
                     "echo \"$REMOTE_ADDR\"\\n' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && "
                     "exec httpd -f -p 80 -h /www"]


@pytest.fixture(scope="module")
def netns_with_address():
    """The module's netns, with OTHER_ADDRESS on a veth: "another address of the host"."""
    from pyroute2 import IPRoute

    with own_netns():
        with IPRoute() as ipr:
            ipr.link("add", ifname="nsslink0", kind="veth", peer={"ifname": "nsslink1"})
            for name in ("nsslink0", "nsslink1"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
            ipr.addr("add", index=ipr.link_lookup(ifname="nsslink0")[0], address=OTHER_ADDRESS, prefixlen=24)
        yield


@pytest.fixture
def make_store(netns_with_address, tmp_path, busybox_tar):
    made = []

    def make(name: str) -> Pydock:
        p = Pydock(tmp_path / name)
        p("import", busybox_tar, "busybox:latest", check=True)
        made.append(p)
        return p

    yield make
    for p in made:
        for cid in p("ps", "-aq", "--no-trunc").stdout.split():
            p("rm", "-f", cid)


def peer(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/cgi-bin/peer", timeout=5) as r:
        return r.read().decode().strip().strip("[]").removeprefix("::ffff:")  # httpd shows IPv4 mapped


def answers(host: str, port: int) -> bool:
    try:
        return bool(peer(host, port))
    except OSError:
        return False


def links() -> str:
    return subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout


def pydock_tables() -> list[str]:
    out = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [t["table"]["name"] for t in json.loads(out)["nftables"] if "table" in t
            and t["table"]["name"].startswith("pydock")]


def default_network(p: Pydock) -> dict:
    return json.loads(p("network", "inspect", "bridge", check=True).stdout)[0]


def test_two_stores_publish_ports_side_by_side(make_store):
    a, b = make_store("a"), make_store("b")
    a("run", "-d", "--name", "web-a", "-p", "18091:80", "busybox", *HTTPD, check=True)
    assert wait_for(lambda: answers(OTHER_ADDRESS, 18091), timeout=15)
    b("run", "-d", "--name", "web-b", "-p", "18092:80", "busybox", *HTTPD, check=True)
    assert wait_for(lambda: answers(OTHER_ADDRESS, 18092), timeout=15)
    # a's rules survived b's: the kernel still DNATs to a's container (the client's own address arrives)
    for port in (18091, 18092):
        assert peer(OTHER_ADDRESS, port) == OTHER_ADDRESS
        assert answers("127.0.0.1", port)
    nets = [default_network(p) for p in (a, b)]
    subnets = [n["IPAM"]["Config"][0]["Subnet"] for n in nets]
    bridges = [n["Options"]["com.docker.network.bridge.name"] for n in nets]
    assert subnets[0] != subnets[1] and bridges[0] != bridges[1]
    assert len(pydock_tables()) == 2
    b("rm", "-f", "web-b", check=True)  # b's bridge and table go; a's stay and keep working
    assert bridges[1] not in links() and bridges[0] in links()
    assert peer(OTHER_ADDRESS, 18091) == OTHER_ADDRESS
    a("rm", "-f", "web-a", check=True)
    assert bridges[0] not in links() and pydock_tables() == []


def test_networks_of_two_stores_are_isolated(make_store):
    """As two networks of one store: no forwarding between them (default and user-defined ones alike)."""
    a, b = make_store("iso-a"), make_store("iso-b")
    a("run", "-d", "--name", "held", "busybox", "sleep", "60", check=True)
    a_ip = a("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "held",
             check=True).stdout.strip()
    assert a("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", a_ip).returncode == 0
    b("network", "create", "iso-net", check=True)
    for network in ("bridge", "iso-net"):
        out = b("run", "--rm", "--network", network, "busybox", "sh", "-c",
                "ping -c 1 -W 2 $(ip route | awk '/default/ {print $3}') >/dev/null && "
                f"! ping -c 1 -W 2 {a_ip}")
        assert out.returncode == 0, (network, out.stdout, out.stderr)
    a("rm", "-f", "held", check=True)
    b("network", "rm", "iso-net", check=True)


def test_many_stores_in_turn_do_not_exhaust_the_pools(make_store):
    """More stores than the 15 default /16 pools, each running and removing a container in turn."""
    stores = [make_store(f"s{n}") for n in range(20)]
    for n, p in enumerate(stores):
        if n % 2:
            p("run", "--rm", "busybox", "true", check=True)
        else:
            p("run", "-d", "--name", "held", "busybox", "sleep", "60", check=True)
            p("stop", "-t", "0", "held", check=True)
            p("rm", "held", check=True)
    assert "pydock-" not in links()
    assert pydock_tables() == []


@pytest.mark.parametrize("kind", ["veth", "bridge with another address"])
def test_a_link_with_the_bridges_name_that_is_not_ours_is_refused(make_store, kind):
    from pyroute2 import IPRoute

    p = make_store("taken-" + kind.split()[0])
    name = default_network(p)["Options"]["com.docker.network.bridge.name"]
    with IPRoute() as ipr:
        if kind == "veth":
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": "nsstaken1"})
            expected = f"cannot use {name} as a network's bridge: a link of that name exists and is not a bridge (veth)"
        else:
            ipr.link("add", ifname=name, kind="bridge")
            ipr.addr("add", index=ipr.link_lookup(ifname=name)[0], address="10.77.0.1", prefixlen=24)
            expected = f"cannot use bridge {name}: it has 10.77.0.1/24, not the network's gateway "
    try:
        out = p("run", "--rm", "busybox", "true")
        assert out.returncode == 125 and len(out.stderr.strip().splitlines()) == 1
        assert out.stderr.startswith(f"pydock: error: {expected}"), out.stderr
        assert p("ps", "-aq").stdout == ""
    finally:
        with IPRoute() as ipr:
            ipr.link("del", index=ipr.link_lookup(ifname=name)[0])


def test_a_bridge_left_without_an_address_is_taken_over(make_store):
    """A run killed between making the bridge and addressing it leaves a bare bridge: the next run uses it."""
    from pyroute2 import IPRoute

    p = make_store("bare")
    name = default_network(p)["Options"]["com.docker.network.bridge.name"]
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="bridge")
    p("run", "-d", "--name", "held", "busybox", "sleep", "60", check=True)
    gateway = default_network(p)["IPAM"]["Config"][0]["Gateway"]
    assert f"inet {gateway}/" in subprocess.run(["ip", "-4", "addr", "show", name], capture_output=True,
                                                 text=True, check=True).stdout
    p("rm", "-f", "held", check=True)
    assert name not in links()


def test_a_store_made_with_the_shared_bridge_name_takes_its_own(make_store):
    """Stores made before bridges were per store recorded the shared pydock0: the next start renames it."""
    p = make_store("older")
    net = default_network(p)
    path = p.root / "networks" / net["Id"] / "network.json"
    doc = json.loads(path.read_text())
    doc["Options"]["com.docker.network.bridge.name"] = "pydock0"
    path.write_text(json.dumps(doc))
    p("run", "-d", "--name", "held", "busybox", "sleep", "60", check=True)
    name = default_network(p)["Options"]["com.docker.network.bridge.name"]
    assert name == net["Options"]["com.docker.network.bridge.name"] and name in links()
    assert "pydock0" not in links()
    p("rm", "-f", "held", check=True)
    assert name not in links()
