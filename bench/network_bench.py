#!/usr/bin/env python3
"""TCP throughput through a published port, host to container (1 GB per transfer), pydock's publishing
against docker's, in a network namespace made for the benchmark (the machine's own interfaces and
firewall are never touched).

Inside that namespace: an "uplink" veth whose address stands for the host's own (10.240.0.1), a dockerd
(scripts/engines.sh with DOCKER_NETWORKING=bridge: docker0, its iptables rules, docker-proxy) running a
busybox container published with -p, and for pydock `pydock run -d -p` of the same busybox sink on pydock's
default bridge. The sink is the same on both sides
(the host's python, read-only, reading 1 MB at a time). Three paths each, alternated round by round:

  direct     to the container's address (no publishing: the ceiling)
  loopback   to 127.0.0.1:HOSTPORT (pydock: its splice proxy; docker: docker-proxy)
  address    to 10.240.0.1:HOSTPORT (pydock: DNAT in its nft table; docker: DNAT in its iptables chains)

    python3 bench/network_bench.py [-n 3] [--size-mb 1024] [--keep]

Needs root, `bash scripts/engines.sh install` and Debian's nftables. Prints MB/s medians and the ratio
pydock/docker per path (above 1: pydock is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchkit import busybox_tar, clean_env, load_average, start_engines, stop_engines

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DOCKER = "/usr/bin/docker"
IMAGE = "busybox:publishbench"
UPLINK = "10.240.0.1"
# the sink: the host's python (mounted read-only) reading 1 MB at a time, so the path is measured, not
# the reader (busybox `cat` tops out near the rates measured here)
SINK_MOUNTS = ["-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro"]
SINK = ["/usr/bin/python3", "-S", "-c",
        "import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 5001))\ns.listen(8)\nbuf = bytearray(1 << 20)\n"
        "while True:\n    c, _ = s.accept()\n    while c.recv_into(buf):\n        pass\n    c.close()"]
PYDOCK_PORT, DOCKER_PORT = 15001, 15002


def transfer(address: tuple[str, int], size: int) -> float:
    """Send size bytes, half-close, wait for the sink to close: MB/s."""
    chunk = memoryview(b"\0" * (1 << 20))
    deadline = time.monotonic() + 10
    while True:  # the sink relistens after each connection: a refused or reset one is retried
        try:
            s = socket.create_connection(address, timeout=10)
            start = time.perf_counter()
            left = size
            while left:
                left -= s.send(chunk[:min(left, len(chunk))])
            s.shutdown(socket.SHUT_WR)
            s.recv(1)
            elapsed = time.perf_counter() - start
            s.close()
            return size / elapsed / 1e6
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def netns(name: str):
    from pyroute2 import NetNS

    return NetNS(name, flags=os.O_CREAT)


def start_pydock_side(pydock: list[str], rootfs_tar: Path) -> tuple[str, str]:
    """The sink in a pydock container on the default bridge, published with -p: (id, its address)."""
    env = clean_env()
    subprocess.run(pydock + ["import", str(rootfs_tar), IMAGE], env=env, check=True, stdout=subprocess.DEVNULL)
    cid = subprocess.run(pydock + ["run", "-d", "-p", f"{PYDOCK_PORT}:5001", *SINK_MOUNTS, IMAGE, *SINK], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    info = json.loads(subprocess.run(pydock + ["inspect", cid], env=env, check=True, capture_output=True,
                                     text=True).stdout)[0]
    return cid, info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]


def inside(args) -> int:
    """Runs inside the benchmark's namespace (named args.tag)."""
    tag = args.tag
    me = netns(f"net-bench-{tag}")
    me.link("set", index=me.link_lookup(ifname="lo")[0], state="up")
    me.link("add", ifname="uplink0", kind="veth", peer={"ifname": "uplink1"})
    for name in ("uplink0", "uplink1"):
        me.link("set", index=me.link_lookup(ifname=name)[0], state="up")
    me.addr("add", index=me.link_lookup(ifname="uplink0")[0], address=UPLINK, prefixlen=24)
    me.close()
    scratch = Path(tempfile.mkdtemp(prefix="nb.", dir="/var/tmp"))
    env = dict(os.environ, DOCKER_NETWORKING="bridge",
               PYRUNC=os.environ.get("PYRUNC", str(Path(sys.executable).parent / "pyrunc")))
    pydock = [args.pydock, "--root", str(scratch / "pydock")]
    pydock_id = None
    try:
        rootfs_tar = busybox_tar(scratch / "busybox.tar")
        pydock_id, pydock_ip = start_pydock_side(pydock, rootfs_tar)
        start_engines(scratch, env, "docker")
        docker = [DOCKER, "-H", env.get("DOCKER_HOST", f"unix://{scratch}/docker/docker.sock")]
        subprocess.run(docker + ["import", str(rootfs_tar), IMAGE], env=env, check=True, stdout=subprocess.DEVNULL)
        cid = subprocess.run(docker + ["run", "-d", "-p", f"{DOCKER_PORT}:5001", *SINK_MOUNTS, IMAGE, *SINK], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        info = json.loads(subprocess.run(docker + ["inspect", cid], env=env, check=True, capture_output=True,
                                         text=True).stdout)[0]
        docker_ip = info["NetworkSettings"]["IPAddress"]
        paths = {"direct": {"pydock": (pydock_ip, 5001), "docker": (docker_ip, 5001)},
                 "loopback": {"pydock": ("127.0.0.1", PYDOCK_PORT), "docker": ("127.0.0.1", DOCKER_PORT)},
                 "address": {"pydock": (UPLINK, PYDOCK_PORT), "docker": (UPLINK, DOCKER_PORT)}}
        size = args.size_mb << 20
        print(f"load average: {load_average()}; {args.size_mb} MB per transfer, {args.n} rounds")
        results = {p: {"pydock": [], "docker": []} for p in paths}
        for i in range(args.n + 1):
            for path, targets in paths.items():
                for engine in (("pydock", "docker") if i % 2 else ("docker", "pydock")):
                    rate = transfer(targets[engine], size)
                    if i:  # the first round warms up
                        results[path][engine].append(rate)
        for path, rates in results.items():
            ours, theirs = statistics.median(rates["pydock"]), statistics.median(rates["docker"])
            print(f"{path:<9} pydock {ours:8.0f} MB/s   docker {theirs:8.0f} MB/s   ratio {ours / theirs:5.2f}")
        print(f"load average: {load_average()}")
    finally:
        if pydock_id:
            subprocess.run(pydock + ["rm", "-f", pydock_id], stdout=subprocess.DEVNULL)
        stop_engines(scratch, env)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3, help="measured rounds (after one warm-up round)")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--pydock", default=str(Path(sys.executable).parent / "pydock"))
    ap.add_argument("--tag", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("network_bench.py needs root")
    if args.tag:
        return inside(args)
    from pyroute2 import netns as named

    tag = uuid.uuid4().hex[:6]
    netns(f"net-bench-{tag}").close()
    try:
        return subprocess.run(["nsenter", f"--net=/run/netns/net-bench-{tag}", sys.executable, *sys.argv,
                               "--tag", tag]).returncode
    finally:
        for name in (f"net-bench-{tag}",):
            try:
                named.remove(name)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
