#!/usr/bin/env python3
"""pyrunc against runc, side by side on one busybox bundle: wall time per operation, and pyrunc's import cost.

Run as root:

    python3 bench/runtime_bench.py [-n 20] [--pyrunc PATH] [--runc /usr/sbin/runc]

What it measures (each runtime with its own --root, stdio on /dev/null, the two runtimes alternating in
every round so that load from other work on the machine hits both alike; a few warm-up rounds are dropped):

- run        `run ID` in the foreground, the process is /bin/true; ends when the runtime has exited
             (both runtimes delete the container themselves).
- lifecycle  `create --pid-file P ID`, `start ID`, wait for the container's init to exit, `delete ID`: what a
             shim does. This script makes itself a child subreaper, so the init becomes its child once
             `create` has exited and is waited for directly (no polling of `state`).
- exec       `exec ID /bin/true` into a running container (`sleep`), N times per runtime. Skipped, with the
             reason, when `pyrunc exec` fails (not implemented yet, or broken).
- startup    `--version` of each runtime, and the interpreter alone (`python -c pass`, `python -I -S -c pass`):
             the floor under any Python runtime.
- imports    `python -I -S -X importtime LAUNCHER` (the launcher's own interpreter and flags; -I ignores
             PYTHONPROFILEIMPORTTIME, so the option is given on the command line) for
             `pyrunc --help` and a real `pyrunc run`: the total of all imports, the top 15 by cumulative time
             (medians over several runs), and any known-heavy module found on that path, with its importer.

Prints medians, p90 and the ratio pyrunc/runc of the medians, and the load average before and after.

Measure an installed, non-editable pyrunc with compiled bytecode; an editable install adds an import hook,
and without .pyc files every start recompiles. For example:

    python3 -m venv ~/bench-venv        # anywhere outside the repository
    ~/bench-venv/bin/pip install --force-reinstall --no-deps .   # from the repository; again after each change
    ~/bench-venv/bin/python -m compileall -q ~/bench-venv/lib
    python3 bench/runtime_bench.py --pyrunc ~/bench-venv/bin/pyrunc

PYTHONDONTWRITEBYTECODE and PYTHONPROFILEIMPORTTIME are removed from the environment of the measured
commands; the script warns when the pyrunc under test looks editable or has no .pyc for its CLI module.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import build_busybox_rootfs, clean_env, load_average, script_python
HEAVY_MODULES = ("jsonschema", "requests", "tqdm", "pyroute2", "pkg_resources", "importlib_metadata",
                 "dataclasses", "typing", "pathlib", "subprocess", "signal", "socket", "re", "argparse")
PR_SET_CHILD_SUBREAPER = 36


# -- inputs ---------------------------------------------------------------------------------------------


def write_bundle(bundle: Path, rootfs: Path, runc: str, args: list[str], seccomp: bool = False) -> Path:
    """config.json from `runc spec` (what runc users start from), with a non-terminal process `args` and
    an absolute root.path, so that several bundles share one rootfs; with `seccomp`, the default profile
    pydock gives a container (docker's) for the bundle's capabilities."""
    bundle.mkdir(parents=True, exist_ok=True)
    config_path = bundle / "config.json"
    if config_path.exists():
        config_path.unlink()
    subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True)
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"]["path"] = str(rootfs)
    if seccomp:
        from builder.container.seccomp import default_seccomp, without_unknown_names

        caps = config["process"]["capabilities"]["bounding"]
        config["linux"]["seccomp"] = without_unknown_names(default_seccomp(caps))
    config_path.write_text(json.dumps(config, indent=2))
    return bundle


# -- running and timing ---------------------------------------------------------------------------------


ENV = clean_env()


def timed(argv: list[str], *, check: bool = True) -> float:
    """Wall seconds of one command with all stdio on /dev/null."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=ENV)
    elapsed = time.perf_counter() - t0
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}; rerun it by hand to see why")
    return elapsed


