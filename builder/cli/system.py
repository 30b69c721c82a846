"""pydock version and info: what this pydock is and what its store holds. There is no daemon: the
"Server" block describes the engine this process is (the store, the pyrunc runtime)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

VERSION = "0.1.0"


def _runtime_version() -> str:
    import oci_runtime

    return oci_runtime.VERSION


def _cgroup_version() -> str:
    """2 when /sys/fs/cgroup is the unified hierarchy (or a hybrid host's cgroup2 mount is all there is)."""
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or "Linux"
    except OSError:
        return "Linux"


def _go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def cmd_version(args) -> int:
    import oci_runtime

    python = platform.python_version()
    print("Client:")
    print(f" Version:           {VERSION}")
    print(" API version:       none (daemonless)")
    print(f" Python version:    {python}")
    print(f" OS/Arch:           linux/{_go_arch()}")
    print()
    print("Server: pydock (daemonless)")
    print(" Engine:")
    print(f"  Version:          {VERSION}")
    print(f"  Python version:   {python}")
    print(f"  OS/Arch:          linux/{_go_arch()}")
    print(" pyrunc:")
    print(f"  Version:          {_runtime_version()}")
    print(f"  OCI spec:         {oci_runtime.SPEC_VERSION}")
    return 0


def cmd_info(args) -> int:
    from builder.cli.shared import open_store
    from builder.container.liveness import live_state
    from builder.container.records import Records

    root = Path(os.path.abspath(args.root))
    counts = {"running": 0, "paused": 0, "stopped": 0}
    docs = Records(root).all()
    for doc in docs:
        status = live_state(doc)["Status"]
        key = status if status in ("running", "paused") else "stopped"
        if status in ("restarting", "starting"):
            key = "running"
        counts[key] += 1
    images = len(open_store(args).images())
    uname = os.uname()
    lines = [
        "Client:",
        f" Version:    {VERSION}",
        " Context:    default",
        "",
        "Server:",
        f" Containers: {len(docs)}",
        f"  Running: {counts['running']}",
        f"  Paused: {counts['paused']}",
        f"  Stopped: {counts['stopped']}",
        f" Images: {images}",
        f" Server Version: {VERSION} (daemonless)",
        " Storage Driver: overlay2",
        f" Pydock Root Dir: {root}",
        " Cgroup Driver: cgroupfs",
        f" Cgroup Version: {_cgroup_version()}",
        " Runtimes: pyrunc",
        " Default Runtime: pyrunc",
        f" pyrunc version: {_runtime_version()}",
        f" Kernel Version: {uname.release}",
        f" Operating System: {_os_name()}",
        " OSType: linux",
        f" Architecture: {uname.machine}",
        f" CPUs: {os.cpu_count()}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("version", help="show pydock's and its runtime's versions")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("info", help="show what the store holds and the system it runs on")
    p.set_defaults(func=cmd_info)
