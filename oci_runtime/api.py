"""The runtime as a library, for the builder and other Python callers.

A container is run in a child `pyrunc` process rather than in the caller's own process: the runtime forks,
becomes a child subreaper and installs signal handlers, none of which a library should do to its caller
(which may have threads, e.g. progress bars).
"""

from __future__ import annotations

import os
import subprocess
import sys

from oci_runtime.container.state import DEFAULT_ROOT


def pyrunc_command(root: str | None = None) -> list[str]:
    """The runtime's command line for a child process: this interpreter with -I -S (as the pyrunc launcher
    starts it: site.py and runpy skipped), given this process's sys.path so that the same oci_runtime and
    its dependencies load, whatever the install (regular, editable, or a source checkout)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [package_parent] + [p for p in sys.path if p and p != package_parent]
    code = f"import sys; sys.path[:0] = {paths!r}; from oci_runtime.cli import main_and_exit; main_and_exit()"
    return [sys.executable, "-I", "-S", "-c", code, "--root", root or DEFAULT_ROOT]


def run_container(bundle, container_id: str, *, root: str | None = None, stdin=None, stdout=None, stderr=None,
                  log_file: str | None = None) -> int:
    """Run the bundle in the foreground like `pyrunc run`; return the container's exit status
    (128+N when it was killed by signal N). stdin/stdout/stderr: file objects, fds, or None to inherit."""
    cmd = pyrunc_command(root)
    if log_file:
        cmd += ["--log", log_file, "--log-format", "json"]
    cmd += ["run", "--bundle", os.fspath(bundle), container_id]
    proc = subprocess.run(cmd, stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=stdout,
                          stderr=stderr)
    return proc.returncode


def delete_container(container_id: str, *, root: str | None = None) -> None:
    """Force-delete a container (idempotent), e.g. after the caller was interrupted."""
    subprocess.run([*pyrunc_command(root), "delete", "--force", container_id],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
