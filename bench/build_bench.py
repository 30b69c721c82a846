#!/usr/bin/env python3
"""pydock against docker's BuildKit and buildah, side by side on the same Dockerfiles and contexts: wall
time and peak RSS.

Run as root:

    python3 bench/build_bench.py [-n 3] [--pydock PATH] [--builders pydock,buildkit,buildah]
                                 [--only files,bigfile,multistage,rss] [--before OTHER-PYDOCK]

Scenarios (Dockerfiles in bench/dockerfiles/, contexts generated under the scratch directory):

- files       COPY . /app of a context of --files small files (default 5,000, 64 B to 2 KiB each)
- bigfile     COPY of one --big-mb MB file of random bytes (default 50)
- multistage  four stages with three RUN steps and COPY --from between them
- rss         pydock's peak RSS for a cold and a cached build of the files scenario at --rss-sizes
              (default 1000,5000,20000 files): memory should stay flat as the context grows

For each of the first three, every round gives each builder a fresh store holding only the base image
(busybox-static, imported beforehand, not timed; for BuildKit a new dockerd on a new data root) and times,
in order:

- cold     the first build into that store
- cached   the same build again (everything from the cache)
- changed  a rebuild after one file of the context changed (files: one small file; bigfile: the first
           4 KiB of the big file; multistage: input.txt, which the first stage copies)

The builders alternate (the order turns every round) so that load from other work hits them alike: only
figures from one run are comparable, the machine being shared. Printed: medians of -n rounds of wall
seconds and of the builder's peak RSS (from wait4(), so it covers the builder and every child it waited
for; for BuildKit only the docker CLI, the work being done in dockerd), of CPU seconds (user + system of
the same, and for BuildKit what dockerd's process tree spent meanwhile: on a loaded machine, where wall
times stretch with the run queue, the steadier figure), and the ratios of pydock to the others.

BuildKit is docker 20.10's (Debian's docker.io): a scratch dockerd started through scripts/engines.sh
(overlay2, no network set-up, so `--network none`, pydock's default) and Debian's CLI, /usr/bin/docker, with DOCKER_BUILDKIT=1 (the static CLI
some machines have in /usr/local/bin has no BuildKit without buildx). The base image goes in with
`docker import`; the daemon's image store is docker's, where BuildKit leaves layers uncompressed.

buildah runs with overlay storage under the scratch directory, `--layers` (its cache), `--pull=never`,
and `--isolation oci --runtime /usr/sbin/runc` by default (Debian's default runtime for buildah, crun,
refuses cgroup v1 hybrid hosts); `--isolation chroot` is the alternative.

--profile also runs pydock once under cProfile for a cold and a cached build of the files scenario and
prints the top 20 functions by cumulative time.

Measure a regular (non-editable) install with compiled bytecode, for example:

    python3 -m venv ~/bench-venv        # anywhere outside the repository
    ~/bench-venv/bin/pip install --force-reinstall --no-deps .   # from the repository; again after each change
    ~/bench-venv/bin/python -m compileall -q ~/bench-venv/lib
    python3 bench/build_bench.py --pydock ~/bench-venv/bin/pydock

PYTHONDONTWRITEBYTECODE is removed from the environment of the measured commands.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import busybox_tar, clean_env, load_average, script_python

HERE = Path(__file__).resolve().parent
DOCKERFILES = HERE / "dockerfiles"
BASE_NAME = "bench-base"
PHASES = ("cold", "cached", "changed")
REPO = HERE.parent
ENGINES_SH = REPO / "scripts" / "engines.sh"
DOCKER_CLI = "/usr/bin/docker"  # Debian's: BuildKit built in (see the docstring)


ENV = clean_env()
CWD = "/"  # set to the scratch directory in main(): never the source tree, which `python -m` would import


@dataclass
class Measurement:
    seconds: float
    max_rss_kib: int
    cpu: float = 0.0  # user + system seconds of the command and what it waited for (and of the daemon)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, its reaped children's included) of a process and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parent_of: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        parent_of[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0)
        todo += [c for c, pp in parent_of.items() if pp == p]
    return total / tick


def measure(argv: list[str], what: str, env: dict[str, str] | None = None, daemon: int | None = None) -> Measurement:
    """Wall time, peak RSS (KiB) and CPU time of one command (plus the CPU time a `daemon` process tree
    spent meanwhile); its output goes to a file shown only on failure."""
    with tempfile.TemporaryFile() as log:
        daemon_before = tree_cpu(daemon) if daemon else 0.0
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env or ENV, cwd=CWD)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        cpu = usage.ru_utime + usage.ru_stime + (tree_cpu(daemon) - daemon_before if daemon else 0.0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{what} failed ({proc.returncode}): {' '.join(argv)}\n{tail}")
    return Measurement(elapsed, usage.ru_maxrss, cpu)


def run_quiet(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env or ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed: {' '.join(argv)}\n{proc.stderr.decode(errors='replace')[-2000:]}")


# -- inputs ---------------------------------------------------------------------------------------------


def make_files_context(dest: Path, count: int, seed: int = 1) -> Path:
    """count files of 64 B to 2 KiB of text, 100 to a directory; the same content for the same seed."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \n"
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        d = dest / f"dir{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(exist_ok=True)
        (d / f"file{i:06d}.txt").write_text("".join(rng.choices(alphabet, k=rng.randint(64, 2048))))
    return dest


