#!/usr/bin/env python3
"""`docker run --runtime pyrunc` against `docker run --runtime runc`, end to end, on one dockerd.

Starts a dockerd on a scratch root through scripts/engines.sh (with pyrunc added as a runtime), imports a
busybox image made from Debian's busybox-static, then alternates the two runtimes N times each on the same
image and command and prints medians, p90 and the ratio pyrunc/runc. Also times `docker exec` into a running
container of each runtime. Needs root and `bash scripts/engines.sh install`.

    python3 bench/engine_bench.py [--pyrunc PATH] [-n 20] [--keep]

Measure a regular install (see bench/README.md): an editable install and missing .pyc files slow pyrunc.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchkit import busybox_tar, load_average, start_engines, stop_engines, timed

DOCKER = "/usr/bin/docker"
IMAGE = "busybox:bench"


def summary(name: str, ours: list[float], theirs: list[float]) -> str:
    def p90(xs):
        return sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]

    mo, mt = statistics.median(ours), statistics.median(theirs)
    return (f"{name:<28} pyrunc {mo * 1000:8.1f} ms (p90 {p90(ours) * 1000:7.1f})   "
            f"runc {mt * 1000:8.1f} ms (p90 {p90(theirs) * 1000:7.1f})   ratio {mo / mt:5.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyrunc", default=str(Path(sys.executable).parent / "pyrunc"))
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="leave the scratch dir (daemon stopped all the same)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("engine_bench.py needs root")
    scratch = Path(tempfile.mkdtemp(prefix="engine-bench.", dir="/var/tmp"))
    env = dict(os.environ, PYRUNC=os.path.abspath(args.pyrunc))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start_engines(scratch, env, "docker")
    docker = [DOCKER, "-H", env.get("DOCKER_HOST", f"unix://{scratch}/docker/docker.sock")]
    try:
        subprocess.run(docker + ["import", str(busybox_tar(scratch / "busybox.tar")), IMAGE], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"load average: {load_average()}; pyrunc: {args.pyrunc}; n={args.n}")
        runs = {"pyrunc": [], "runc": []}
        for i in range(args.n + 2):
            for runtime in ("pyrunc", "runc"):
                t = timed(docker + ["run", "--rm", "--runtime", runtime, "--network", "none", IMAGE, "true"], env)
                if i >= 2:  # two warm-up rounds
                    runs[runtime].append(t)
        print(summary("docker run --rm true", runs["pyrunc"], runs["runc"]))

        execs = {"pyrunc": [], "runc": []}
        for runtime in ("pyrunc", "runc"):
            subprocess.run(docker + ["run", "-d", "--name", f"bench-{runtime}", "--runtime", runtime,
                                     "--network", "none", IMAGE, "sleep", "3600"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        for i in range(args.n + 2):
            for runtime in ("pyrunc", "runc"):
                t = timed(docker + ["exec", f"bench-{runtime}", "true"], env)
                if i >= 2:
                    execs[runtime].append(t)
        print(summary("docker exec true", execs["pyrunc"], execs["runc"]))
        print(f"load average: {load_average()}")
    finally:
        stop_engines(scratch, env)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