def checked(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """Run once with output captured, raising with the runtime's own message on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # files, not pipes: a container started by argv inherits them and may outlive the command
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env or ENV)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(argv, proc.returncode, out.read().decode(errors="replace"),
                                             err.read().decode(errors="replace"))
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans() -> None:
    """Collect containers' processes re-parented to us (only called while no subprocess is running)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class Series:
    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


@dataclass
class Runtime:
    name: str
    binary: list[str]
    root: str

    def cmd(self, *args: str) -> list[str]:
        return [*self.binary, "--root", self.root, *args]


def print_table(title: str, rows: list[tuple[str, Series, Series]]) -> None:
    print(f"\n{title}")
    print(f"  {'':<22}{'pyrunc med':>11}{'p90':>9}{'runc med':>11}{'p90':>9}{'ratio':>8}   (ms)")
    for label, ours, theirs in rows:
        ratio = ours.median / theirs.median if theirs.median else float("inf")
        print(f"  {label:<22}{ours.median * 1e3:>11.1f}{ours.p90 * 1e3:>9.1f}"
              f"{theirs.median * 1e3:>11.1f}{theirs.p90 * 1e3:>9.1f}{ratio:>8.2f}")


# -- the scenarios --------------------------------------------------------------------------------------

def bench_run(runtimes: list[Runtime], bundle: Path, n: int, warmup: int) -> dict[str, Series]:
    results = {rt.name: Series() for rt in runtimes}
    for i in range(warmup + n):
        order = runtimes if i % 2 == 0 else runtimes[::-1]
        for rt in order:
            elapsed = timed(rt.cmd("run", "--bundle", str(bundle), f"bench-run-{i}"))
            if i >= warmup:
                results[rt.name].add(elapsed)
        reap_orphans()
    return results


def lifecycle_once(rt: Runtime, bundle: Path, cid: str, pid_file: Path) -> tuple[float, float, float, float]:
    create = timed(rt.cmd("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid))
    start = timed(rt.cmd("start", cid))
    t0 = time.perf_counter()
    init = int(pid_file.read_text())
    try:
        os.waitpid(init, 0)  # ours as subreaper once `create` has exited
    except ChildProcessError:
        pass  # not re-parented to us (already reaped by someone else): it has exited anyway
    wait = time.perf_counter() - t0
    delete = timed(rt.cmd("delete", cid))
    return create, start, wait, delete


def bench_lifecycle(runtimes: list[Runtime], bundle: Path, n: int, warmup: int,
                    workdir: Path) -> dict[str, dict[str, Series]]:
    parts = ("create", "start", "wait for exit", "delete", "total")
    results = {rt.name: {p: Series() for p in parts} for rt in runtimes}
    for i in range(warmup + n):
        order = runtimes if i % 2 == 0 else runtimes[::-1]
        for rt in order:
            times = lifecycle_once(rt, bundle, f"bench-lc-{i}", workdir / f"{rt.name}.pid")
            if i >= warmup:
                for part, value in zip(parts, (*times, sum(times))):
                    results[rt.name][part].add(value)
        reap_orphans()
    return results


def bench_exec(runtimes: list[Runtime], bundle: Path, n: int, warmup: int,
               workdir: Path) -> tuple[dict[str, Series] | None, str]:
    """(results, note): results is None when exec cannot be measured, with the reason in note."""
    started = []
    try:
        for rt in runtimes:
            cid = f"bench-exec-{rt.name}"
            checked(rt.cmd("create", "--bundle", str(bundle), "--pid-file", str(workdir / f"{rt.name}.pid"), cid))
            started.append((rt, cid))
            checked(rt.cmd("start", cid))
        for rt, cid in started:
            try:
                checked(rt.cmd("exec", cid, "/bin/true"))
            except RuntimeError as e:
                return None, f"{rt.name} exec does not work here: {e}"
        results = {rt.name: Series() for rt in runtimes}
        for i in range(warmup + n):
            order = started if i % 2 == 0 else started[::-1]
            for rt, cid in order:
                elapsed = timed(rt.cmd("exec", cid, "/bin/true"))
                if i >= warmup:
                    results[rt.name].add(elapsed)
        return results, ""
    finally:
        for rt, cid in started:
            subprocess.run(rt.cmd("delete", "--force", cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        reap_orphans()


def bench_startup(pyrunc: list[str], runc: str, python: str, n: int) -> list[tuple[str, Series]]:
    commands = [("pyrunc --version", [*pyrunc, "--version"]), ("runc --version", [runc, "--version"]),
                ("python -c pass", [python, "-c", "pass"]),
                ("python -I -S -c pass", [python, "-I", "-S", "-c", "pass"])]
    results = [(label, Series()) for label, _ in commands]
    for i in range(n + 2):
        for (label, argv), (_, series) in zip(commands, results):
            elapsed = timed(argv)
            if i >= 2:
                series.add(elapsed)
    return results


# -- import profile -------------------------------------------------------------------------------------

@dataclass
class ImportLine:
    self_us: int
    cumulative_us: int
    depth: int
    name: str


def parse_importtime(stderr: str) -> list[ImportLine]:
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:") or "imported package" in raw:
            continue
        self_us, cumulative, name = raw[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        lines.append(ImportLine(int(self_us), int(cumulative), depth, name.strip()))
    return lines


def importer_of(lines: list[ImportLine], index: int) -> str:
    """importtime prints a module after its imports, so the importer is the next line that is less deep."""
    depth = lines[index].depth
    for later in lines[index + 1:]:
        if later.depth < depth:
            return later.name
    return "(top level: the script, or an import inside a function)"


def is_heavy(name: str) -> str | None:
    for heavy in HEAVY_MODULES:
        if name == heavy or name.startswith(heavy + "."):
            return heavy
    return None


def import_profile(label: str, argv: list[str], repeat: int, top: int = 15) -> None:
    env = dict(ENV, PYTHONPROFILEIMPORTTIME="1")  # for a launcher without -I; ours gets -X importtime
    totals: list[float] = []
    cumulative: dict[str, list[int]] = {}
    heavy_seen: dict[str, tuple[str, str]] = {}
    for i in range(repeat):
        result = subprocess.run(argv(i), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{label}: exited {result.returncode}: {result.stderr.strip()[-500:]}")
        lines = parse_importtime(result.stderr)
        totals.append(sum(line.self_us for line in lines) / 1e3)
        seen_this_run: dict[str, int] = {}
        for index, line in enumerate(lines):
            # a module imported again in a forked child (init) shows up twice: keep the larger
            seen_this_run[line.name] = max(seen_this_run.get(line.name, 0), line.cumulative_us)
            heavy = is_heavy(line.name)
            if heavy and (heavy not in heavy_seen or line.name == heavy):  # prefer the package's own line
                heavy_seen[heavy] = (line.name, importer_of(lines, index))
        for name, us in seen_this_run.items():
            cumulative.setdefault(name, []).append(us)
    print(f"\nimports of `{label}` (medians of {repeat} runs)")
    print(f"  total import time (sum of self times): {statistics.median(totals):.1f} ms "
          f"(min {min(totals):.1f}, max {max(totals):.1f})")
    print(f"  top {top} by cumulative time:")
    ranked = sorted(cumulative.items(), key=lambda kv: -statistics.median(kv[1]))[:top]
    for name, values in ranked:
        flag = "  <- heavy" if is_heavy(name) else ""
        print(f"    {statistics.median(values) / 1e3:7.2f} ms  {name}{flag}")
    if heavy_seen:
        print("  heavy modules on this path:")
        for heavy, (name, importer) in sorted(heavy_seen.items()):
            cost = statistics.median(cumulative[heavy]) / 1e3 if heavy in cumulative else float("nan")
            print(f"    {heavy:<20} {cost:6.2f} ms cumulative ({name}), imported by {importer}")
    else:
        print("  heavy modules on this path: none")


# -- checks on the pyrunc under test --------------------------------------------------------------------


def warn_about_install(python: str) -> None:
    code = ("import importlib.util, os, sys, oci_runtime.cli as c\n"
            "pyc = importlib.util.cache_from_source(c.__file__)\n"
            "editable = any('__editable__' in p or p.endswith('.egg-link') for p in sys.path) or "
            "any(type(f).__name__.startswith('_Editable') for f in sys.meta_path)\n"
            "print(c.__file__, os.path.exists(pyc), editable)")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=ENV, cwd="/")
    if out.returncode != 0:
        print(f"warning: cannot import oci_runtime with {python}: {out.stderr.strip()[-300:]}")
        return
    path, has_pyc, editable = out.stdout.split()
    print(f"pyrunc code under test: {path}")
    if has_pyc != "True":
        print(f"warning: no .pyc for {path}: run `{python} -m compileall -q {Path(path).parent.parent}` first")
    if editable == "True" or "site-packages" not in path:
        print("warning: this looks like an editable install (import hook / source tree); measure a regular install")


def default_pyrunc() -> str:
    beside = Path(sys.executable).parent / "pyrunc"
    return str(beside) if beside.exists() else "pyrunc"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20, help="measured rounds per scenario (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="rounds dropped at the start (default 2)")
    parser.add_argument("--pyrunc", default=default_pyrunc(), help="pyrunc to test (default: beside this python)")
    parser.add_argument("--runc", default="/usr/sbin/runc", help="runc to compare with (default /usr/sbin/runc)")
    parser.add_argument("--only", default="run,lifecycle,exec,startup,imports",
                        help="comma-separated scenarios (default: all of run,lifecycle,exec,startup,imports)")
    parser.add_argument("--seccomp", action="store_true",
                        help="bundles carry docker's default seccomp profile (as pydock writes it)")
    parser.add_argument("--import-runs", type=int, default=5, help="runs per import profile (default 5)")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("runtime_bench.py must run as root (containers need namespaces, mounts and cgroups)")
        return 2
    only = set(args.only.split(","))
    pyrunc = [str(Path(args.pyrunc).resolve())] if os.path.sep in args.pyrunc else [args.pyrunc]
    python = script_python(shutil.which(pyrunc[0]) or pyrunc[0])
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="runtime-bench-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)

    print(f"pyrunc: {pyrunc[0]} (python {python})")
    runc_version = subprocess.run([args.runc, "--version"], capture_output=True, text=True).stdout.splitlines()
    print(f"runc:   {args.runc} ({runc_version[0] if runc_version else 'version unknown'})")
    print(f"rounds: {args.n} measured + {args.warmup} warm-up, alternating; cpus: {os.cpu_count()}")
    print(f"load average at start: {load_average()}")
    warn_about_install(python)

    become_subreaper()
    rootfs = build_busybox_rootfs(workdir / "rootfs")
    bundle_true = write_bundle(workdir / "bundle-true", rootfs, args.runc, ["/bin/true"], args.seccomp)
    bundle_sleep = write_bundle(workdir / "bundle-sleep", rootfs, args.runc, ["/bin/sleep", "3600"], args.seccomp)
    print(f"seccomp: {'docker default profile' if args.seccomp else 'none'}")
    runtimes = [Runtime("pyrunc", pyrunc, str(workdir / "root-pyrunc")),
                Runtime("runc", [args.runc], str(workdir / "root-runc"))]
    try:
        for rt in runtimes:  # fail early, with the runtime's message, rather than in the middle of a series
            checked(rt.cmd("run", "--bundle", str(bundle_true), "bench-check"))
        reap_orphans()
        if "run" in only:
            res = bench_run(runtimes, bundle_true, args.n, args.warmup)
            print_table("run (foreground, /bin/true, container deleted by the runtime)",
                        [("run", res["pyrunc"], res["runc"])])
        if "lifecycle" in only:
            res = bench_lifecycle(runtimes, bundle_true, args.n, args.warmup, workdir)
            print_table("create + start + wait + delete (/bin/true)",
                        [(part, res["pyrunc"][part], res["runc"][part]) for part in res["pyrunc"]])
        if "exec" in only:
            res, note = bench_exec(runtimes, bundle_sleep, args.n, args.warmup, workdir)
            if res is None:
                print(f"\nexec: skipped ({note})")
            else:
                print_table("exec /bin/true into a running container", [("exec", res["pyrunc"], res["runc"])])
        if "startup" in only:
            rows = bench_startup(pyrunc, args.runc, python, args.n)
            print("\nstartup floor (ms)")
            for label, series in rows:
                print(f"  {label:<24}median {series.median * 1e3:6.1f}   p90 {series.p90 * 1e3:6.1f}")
        if "imports" in only:
            # the launcher runs its script with `python -I -S`, which ignores PYTHONPROFILEIMPORTTIME
            traced = [python, "-I", "-S", "-X", "importtime", shutil.which(pyrunc[0]) or pyrunc[0]]
            import_profile("pyrunc --help", lambda i: [*traced, "--help"], args.import_runs)
            import_profile("pyrunc run", lambda i: [*traced, "--root", runtimes[0].root, "run", "--bundle",
                                                    str(bundle_true), f"bench-imports-{i}"], args.import_runs)
            reap_orphans()
    finally:
        for rt in runtimes:
            for cid in os.listdir(rt.root) if os.path.isdir(rt.root) else []:
                subprocess.run(rt.cmd("delete", "--force", cid), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        reap_orphans()
        print(f"\nload average at end: {load_average()}")
        if args.keep:
            print(f"kept {workdir}")
        elif not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