def make_bigfile_context(dest: Path, megabytes: int) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "big.bin", "wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
    return dest


def make_multistage_context(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "input.txt").write_text("input for the first stage\n")
    return dest


class Change:
    """Change one file of a context, and put it back afterwards."""

    def __init__(self, path: Path, new_head: bytes):
        self.path = path
        self.new_head = new_head
        self.saved = b""

    def apply(self) -> None:
        with open(self.path, "r+b") as f:
            self.saved = f.read(len(self.new_head))
            f.seek(0)
            f.write(self.new_head)

    def undo(self) -> None:
        with open(self.path, "r+b") as f:
            f.write(self.saved)


# -- the builders ---------------------------------------------------------------------------------------

class Pydock:
    name = "pydock"
    env = None
    daemon = None

    def __init__(self, binary: str, base_tar: Path, name: str = "pydock"):
        self.name = name
        self.binary = binary
        self.base_tar = base_tar
        self.store: Path | None = None

    def fresh_store(self, where: Path) -> None:
        self.drop_store()
        self.store = where
        run_quiet([self.binary, "--root", str(where), "import", str(self.base_tar), f"{BASE_NAME}:latest"],
                  "pydock import of the base image")

    def build_argv(self, dockerfile: Path, context: Path, tag: str) -> list[str]:
        return [self.binary, "--root", str(self.store), "build", "-f", str(dockerfile), "-t", tag, str(context)]

    def drop_store(self) -> None:
        if self.store is not None:
            unmount_under(self.store)
            shutil.rmtree(self.store, ignore_errors=True)
            self.store = None


class BuildKit:
    """docker build with BuildKit, against a dockerd of its own on a scratch data root (a new one for every
    fresh store, so each cold build starts from nothing, as pydock's and buildah's do)."""

    name = "BuildKit"

    def __init__(self, base_tar: Path):
        self.base_tar = base_tar
        self.store: Path | None = None
        self.env: dict[str, str] | None = None

    def fresh_store(self, where: Path) -> None:
        self.drop_store()
        self.store = where
        out = subprocess.run(["bash", str(ENGINES_SH), "start", str(where), "docker"], capture_output=True,
                             text=True, env=ENV)
        if out.returncode != 0:
            raise RuntimeError(f"starting dockerd failed: {out.stderr[-2000:]}")
        env = dict(ENV, DOCKER_BUILDKIT="1")
        for line in out.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key in ("DOCKER_HOST", "DOCKER_CONFIG"):
                env[key] = value
        self.env = env
        self.daemon = int((where / "docker" / "dockerd.pid").read_text())  # its CPU time counts too
        run_quiet([DOCKER_CLI, "import", str(self.base_tar), f"{BASE_NAME}:latest"], "docker import of the base",
                  env=env)

    def build_argv(self, dockerfile: Path, context: Path, tag: str) -> list[str]:
        # --network none: the scratch dockerd has no bridge, and pydock's RUN has no network by default either
        return [DOCKER_CLI, "build", "--network", "none", "-f", str(dockerfile), "-t", tag, str(context)]

    def drop_store(self) -> None:
        if self.store is not None:
            subprocess.run(["bash", str(ENGINES_SH), "stop", str(self.store)], capture_output=True, env=ENV)
            self.store = None
            self.env = None
            self.daemon = None


