#!/usr/bin/env python3
"""`pydock push` / `pydock pull` against `skopeo copy` to and from the same registry on loopback.

Makes an OCI layout of a three-layer image (each layer a gzip tar of one file of random bytes, ~100 MB in
all by default), loads it into a pydock store, and starts Debian's docker-registry on 127.0.0.1. Then, N
rounds, the contenders alternating within each round:
  push: `pydock push HOST/pydock:rI` against `skopeo copy oci:LAYOUT docker://HOST/skopeo:rI`, each to a
        registry of its own started for that push (empty: nothing is mounted or skipped);
  pull: `pydock pull HOST/image` into an empty store against `skopeo copy docker://HOST/image oci:EMPTY`.
Prints medians of wall and CPU seconds (the process tree's), ratios pydock/skopeo (below 1.0 pydock is
faster) and each one's peak RSS, also for a small image (3 x 1 MB): a streamed transfer's peak does not
grow with its layers.

    python3 bench/registry_bench.py [--pydock PATH] [-n 5] [--mb 100]

Needs skopeo and docker-registry (scripts/setup.sh installs them).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from benchkit import clean_env, load_average
from support import Registry  # the tests' loopback registry (docker-registry serve on a free port)

REPO = Path(__file__).resolve().parent.parent
SKOPEO = shutil.which("skopeo")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layout(dest: Path, layer_bytes: int, layers: int = 3) -> Path:
    """An OCI layout holding one image tagged `latest`: `layers` gzip layers of random data."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest[7:]).write_bytes(data)
        return digest

    descs, diff_ids = [], []
    for i in range(layers):
        tar_data = io.BytesIO()
        with tarfile.open(fileobj=tar_data, mode="w") as tar:
            info = tarfile.TarInfo(f"layer{i}.bin")
            info.size = layer_bytes
            tar.addfile(info, io.BytesIO(os.urandom(layer_bytes)))
        plain = tar_data.getvalue()
        packed = gzip.compress(plain, compresslevel=1, mtime=0)
        diff_ids.append(_sha(plain))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(packed),
                      "size": len(packed)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": descs}).encode()
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
         "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    return dest


# Runs the command from a small interpreter of its own and reports it: a child's peak RSS counts what it
# held before exec, which from this script (holding the layers it made) would hide the contender's own.
_MEASURE = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the process and what it waited for, peak RSS in MiB of the largest of them)."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _MEASURE, *cmd], env=env, capture_output=True,
                          text=True)
    wall, cpu, rss, code = proc.stdout.split()[-4:]
    if proc.returncode != 0 or code != "0":
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr}")
    return float(wall), float(cpu), int(rss) // 1024


class Contenders:
    def __init__(self, pydock: list[str], work: Path, layout: Path):
        self.pydock, self.work, self.layout = pydock, work, layout
        self.env = {**clean_env(), "DOCKER_CONFIG": str(work / "docker-config")}
        self.store = work / "store"
        loaded = subprocess.run([*pydock, "--root", str(self.store), "load", "-i", str(layout)], env=self.env,
                                check=True, capture_output=True, text=True).stdout
        self.image = loaded.rsplit("Loaded image: ", 1)[1].split()[0]
        self.count = 0

    def run_pydock(self, *args, root: Path | None = None):
        subprocess.run([*self.pydock, "--root", str(root or self.store), *map(str, args)], env=self.env,
                       check=True, capture_output=True)

    def fresh(self, what: str) -> Path:
        self.count += 1
        return self.work / f"{what}-{self.count}"

    # each returns (wall, cpu, rss)
    def pydock_push(self) -> tuple:
        registry = Registry(self.fresh("registry"))
        try:
            target = f"{registry.host}/pydock:latest"
            self.run_pydock("tag", self.image, target)
            result = timed([*self.pydock, "--root", str(self.store), "push", "-q", target], self.env)
            self.run_pydock("rmi", target)
            return result
        finally:
            registry.stop()
            shutil.rmtree(registry.root)

    def skopeo_push(self) -> tuple:
        registry = Registry(self.fresh("registry"))
        try:
            return timed([SKOPEO, "copy", "-q", "--dest-tls-verify=false", f"oci:{self.layout}:latest",
                          f"docker://{registry.host}/skopeo:latest"], self.env)
        finally:
            registry.stop()
            shutil.rmtree(registry.root)

    def pydock_pull(self, source: str) -> tuple:
        root = self.fresh("pulled-store")
        try:
            return timed([*self.pydock, "--root", str(root), "pull", "-q", source], self.env)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def skopeo_pull(self, source: str) -> tuple:
        dest = self.fresh("pulled-layout")
        try:
            return timed([SKOPEO, "copy", "-q", "--src-tls-verify=false", f"docker://{source}",
                          f"oci:{dest}:latest"], self.env)
        finally:
            shutil.rmtree(dest, ignore_errors=True)


def rounds(n: int, pairs: dict[str, tuple]) -> dict[str, list[tuple]]:
    seen: dict[str, list[tuple]] = {name: [] for name in pairs}
    for i in range(n):
        order = list(pairs.items()) if i % 2 == 0 else list(reversed(pairs.items()))
        for name, (func, args) in order:
            seen[name].append(func(*args))
    return seen


def report(title: str, seen: dict[str, list[tuple]]) -> None:
    (a, a_runs), (b, b_runs) = seen.items()
    med = {name: [statistics.median(x[k] for x in runs) for k in range(3)] for name, runs in seen.items()}
    print(f"{title}: {a} {med[a][0]:.2f} s wall, {med[a][1]:.2f} s CPU, peak RSS {max(x[2] for x in a_runs)} MiB | "
          f"{b} {med[b][0]:.2f} s wall, {med[b][1]:.2f} s CPU, peak RSS {max(x[2] for x in b_runs)} MiB | "
          f"ratio wall {med[a][0] / med[b][0]:.2f}, CPU {med[a][1] / med[b][1]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pydock", default=str(Path(sys.executable).parent / "pydock"),
                    help="the pydock to measure (default: the one beside this Python)")
    ap.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--mb", type=int, default=100, help="the image's size in MB, in three layers (default 100)")
    ap.add_argument("--keep", action="store_true", help="leave the scratch directory")
    args = ap.parse_args()
    if SKOPEO is None:
        sys.exit("skopeo is not installed (apt-get install skopeo)")
    work = Path(tempfile.mkdtemp(prefix="registry-bench-", dir="/tmp"))
    try:
        print(f"load average before: {load_average()}")
        for label, layer_bytes, n in ((f"{args.mb} MB", args.mb * 1000_000 // 3, args.n), ("3 MB", 1 << 20, 2)):
            layout = make_layout(work / f"layout-{layer_bytes}", layer_bytes)
            c = Contenders([args.pydock], work / f"c-{layer_bytes}", layout)
            report(f"push {label}", rounds(n, {"pydock": (c.pydock_push, ()), "skopeo": (c.skopeo_push, ())}))
            registry = Registry(work / f"source-{layer_bytes}")
            try:
                source = f"{registry.host}/image:latest"
                subprocess.run([SKOPEO, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:latest",
                                f"docker://{source}"], check=True, env=c.env)
                report(f"pull {label}", rounds(n, {"pydock": (c.pydock_pull, (source,)),
                                                   "skopeo": (c.skopeo_pull, (source,))}))
            finally:
                registry.stop()
        print(f"load average after: {load_average()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
