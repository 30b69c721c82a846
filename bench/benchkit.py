"""What the benchmark scripts share: the environment measured commands run in, the interpreter behind a
launcher script, the load average line, the busybox base they all run (the tests' own rootfs), timing one
command, and starting/stopping the reference engines on a scratch dir (scripts/engines.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ENGINES = Path(__file__).resolve().parent.parent / "scripts" / "engines.sh"
sys.path.insert(0, str(ENGINES.parent.parent / "tests"))
from support import build_busybox_rootfs  # noqa: E402 - the rootfs the tests run, built the same way


def clean_env() -> dict[str, str]:
    """This environment without what would distort a measurement: no bytecode writing switched off, no
    import profiling."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def script_python(script: str) -> str:
    """The interpreter that runs a launcher script: the one named by its #! line, or for pyrunc's /bin/sh
    launcher the python3 beside it (sys.executable when neither)."""
    try:
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace")
    except OSError:
        return sys.executable
    if first.startswith("#!") and "python" in first:
        return first[2:].split()[0]
    beside = os.path.join(os.path.dirname(os.path.realpath(script)), "python3")
    return beside if os.access(beside, os.X_OK) else sys.executable


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def busybox_tar(dest: Path) -> Path:
    """The busybox rootfs as a tar file at dest (an image for `import`)."""
    rootfs = build_busybox_rootfs(dest.parent / f"{dest.name}.rootfs")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(dest), "."], check=True)
    return dest


def timed(cmd: list[str], env: dict) -> float:
    """Seconds one run of cmd takes (its output discarded; a failure stops the bench)."""
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def start_engines(scratch: Path, env: dict, *engines: str) -> None:
    """Start the named reference engines on scratch and add the variables that reach them (DOCKER_HOST, ...)
    to env."""
    out = subprocess.run(["bash", str(ENGINES), "start", str(scratch), *engines], env=env, check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key] = value


def stop_engines(scratch: Path, env: dict) -> None:
    subprocess.run(["bash", str(ENGINES), "stop", str(scratch)], env=env, stdout=subprocess.DEVNULL)