class Buildah:
    name = "buildah"
    env = None
    daemon = None

    def __init__(self, binary: str, base_tar: Path, isolation: str, runtime: str):
        self.binary = binary
        self.base_tar = base_tar
        self.isolation = isolation
        self.runtime = runtime
        self.store: Path | None = None

    def _global(self) -> list[str]:
        return [self.binary, "--root", str(self.store / "root"), "--runroot", str(self.store / "run"),
                "--storage-driver", "overlay"]

    def fresh_store(self, where: Path) -> None:
        self.drop_store()
        self.store = where
        where.mkdir(parents=True)
        out = subprocess.run([*self._global(), "from", "scratch"], capture_output=True, text=True, env=ENV)
        if out.returncode != 0:
            raise RuntimeError(f"buildah from scratch failed: {out.stderr}")
        container = out.stdout.strip()
        run_quiet([*self._global(), "add", container, str(self.base_tar), "/"], "buildah add of the base rootfs")
        run_quiet([*self._global(), "commit", "-q", container, f"{BASE_NAME}:latest"], "buildah commit")
        run_quiet([*self._global(), "rm", container], "buildah rm")

    def build_argv(self, dockerfile: Path, context: Path, tag: str) -> list[str]:
        argv = [*self._global(), "bud", "--layers", "--pull=never", "--isolation", self.isolation,
                "-f", str(dockerfile), "-t", tag]
        if self.isolation == "oci":
            argv += ["--runtime", self.runtime]
        return [*argv, str(context)]

    def drop_store(self) -> None:
        if self.store is None:
            return
        subprocess.run([*self._global(), "rm", "--all"], capture_output=True, env=ENV)
        subprocess.run([*self._global(), "rmi", "--all", "--force"], capture_output=True, env=ENV)
        unmount_under(self.store)
        shutil.rmtree(self.store, ignore_errors=True)
        self.store = None


def unmount_under(path: Path) -> None:
    """containers/storage bind-mounts its overlay directory (and may leave layer mounts): undo them."""
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


# -- scenarios ------------------------------------------------------------------------------------------

@dataclass
class Results:
    """scenario -> builder -> phase -> measurements"""
    data: dict = field(default_factory=dict)

    def add(self, scenario: str, builder: str, phase: str, m: Measurement) -> None:
        self.data.setdefault(scenario, {}).setdefault(builder, {}).setdefault(phase, []).append(m)

    def median(self, scenario: str, builder: str, phase: str) -> tuple[float, float, float]:
        ms = self.data[scenario][builder][phase]
        return (statistics.median(m.seconds for m in ms), statistics.median(m.max_rss_kib for m in ms) / 1024,
                statistics.median(m.cpu for m in ms))


def run_scenario(name: str, dockerfile: Path, context: Path, change: Change, builders, rounds: int,
                 work: Path, results: Results) -> None:
    for r in range(rounds):
        order = builders[r % len(builders):] + builders[:r % len(builders)]  # each goes first in turn
        for b in order:
            b.fresh_store(work / f"store-{b.name}-{name}-{r}")
            argv = b.build_argv(dockerfile, context, f"bench-{name}:latest")
            results.add(name, b.name, "cold", measure(argv, f"{b.name} cold build of {name}", b.env, b.daemon))
            results.add(name, b.name, "cached", measure(argv, f"{b.name} cached build of {name}", b.env, b.daemon))
            change.apply()
            try:
                results.add(name, b.name, "changed", measure(argv, f"{b.name} rebuild of {name}", b.env, b.daemon))
            finally:
                change.undo()
            b.drop_store()
        print(f"  {name}: round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.2f})", flush=True)


