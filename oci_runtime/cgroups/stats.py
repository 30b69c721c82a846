"""Statistics in the shape of runc's `events --stats` "data" object (runc's types.Stats field names).

Missing files read as zeros: a controller the host lacks (or has not delegated) leaves its part
of the report empty rather than failing the whole report.
"""

from __future__ import annotations

import os

from oci_runtime.cgroups.fileio import read_file_or_none, read_key_values, read_uint

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def hugepage_sizes(sysfs: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """Names such as "2MB" and "1GB", as runc and the OCI spec spell them."""
    sizes = []
    try:
        entries = sorted(os.listdir(sysfs))
    except OSError:
        return sizes
    for entry in entries:
        if not (entry.startswith("hugepages-") and entry.endswith("kB")):
            continue
        size = int(entry[len("hugepages-"):-2]) * 1024
        unit = 0
        while size >= 1024 and size % 1024 == 0 and unit < len(_UNITS) - 1:
            size //= 1024
            unit += 1
        sizes.append(f"{size}{_UNITS[unit]}")
    return sizes


def _empty() -> dict:
    return {
        "cpu": {"usage": {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 0, "user": 0},
                "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
        "cpuset": {},
        "memory": {"cache": 0, "usage": _mem_entry(), "swap": _mem_entry(), "kernel": _mem_entry(),
                   "kernelTCP": _mem_entry(), "raw": {}},
        "pids": {"current": 0, "limit": 0},
        "blkio": {"ioServiceBytesRecursive": [], "ioServicedRecursive": [], "ioQueueRecursive": [],
                  "ioServiceTimeRecursive": [], "ioWaitTimeRecursive": [], "ioMergedRecursive": [],
                  "ioTimeRecursive": [], "sectorsRecursive": []},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _mem_entry(limit: int = 0, usage: int = 0, max_usage: int = 0, failcnt: int = 0) -> dict:
    return {"limit": limit, "usage": usage, "max": max_usage, "failcnt": failcnt}


def _uints(text: str | None) -> list[int]:
    return [int(x) for x in (text or "").split()]


def _cpu_list(text: str | None) -> list[int]:
    """"0-3,8" -> [0, 1, 2, 3, 8]"""
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _pids_limit(value: int | None) -> int:
    return 0 if value is None or value == 2**64 - 1 else value   # runc reports "max" as 0


# --- v1 ------------------------------------------------------------------------------------------

def _v1_memory_entry(d: str, prefix: str) -> dict:
    usage = read_uint(d, f"{prefix}.usage_in_bytes", default=-1)
    if usage == -1:
        return _mem_entry()
    return _mem_entry(read_uint(d, f"{prefix}.limit_in_bytes", default=0), usage,
                      read_uint(d, f"{prefix}.max_usage_in_bytes", default=0),
                      read_uint(d, f"{prefix}.failcnt", default=0))


def _blkio_entries(d: str, name: str) -> list[dict] | None:
    text = read_file_or_none(d, name)
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3 or fields[0] == "Total":
            continue
        op = fields[2] if len(fields) == 4 else ""
        out.append({"major": int(fields[0]), "minor": int(fields[1]), "op": op, "value": int(fields[-1])})
    return out


# Like runc: the first group whose first file has data wins (BFQ with debug files, BFQ, CFQ,
# then the throttling layer's counters, which every kernel has).
_BLKIO_GROUPS = [
    [("blkio.bfq.sectors_recursive", "sectorsRecursive"),
     ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.bfq.time_recursive", "ioTimeRecursive"),
     ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.sectors_recursive", "sectorsRecursive"),
     ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.time_recursive", "ioTimeRecursive"),
     ("blkio.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.throttle.io_serviced", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive")],
]


def _v1_blkio(d: str, out: dict) -> None:
    for group in _BLKIO_GROUPS:
        first = _blkio_entries(d, group[0][0])
        if not first:
            continue
        out[group[0][1]] = first
        for name, key in group[1:]:
            out[key] = _blkio_entries(d, name) or []
        return


def v1_stats(dirs: dict[str, str]) -> dict:
    s = _empty()
    ticks = os.sysconf("SC_CLK_TCK")
    if (d := dirs.get("cpuacct")) is not None:
        usage = s["cpu"]["usage"]
        usage["total"] = read_uint(d, "cpuacct.usage", default=0)
        usage["percpu"] = _uints(read_file_or_none(d, "cpuacct.usage_percpu"))
        rows = (read_file_or_none(d, "cpuacct.usage_all") or "").splitlines()[1:]
        for row in rows:
            cols = row.split()
            if len(cols) == 3:
                usage["percpu_user"].append(int(cols[1]))
                usage["percpu_kernel"].append(int(cols[2]))
        stat = read_key_values(d, "cpuacct.stat")
        usage["user"] = stat.get("user", 0) * 1_000_000_000 // ticks
        usage["kernel"] = stat.get("system", 0) * 1_000_000_000 // ticks
    if (d := dirs.get("cpu")) is not None:
        stat = read_key_values(d, "cpu.stat")
        s["cpu"]["throttling"] = {"periods": stat.get("nr_periods", 0), "throttledPeriods": stat.get("nr_throttled", 0),
                                  "throttledTime": stat.get("throttled_time", 0)}
    if (d := dirs.get("cpuset")) is not None:
        s["cpuset"] = _v1_cpuset(d)
    if (d := dirs.get("memory")) is not None:
        raw = read_key_values(d, "memory.stat")
        s["memory"] = {"cache": raw.get("cache", 0), "usage": _v1_memory_entry(d, "memory"),
                       "swap": _v1_memory_entry(d, "memory.memsw"), "kernel": _v1_memory_entry(d, "memory.kmem"),
                       "kernelTCP": _v1_memory_entry(d, "memory.kmem.tcp"), "raw": raw}
    if (d := dirs.get("pids")) is not None:
        s["pids"] = {"current": read_uint(d, "pids.current", default=0),
                     "limit": _pids_limit(read_uint(d, "pids.max", default=0))}
    if (d := dirs.get("blkio")) is not None:
        _v1_blkio(d, s["blkio"])
    if (d := dirs.get("hugetlb")) is not None:
        for size in hugepage_sizes():
            prefix = f"hugetlb.{size}"
            s["hugetlb"][size] = {"usage": read_uint(d, f"{prefix}.usage_in_bytes", default=0),
                                  "max": read_uint(d, f"{prefix}.max_usage_in_bytes", default=0),
                                  "failcnt": read_uint(d, f"{prefix}.failcnt", default=0)}
    return s


def _v1_cpuset(d: str) -> dict:
    def flag(name: str) -> int:
        return read_uint(d, f"cpuset.{name}", default=0)
    level = read_file_or_none(d, "cpuset.sched_relax_domain_level")
    return {"cpus": _cpu_list(read_file_or_none(d, "cpuset.cpus")), "cpu_exclusive": flag("cpu_exclusive"),
            "mems": _cpu_list(read_file_or_none(d, "cpuset.mems")), "mem_hardwall": flag("mem_hardwall"),
            "mem_exclusive": flag("mem_exclusive"), "memory_migrate": flag("memory_migrate"),
            "memory_spread_page": flag("memory_spread_page"), "memory_spread_slab": flag("memory_spread_slab"),
            "memory_pressure": flag("memory_pressure"), "sched_load_balance": flag("sched_load_balance"),
            "sched_relax_domain_level": int(level) if level and level.strip().lstrip("-").isdigit() else 0}


# --- v2 ------------------------------------------------------------------------------------------

def _v2_memory_entry(d: str, prefix: str) -> dict | None:
    usage = read_uint(d, f"{prefix}.current", default=-1)
    if usage == -1:
        return None
    return _mem_entry(read_uint(d, f"{prefix}.max", default=0), usage, read_uint(d, f"{prefix}.peak", default=0))


def _v2_io(d: str, out: dict) -> None:
    names = {"rbytes": ("ioServiceBytesRecursive", "Read"), "wbytes": ("ioServiceBytesRecursive", "Write"),
             "rios": ("ioServicedRecursive", "Read"), "wios": ("ioServicedRecursive", "Write")}
    for line in (read_file_or_none(d, "io.stat") or "").splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, minor = (int(x) for x in fields[0].split(":"))
        for item in fields[1:]:
            key, _, value = item.partition("=")
            if key in names:
                table, op = names[key]
                out[table].append({"major": major, "minor": minor, "op": op, "value": int(value)})


def v2_stats(d: str) -> dict:
    s = _empty()
    stat = read_key_values(d, "cpu.stat")
    s["cpu"]["usage"].update(total=stat.get("usage_usec", 0) * 1000, user=stat.get("user_usec", 0) * 1000,
                             kernel=stat.get("system_usec", 0) * 1000)
    s["cpu"]["throttling"] = {"periods": stat.get("nr_periods", 0), "throttledPeriods": stat.get("nr_throttled", 0),
                              "throttledTime": stat.get("throttled_usec", 0) * 1000}
    cpus = read_file_or_none(d, "cpuset.cpus.effective")
    if cpus is not None:
        s["cpuset"] = {"cpus": _cpu_list(cpus), "mems": _cpu_list(read_file_or_none(d, "cpuset.mems.effective"))}
    raw = read_key_values(d, "memory.stat")
    usage = _v2_memory_entry(d, "memory")
    if usage is not None:
        swap = _v2_memory_entry(d, "memory.swap") or _mem_entry()
        # v1 reported memory+swap; keep that meaning (runc does the same on v2).
        unlimited = 2**64 - 1
        both_limited = swap["limit"] != unlimited and usage["limit"] != unlimited
        combined = _mem_entry(swap["limit"] + usage["limit"] if both_limited else unlimited,
                              swap["usage"] + usage["usage"])
        s["memory"] = {"cache": raw.get("file", 0), "usage": usage, "swap": combined, "kernel": _mem_entry(),
                       "kernelTCP": _mem_entry(), "raw": raw}
    else:
        s["memory"]["raw"] = raw
    current = read_uint(d, "pids.current", default=-1)
    if current != -1:
        s["pids"] = {"current": current, "limit": _pids_limit(read_uint(d, "pids.max", default=0))}
    else:
        procs = read_file_or_none(d, "cgroup.procs") or ""
        s["pids"] = {"current": len(procs.split()), "limit": 0}
    _v2_io(d, s["blkio"])
    for size in hugepage_sizes():
        prefix = f"hugetlb.{size}"
        usage_value = read_uint(d, f"{prefix}.rsvd.current", default=-1)
        if usage_value == -1:
            usage_value = read_uint(d, f"{prefix}.current", default=-1)
        if usage_value == -1:
            continue
        events = read_key_values(d, f"{prefix}.events")
        s["hugetlb"][size] = {"usage": usage_value, "max": 0, "failcnt": events.get("max", 0)}
    return s
