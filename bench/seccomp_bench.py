#!/usr/bin/env python3
"""What docker's default seccomp profile costs a container start: `pydock run --rm --network none IMAGE true`
with the default profile and with `--security-opt seccomp=unconfined`, alternating, on a scratch store;
and the profile's translation in process (default profile for docker's capabilities, names this libseccomp
does not know dropped). The pyrunc-against-runc side: `runtime_bench.py --seccomp` (the same profile in
both runtimes' bundles) against a run without it.

Needs root. Run it in a network namespace of its own and from a regular install (bench/README.md):

    unshare -n ~/bench-venv/bin/python bench/seccomp_bench.py [--pydock PATH] [-n 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchkit import busybox_tar, clean_env, load_average, timed

IMAGE = "busybox:bench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pydock", default=str(Path(sys.executable).parent / "pydock"))
    parser.add_argument("-n", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    env = clean_env()
    print(f"pydock: {args.pydock}; rounds: {args.n} + {args.warmup} warm-up; load: {load_average()}")

    from builder.container.bundle import DOCKER_DEFAULT_CAPS
    from builder.container.seccomp import default_seccomp, without_unknown_names

    start = time.perf_counter()
    for _ in range(100):
        seccomp = without_unknown_names(default_seccomp(DOCKER_DEFAULT_CAPS))
    names = sum(len(rule["names"]) for rule in seccomp["syscalls"])
    print(f"translation: {(time.perf_counter() - start) * 10:.2f} ms per container ({names} names, "
          f"{len(seccomp['syscalls'])} rules)")

    with tempfile.TemporaryDirectory(prefix="seccomp-bench-", dir="/tmp") as scratch:
        store = Path(scratch) / "store"
        pydock = [args.pydock, "--root", str(store)]
        timed([*pydock, "import", str(busybox_tar(Path(scratch) / "busybox.tar")), IMAGE], env)
        cases = {"default profile": [], "unconfined": []}
        flags = {"default profile": [], "unconfined": ["--security-opt", "seccomp=unconfined"]}
        for i in range(args.warmup + args.n):
            order = list(cases) if i % 2 == 0 else list(cases)[::-1]
            for case in order:
                elapsed = timed([*pydock, "run", "--rm", "--network", "none", *flags[case], IMAGE, "true"], env)
                if i >= args.warmup:
                    cases[case].append(elapsed)
    med = {case: statistics.median(xs) for case, xs in cases.items()}
    for case, xs in cases.items():
        print(f"pydock run --rm ({case:<15}) median {med[case] * 1e3:7.1f} ms   min {min(xs) * 1e3:7.1f} ms")
    print(f"ratio default/unconfined: {med['default profile'] / med['unconfined']:.3f}; load: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