def print_results(results: Results, builders) -> None:
    names = [b.name for b in builders]
    others = names[1:]
    for title, index, unit in (("wall seconds", 0, "s"), ("CPU seconds (user + system; BuildKit's include "
                                                          "dockerd's and its children's)", 2, "cpu")):
        print(f"\n{title}, medians" + ("; peak RSS (MiB) beside them" if index == 0 else ""))
        head = f"  {'scenario':<11}{'phase':<9}"
        for n in names:
            head += f"{n + ' ' + unit:>13}" + (f"{'RSS':>6}" if index == 0 else "")
        print(head + "".join(f"{'/' + n:>10}" for n in others) + "   (ratios: pydock / the other)")
        for scenario, per_builder in results.data.items():
            for phase in PHASES:
                if any(phase not in per_builder.get(n, {}) for n in names):
                    continue
                line = f"  {scenario:<11}{phase:<9}"
                meds = {n: results.median(scenario, n, phase) for n in names}
                for n in names:
                    line += f"{meds[n][index]:13.2f}" + (f"{meds[n][1]:6.0f}" if index == 0 else "")
                for n in others:
                    line += f"{meds[names[0]][index] / meds[n][index]:10.2f}" if meds[n][index] else f"{'-':>10}"
                print(line)


def rss_series(pydock: Pydock, sizes: list[int], rounds: int, work: Path) -> None:
    dockerfile = DOCKERFILES / "files.Dockerfile"
    print("\npydock peak RSS as the context grows (files scenario; medians of rounds)")
    print(f"  {'files':>7}{'cold s':>9}{'cold MiB':>10}{'cached s':>10}{'cached MiB':>12}")
    for size in sizes:
        context = make_files_context(work / f"rss-context-{size}", size)
        cold, cached = [], []
        for r in range(rounds):
            pydock.fresh_store(work / f"store-rss-{size}-{r}")
            argv = pydock.build_argv(dockerfile, context, "bench-rss:latest")
            cold.append(measure(argv, f"pydock cold build of {size} files"))
            cached.append(measure(argv, f"pydock cached build of {size} files"))
            pydock.drop_store()
        shutil.rmtree(context)
        print(f"  {size:>7}{statistics.median(m.seconds for m in cold):9.2f}"
              f"{statistics.median(m.max_rss_kib for m in cold) / 1024:10.1f}"
              f"{statistics.median(m.seconds for m in cached):10.2f}"
              f"{statistics.median(m.max_rss_kib for m in cached) / 1024:12.1f}", flush=True)


def profile_pydock(pydock: Pydock, python: str, context: Path, work: Path, top: int = 20) -> None:
    import pstats

    dockerfile = DOCKERFILES / "files.Dockerfile"
    pydock.fresh_store(work / "store-profile")
    try:
        for phase in ("cold", "cached"):
            out = work / f"pydock-{phase}.prof"
            argv = pydock.build_argv(dockerfile, context, "bench-profile:latest")
            argv = [python, "-m", "cProfile", "-o", str(out), "-m", "builder", *argv[1:]]
            measure(argv, f"pydock {phase} build under cProfile")
            print(f"\ncProfile of a {phase} pydock build of the files scenario: top {top} by cumulative time "
                  "(interpreter and import-machinery frames left out)")
            sys.stdout.flush()
            stats = pstats.Stats(str(out), stream=sys.stdout).sort_stats("cumulative")
            stats.print_stats(r"^(?!.*(<frozen |<string>|builtins\.exec|cProfile|runpy))", top)
    finally:
        pydock.drop_store()


