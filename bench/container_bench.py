#!/usr/bin/env python3
"""pydock's container lifecycle against docker's and podman's, on the same busybox image.

Starts a dockerd and podman's configuration on a scratch root through scripts/engines.sh (both running
runc), imports one busybox tarball into docker, podman and a
scratch pydock store, then alternates the three in every round and prints medians, p90 and the ratios
pydock/docker and pydock/podman for:

- `run --rm --network none IMAGE true`
- `run -d --network none IMAGE sleep 3600`, then `exec C true`, then `rm -f C` (timed as one cycle)
- `run -d` of a shell that leaves on SIGTERM, then `stop C`, then `rm C` (one cycle)
- `exec C true` alone, into a long-running container of each

Needs root and `bash scripts/engines.sh install`. Measure a regular install (see bench/README.md):

    ~/bench-venv/bin/python bench/container_bench.py [--pydock PATH] [-n 15] [--keep]
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

from benchkit import busybox_tar, clean_env, load_average, start_engines, stop_engines

DOCKER = "/usr/bin/docker"
PODMAN = "/usr/bin/podman"
IMAGE = "busybox:bench"
STOPPABLE = 'trap "exit 0" TERM; sleep 3600 & wait'
RM_NOW = {PODMAN: ["-t", "0"]}  # podman's rm -f waits 10 s for a SIGTERM first; docker and pydock kill at once


def run(cmd: list[str], env: dict) -> str:
    return subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True).stdout.strip()


def timed(cmds: list[list[str]], env: dict) -> float:
    """Wall time of the commands one after another (a later one may use an earlier one's output as {})."""
    start = time.perf_counter()
    out = ""
    for cmd in cmds:
        out = run([out if arg == "{}" else arg for arg in cmd], env) or out
    return time.perf_counter() - start


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]


def report(name: str, times: dict[str, list[float]]) -> None:
    med = {tool: statistics.median(xs) for tool, xs in times.items()}
    cells = "   ".join(f"{tool} {med[tool] * 1000:7.1f} ms (p90 {p90(xs) * 1000:7.1f})" for tool, xs in times.items())
    ratios = "   ".join(f"pydock/{tool} {med['pydock'] / med[tool]:5.2f}" for tool in times if tool != "pydock")
    print(f"{name:<34} {cells}   {ratios}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pydock", default=str(Path(sys.executable).parent / "pydock"))
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--keep", action="store_true", help="leave the scratch dir (daemon stopped all the same)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("container_bench.py needs root")
    scratch = Path(tempfile.mkdtemp(prefix="containers-bench.", dir="/tmp"))
    env = clean_env()
    start_engines(scratch, env, "docker", "podman")
    tools = {"pydock": [args.pydock, "--root", str(scratch / "pydock")],
             "docker": [DOCKER, "-H", env["DOCKER_HOST"]],
             # podman's default crun refuses cgroup v1 hybrid hosts: runc, docker's runtime, for both
             "podman": [PODMAN, "--runtime", shutil.which("runc") or "/usr/sbin/runc"]}
    long_running: dict[str, str] = {}
    try:
        tarball = busybox_tar(scratch / "busybox.tar")
        for tool, cli in tools.items():
            run(cli + ["import", str(tarball), IMAGE], env)
        print(f"load average: {load_average()}; pydock: {args.pydock}; n={args.n}")

        cases = {
            "run --rm --network none true": lambda cli: [cli + ["run", "--rm", "--network", "none", IMAGE, "true"]],
            "run -d + exec true + rm -f": lambda cli: [
                cli + ["run", "-d", "--network", "none", IMAGE, "sleep", "3600"],
                cli + ["exec", "{}", "true"], cli + ["rm", "-f", *RM_NOW.get(cli[0], []), "{}"]],
            # PID 1 a shell that leaves on SIGTERM (a plain `sleep` as PID 1 ignores it: stop would wait 10 s)
            "run -d + stop + rm": lambda cli: [
                cli + ["run", "-d", "--network", "none", IMAGE, "sh", "-c", STOPPABLE],
                cli + ["stop", "{}"], cli + ["rm", "{}"]],
        }
        for name, make in cases.items():
            times: dict[str, list[float]] = {tool: [] for tool in tools}
            for i in range(args.n + 2):
                for tool, cli in tools.items():
                    t = timed(make(cli), env)
                    if i >= 2:  # two warm-up rounds
                        times[tool].append(t)
            report(name, times)

        for tool, cli in tools.items():
            long_running[tool] = run(cli + ["run", "-d", "--network", "none", IMAGE, "sleep", "3600"], env)
        times = {tool: [] for tool in tools}
        for i in range(args.n + 2):
            for tool, cli in tools.items():
                t = timed([cli + ["exec", long_running[tool], "true"]], env)
                if i >= 2:
                    times[tool].append(t)
        report("exec true", times)
        print(f"load average: {load_average()}")
    finally:
        for tool, cid in long_running.items():
            subprocess.run(tools[tool] + ["rm", "-f", cid], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        stop_engines(scratch, env)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
