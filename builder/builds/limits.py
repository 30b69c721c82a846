"""build's resource flags for RUN steps (--ulimit, --shm-size, -m/--memory, --memory-swap, --cpu-shares,
--cpu-period, --cpu-quota, --cpuset-cpus, --cpuset-mems, --cgroup-parent), checked as docker checks them
and applied to each step's container (its rlimits, /dev/shm and cgroup). They change how a step runs,
not what it makes, so they are no part of its cache key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from builder.errors import BuildError
from oci_runtime.units import ram_in_bytes

ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
                "rtprio", "rttime", "sigpending", "stack")
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass
class RunLimits:
    rlimits: list[dict] = field(default_factory=list)  # OCI process.rlimits entries
    shm_size: int = 0                                  # bytes of /dev/shm (0: the default 64 MiB)
    resources: dict = field(default_factory=dict)      # OCI linux.resources (memory, cpu)
    cgroup_parent: str = ""

    def apply(self, spec: dict, container_id: str) -> None:
        """Put these limits into a step's config.json."""
        proc = spec["process"]
        types = {r["type"] for r in self.rlimits}
        proc["rlimits"] = [r for r in proc.get("rlimits", []) if r["type"] not in types] + list(self.rlimits)
        if self.shm_size:
            for m in spec["mounts"]:
                if m["destination"] == "/dev/shm":
                    m["options"] = [o for o in m["options"] if not o.startswith("size=")] + [f"size={self.shm_size}"]
        linux = spec["linux"]
        for key, value in self.resources.items():
            linux.setdefault("resources", {})[key] = value
        if self.cgroup_parent:
            linux["cgroupsPath"] = "/" + self.cgroup_parent.strip("/") + "/" + container_id


def _bytes(flag: str, text: str) -> int:
    try:
        return ram_in_bytes(text)
    except ValueError:
        raise BuildError(f"invalid {flag} {text!r}: want a size such as 512m or 2g") from None


def _int(flag: str, text: str | None, minimum: int = 0) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BuildError(f"invalid {flag} {text!r}: want an integer") from None
    if value < minimum:
        raise BuildError(f"invalid {flag} {text!r}: must be at least {minimum}")
    return value


def parse_ulimit(text: str) -> dict:
    """NAME=SOFT[:HARD] as docker reads it (docker/go-units ParseUlimit)."""
    name, sep, values = text.partition("=")
    if not sep:
        raise BuildError(f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise BuildError(f"invalid ulimit type: {name}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise BuildError(f"invalid ulimit argument: {text}") from None
    if soft > hard:
        raise BuildError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"type": "RLIMIT_" + name.upper(), "soft": soft, "hard": hard}


def parse_limits(args) -> RunLimits:
    limits = RunLimits()
    seen: dict[str, dict] = {}
    for text in args.ulimit or []:
        rlimit = parse_ulimit(text)
        seen[rlimit["type"]] = rlimit  # the last one of a kind wins, as docker's map
    limits.rlimits = list(seen.values())
    if args.shm_size:
        limits.shm_size = _bytes("--shm-size", args.shm_size)
        if limits.shm_size <= 0:
            raise BuildError(f"invalid --shm-size {args.shm_size!r}: must be greater than 0")
    memory = _bytes("--memory", args.memory) if args.memory else 0
    if memory and memory < 6 * 1024 * 1024:
        raise BuildError("minimum memory limit allowed is 6MB")
    if args.memory_swap:
        if not memory:
            raise BuildError("you should always set the memory limit when using the memory swap limit")
        swap = -1 if args.memory_swap == "-1" else _bytes("--memory-swap", args.memory_swap)
        if swap != -1 and swap < memory:
            raise BuildError("minimum memoryswap limit should be larger than memory limit, see usage")
        limits.resources["memory"] = {"limit": memory, "swap": swap}
    elif memory:
        limits.resources["memory"] = {"limit": memory}
    cpu = {}
    for key, flag, value, minimum in (("shares", "--cpu-shares", args.cpu_shares, 2),
                                      ("period", "--cpu-period", args.cpu_period, 1000),
                                      ("quota", "--cpu-quota", args.cpu_quota, 1000)):
        number = _int(flag, value, minimum)
        if number is not None:
            cpu[key] = number
    for key, flag, value in (("cpus", "--cpuset-cpus", args.cpuset_cpus), ("mems", "--cpuset-mems", args.cpuset_mems)):
        if value is not None:
            if not _CPUSET.match(value):
                raise BuildError(f"invalid {flag} {value!r}: want a list such as 0-3 or 0,1")
            cpu[key] = value
    if cpu:
        limits.resources["cpu"] = cpu
    if args.cgroup_parent:
        if ".." in args.cgroup_parent.split("/"):
            raise BuildError(f"invalid --cgroup-parent {args.cgroup_parent!r}")
        limits.cgroup_parent = args.cgroup_parent
    return limits
