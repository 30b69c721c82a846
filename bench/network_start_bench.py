#!/usr/bin/env python3
"""Container start with bridge networking, `run --rm IMAGE true`: pydock against docker (dockerd with its
default bridge and iptables) and podman (its default CNI bridge network), with --network none beside each
as the baseline, so the networking's own cost shows. Every engine runs inside one network namespace made
for the benchmark (nsenter --net=): their bridges, veths and firewall rules never reach the host's.

    python3 bench/network_start_bench.py [-n 15] [--keep]     # measure a regular install (bench/README.md)

Needs root, the engines (`bash scripts/engines.sh install`) and nftables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import busybox_tar, clean_env, load_average, timed

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from builder.network import netns  # noqa: E402 - the same namespace files pydock makes

DOCKER = "/usr/bin/docker"
PODMAN = "/usr/bin/podman"
IMAGE = "busybox:bench"


def start_dockerd(ns: str, d: Path, env: dict) -> tuple[list[str], subprocess.Popen]:
    """A dockerd with docker's default networking (docker0, iptables NAT), inside the bench's netns."""
    (d / "data").mkdir(parents=True)
    (d / "cli").mkdir()
    (d / "daemon.json").write_text("{}")
    (d / "cli" / "config.json").write_text("{}")
    sock = f"unix://{d}/docker.sock"
    daemon = subprocess.Popen(["nsenter", f"--net={ns}", "/usr/sbin/dockerd", "--config-file", str(d / "daemon.json"),
                               "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
                               "--pidfile", str(d / "dockerd.pid"), "-H", sock, "--userland-proxy=false"],
                              stdin=subprocess.DEVNULL, stdout=open(d / "dockerd.log", "w"), stderr=subprocess.STDOUT,
                              env=env, start_new_session=True)
    client = ["nsenter", f"--net={ns}", DOCKER, "-H", sock]
    deadline = time.monotonic() + 60
    while subprocess.run(client + ["version"], env=env, capture_output=True).returncode != 0:
        if time.monotonic() > deadline or daemon.poll() is not None:
            raise SystemExit(f"dockerd did not start: see {d / 'dockerd.log'}")
        time.sleep(0.2)
    return client, daemon


def podman_command(ns: str, d: Path, env: dict) -> list[str]:
    """podman on scratch storage; its containers get our own hard limits (raising them needs a capability
    this machine may lack, as scripts/engines.sh explains), runc (Debian's crun refuses a cgroup v1 hybrid
    host), and its default CNI bridge network."""
    import resource

    (d / "net").mkdir(parents=True)
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1048576)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    (d / "containers.conf").write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", '
                                       f'"nproc={nproc}:{nproc}"]\n')
    env["CONTAINERS_CONF"] = str(d / "containers.conf")
    return ["nsenter", f"--net={ns}", PODMAN, "--runtime", "runc", "--root", str(d / "storage"),
            "--runroot", str(d / "run"), "--tmpdir", str(d / "tmp"), "--network-config-dir", str(d / "net"), "--cgroup-manager", "cgroupfs",
            "--events-backend", "file"]


def measure(label: str, commands: dict[str, list[str]], n: int, env: dict) -> dict[str, float]:
    """Alternate the engines n times (after one warm-up round); median seconds per engine."""
    runs = {name: [] for name in commands}
    for i in range(n + 1):
        for name, cmd in commands.items():
            t = timed(cmd, env)
            if i:
                runs[name].append(t)
    medians = {name: statistics.median(ts) for name, ts in runs.items()}
    print(f"{label}: " + "   ".join(f"{name} {m * 1000:7.1f} ms" for name, m in medians.items()), flush=True)
    return medians


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--keep", action="store_true", help="leave the scratch dir")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("network_start_bench.py needs root")
    env = clean_env()
    scratch = Path(tempfile.mkdtemp(prefix="network-start-bench.", dir="/var/tmp"))
    ns = str(scratch / "netns")
    netns.create(ns)
    subprocess.run(["nsenter", f"--net={ns}", "ip", "link", "set", "lo", "up"], check=True)
    tar = busybox_tar(scratch / "busybox.tar")
    pydock = ["nsenter", f"--net={ns}", str(Path(sys.executable).parent / "pydock"), "--root", str(scratch / "pydock")]
    podman = podman_command(ns, scratch / "podman", env)
    docker, daemon = start_dockerd(ns, scratch / "docker", env)
    try:
        for cmd in (pydock, docker, podman):
            subprocess.run(cmd + ["import", str(tar), IMAGE], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"load average: {load_average()}; n={args.n}")
        run = ["run", "--rm"]
        bridge = measure("run --rm true, bridge", {"pydock": pydock + run + [IMAGE, "true"],
                                                    "docker": docker + run + [IMAGE, "true"],
                                                    "podman": podman + run + ["--network", "bridge", IMAGE, "true"]},
                         args.n, env)
        none = measure("run --rm true, none  ", {"pydock": pydock + run + ["--network", "none", IMAGE, "true"],
                                                  "docker": docker + run + ["--network", "none", IMAGE, "true"],
                                                  "podman": podman + run + ["--network", "none", IMAGE, "true"]},
                       args.n, env)
        for other in ("docker", "podman"):
            print(f"pydock/{other} with bridge: {bridge['pydock'] / bridge[other]:.2f}; "
                  f"bridge's own cost: pydock {(bridge['pydock'] - none['pydock']) * 1000:.0f} ms, "
                  f"{other} {(bridge[other] - none[other]) * 1000:.0f} ms")
        print(f"load average: {load_average()}")
    finally:
        subprocess.run(docker + ["rm", "-f", *subprocess.run(docker + ["ps", "-aq"], env=env, capture_output=True,
                                                               text=True).stdout.split()],
                       env=env, capture_output=True)
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        subprocess.run(podman + ["system", "reset", "-f"], env=env, capture_output=True)
        subprocess.run(["umount", "-R", str(scratch / "docker" / "exec")], capture_output=True)
        netns.remove(ns)
        if not args.keep:
            subprocess.run(["umount", "-lR", str(scratch / "docker" / "data")], capture_output=True)
            subprocess.run(["umount", "-lR", str(scratch / "podman" / "storage")], capture_output=True)
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
