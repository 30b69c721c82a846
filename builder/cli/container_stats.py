"""pydock stats: docker's table of a container's CPU, memory and pids use, from the runtime's cgroup
stats (two samples half a second apart make the CPU %)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from builder.cli.formatting import print_table


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _sample(runtime, container_id: str) -> dict | None:
    try:
        return runtime.stats(container_id)
    except Exception:  # noqa: BLE001 - it stopped meanwhile
        return None


def _binary_size(n: float) -> str:
    """docker stats' memory units (binary: KiB, MiB, GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}B"


def stats_rows(store_root: Path, docs: list[dict]) -> list[list[str]]:
    from builder.container.monitor import runtime_for

    runtime = runtime_for(store_root)
    first = {d["Id"]: (_sample(runtime, d["Id"]), time.monotonic_ns()) for d in docs}
    time.sleep(0.5)
    rows = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]]
    host_memory = _host_memory()
    for doc in docs:
        before, t0 = first[doc["Id"]]
        after, t1 = _sample(runtime, doc["Id"]), time.monotonic_ns()
        if before is None or after is None:
            continue
        used = after["cpu"]["usage"]["total"] - before["cpu"]["usage"]["total"]
        cpu = 100.0 * used / max(t1 - t0, 1)
        memory = after.get("memory") or {}
        usage = (memory.get("usage") or {}).get("usage", 0) - (memory.get("raw") or {}).get("total_inactive_file", 0)
        limit = (memory.get("usage") or {}).get("limit", 0)
        limit = host_memory if not limit or limit > host_memory else limit
        pids = (after.get("pids") or {}).get("current", 0)
        rows.append([doc["Id"][:12], doc["Name"].lstrip("/"), f"{cpu:.2f}%",
                     f"{_binary_size(max(usage, 0))} / {_binary_size(limit)}",
                     f"{100.0 * max(usage, 0) / limit if limit else 0:.2f}%", "0B / 0B", "0B / 0B", str(pids)])
    return rows


def cmd_stats(args) -> int:
    from builder.container import control
    from builder.container.records import Records

    root = Path(os.path.abspath(args.root))
    records = Records(root)
    if args.containers:
        docs = [records.lookup(ref) for ref in args.containers]
    else:
        docs = [d for d in records.all() if control.is_running(records, d["Id"])]
    while True:
        running = [d for d in docs if control.is_running(records, d["Id"])]
        rows = stats_rows(root, running)
        if not args.no_stream:
            print("\033[2J\033[H", end="")  # docker redraws the table in place
        print_table(rows)
        if args.no_stream:
            return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("stats", help="show containers' resource use")
    p.add_argument("--no-stream", action="store_true", help="print one table and exit")
    p.add_argument("containers", metavar="CONTAINER", nargs="*")
    p.set_defaults(func=cmd_stats)