def default_pydock() -> str:
    beside = Path(sys.executable).parent / "pydock"
    return str(beside) if beside.exists() else "pydock"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3, help="rounds per scenario (default 3)")
    parser.add_argument("--pydock", default=default_pydock(), help="pydock to test (default: beside this python)")
    parser.add_argument("--builders", default="pydock,buildkit,buildah",
                        help="comma-separated contenders, pydock first (default pydock,buildkit,buildah)")
    parser.add_argument("--before", default=None, metavar="PATH",
                        help="another pydock (say, an install of the code before a change), measured in the same "
                             "run as the contender 'before'")
    parser.add_argument("--buildah", default=shutil.which("buildah") or "/usr/bin/buildah")
    parser.add_argument("--isolation", default="oci", choices=["oci", "chroot"], help="buildah's RUN isolation")
    parser.add_argument("--runtime", default="/usr/sbin/runc", help="buildah's OCI runtime (default runc)")
    parser.add_argument("--only", default="files,bigfile,multistage,rss",
                        help="comma-separated: files,bigfile,multistage,rss (default all)")
    parser.add_argument("--files", type=int, default=5000, help="files in the files scenario (default 5000)")
    parser.add_argument("--big-mb", type=int, default=50, help="size of the big file in MB (default 50)")
    parser.add_argument("--rss-sizes", default="1000,5000,20000", help="context sizes for the rss scenario")
    parser.add_argument("--profile", action="store_true", help="also cProfile one cold and one cached pydock build")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a new one under /var/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("build_bench.py must run as root (RUN steps create containers; buildah's overlay storage mounts)")
        return 2
    only = set(args.only.split(","))
    pydock_bin = str(Path(args.pydock).resolve()) if os.path.sep in args.pydock else args.pydock
    # /var/tmp, not /tmp: the contexts and stores are large and /tmp may be a small tmpfs elsewhere
    work = Path(args.workdir or tempfile.mkdtemp(prefix="build-bench-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    global CWD
    CWD = str(work)
    wanted = args.builders.split(",")
    print(f"pydock:  {pydock_bin} (python {script_python(shutil.which(pydock_bin) or pydock_bin)})")
    if "buildkit" in wanted:
        version = subprocess.run([DOCKER_CLI, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"BuildKit: {DOCKER_CLI} ({version}), DOCKER_BUILDKIT=1, a scratch dockerd per store (overlay2)")
    if "buildah" in wanted:
        version = subprocess.run([args.buildah, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"buildah: {args.buildah} ({version}), isolation {args.isolation}"
              + (f", runtime {args.runtime}" if args.isolation == "oci" else "") + ", overlay storage, --layers")
    print(f"rounds: {args.n}; cpus: {os.cpu_count()}; scratch: {work}")
    print(f"load average at start: {load_average()}")

    base_tar = busybox_tar(work / "base.tar")
    pydock = Pydock(pydock_bin, base_tar)
    builders = [pydock]
    if args.before:
        builders.append(Pydock(str(Path(args.before).resolve()), base_tar, name="before"))
        print(f"before:  {builders[-1].binary}")
    if "buildkit" in wanted:
        builders.append(BuildKit(base_tar))
    if "buildah" in wanted:
        builders.append(Buildah(args.buildah, base_tar, args.isolation, args.runtime))
    results = Results()
    try:
        if "files" in only or args.profile:
            files_ctx = make_files_context(work / "ctx-files", args.files)
        if "files" in only:
            change = Change(files_ctx / "dir0000" / "file000000.txt", b"changed! ")
            run_scenario("files", DOCKERFILES / "files.Dockerfile", files_ctx, change, builders, args.n, work,
                         results)
        if "bigfile" in only:
            ctx = make_bigfile_context(work / "ctx-bigfile", args.big_mb)
            change = Change(ctx / "big.bin", os.urandom(4096))
            run_scenario("bigfile", DOCKERFILES / "bigfile.Dockerfile", ctx, change, builders, args.n, work,
                         results)
            shutil.rmtree(ctx)
        if "multistage" in only:
            ctx = make_multistage_context(work / "ctx-multistage")
            change = Change(ctx / "input.txt", b"INPUT")
            run_scenario("multistage", DOCKERFILES / "multistage.Dockerfile", ctx, change, builders, args.n,
                         work, results)
        if results.data:
            print_results(results, builders)
        if "rss" in only:
            rss_series(pydock, [int(s) for s in args.rss_sizes.split(",")], args.n, work)
        if args.profile:
            profile_pydock(pydock, script_python(shutil.which(pydock_bin) or pydock_bin), files_ctx, work)
    finally:
        for b in builders:
            b.drop_store()
        print(f"\nload average at end: {load_average()}")
        unmount_under(work)
        if args.keep:
            print(f"kept {work}")
        elif not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
