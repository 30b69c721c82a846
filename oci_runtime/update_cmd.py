"""`pyrunc update`: change the cgroup limits of a live container, as `runc update` does.

Two ways to say what changes:
  update --resources FILE|- ID    a LinuxResources JSON document (podman: a file; docker: stdin)
  update --memory 64m ... ID      runc's flags (ignored when --resources is given, as in runc)

Zero means "leave unchanged" for the limits docker sends as zeros; such values never reach a
cgroup file. The cgroup manager undoes its writes if the kernel refuses one, so a refused update
changes nothing. What was applied is merged into state.json ("resources") for later commands.
"""

from __future__ import annotations

import json
import sys

from . import units
from .errors import BadState, RuntimeFailure
from .log import logger
from .state import DEFAULT_ROOT

# Flags whose value is a memory size: runc reads them with docker's units.RAMInBytes ("-1" = unlimited).
_MEMORY_FLAGS = (("memory", "limit"), ("memory_swap", "swap"), ("memory_reservation", "reservation"),
                 ("kernel_memory_tcp", "kernelTCP"))
_UNSIGNED_CPU_FLAGS = (("cpu_burst", "burst"), ("cpu_period", "period"), ("cpu_rt_period", "realtimePeriod"),
                       ("cpu_share", "shares"))
_SIGNED_CPU_FLAGS = (("cpu_quota", "quota"), ("cpu_rt_runtime", "realtimeRuntime"), ("cpu_idle", "idle"))
_ALL_FLAGS = ("blkio_weight", "cpu_period", "cpu_quota", "cpu_burst", "cpu_share", "cpu_rt_period",
              "cpu_rt_runtime", "cpuset_cpus", "cpuset_mems", "memory", "memory_reservation", "memory_swap",
              "kernel_memory", "kernel_memory_tcp", "pids_limit", "l3_cache_schema", "mem_bw_schema", "cpu_idle")

# Fields where the update format's zero (or empty string, or false) means "unchanged".
_ZERO_IS_UNCHANGED = {
    "memory": {"limit", "reservation", "swap", "kernel", "kernelTCP", "disableOOMKiller"},
    "cpu": {"shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"},
    "pids": {"limit"},
    "blockIO": {"weight", "leafWeight"},
}
# List fields are merged entry by entry, an entry being named by these keys.
_LIST_KEYS = {
    ("blockIO", "weightDevice"): ("major", "minor"),
    ("blockIO", "throttleReadBpsDevice"): ("major", "minor"),
    ("blockIO", "throttleWriteBpsDevice"): ("major", "minor"),
    ("blockIO", "throttleReadIOPSDevice"): ("major", "minor"),
    ("blockIO", "throttleWriteIOPSDevice"): ("major", "minor"),
    ("network", "priorities"): ("name",),
    ("hugepageLimits",): ("pageSize",),
}
def ram_in_bytes(text: str) -> int:
    try:
        return units.ram_in_bytes(text)
    except ValueError as e:
        raise RuntimeFailure(str(e)) from None


def _integer(flag: str, text: str, *, signed: bool) -> int:
    """A decimal integer, as Go's strconv.ParseInt/ParseUint (base 10) read runc's numeric flags."""
    digits = text[1:] if signed and text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        kind = "an integer" if signed else "a non-negative integer"
        raise RuntimeFailure(f'invalid value for {flag}: "{text}" is not {kind}')
    return int(text)


def resources_from_flags(args) -> dict:
    """runc's flag form, turned into the LinuxResources document it stands for (absent = unchanged)."""
    memory: dict = {}
    cpu: dict = {}
    res: dict = {}
    for attr in ("l3_cache_schema", "mem_bw_schema"):
        if getattr(args, attr, None):
            kind = "CAT: l3 cache" if attr == "l3_cache_schema" else "MBA: memory bandwidth"
            raise RuntimeFailure(f"Intel RDT/{kind} schema is not enabled (pyrunc has no Intel RDT support)")
    if args.blkio_weight:
        weight = _integer("blkio-weight", args.blkio_weight, signed=True)
        if weight:
            res["blockIO"] = {"weight": weight}
    if args.cpuset_cpus:
        cpu["cpus"] = args.cpuset_cpus
    if args.cpuset_mems:
        cpu["mems"] = args.cpuset_mems
    for attr, key in _UNSIGNED_CPU_FLAGS + _SIGNED_CPU_FLAGS:
        text = getattr(args, attr)
        if text:
            cpu[key] = _integer(attr.replace("_", "-"), text, signed=(attr, key) in _SIGNED_CPU_FLAGS)
    for attr, key in _MEMORY_FLAGS:
        text = getattr(args, attr)
        if text:
            try:
                memory[key] = -1 if text == "-1" else ram_in_bytes(text)
            except RuntimeFailure as e:
                raise RuntimeFailure(f"invalid value for {attr.replace('_', '-')}: {e}") from None
    if args.kernel_memory:
        # Kernel memory limits do nothing since Linux 5.16 (runc ignores them too).
        logger.warning("Setting --kernel-memory is ignored: kernel memory limits are not supported")
    if args.pids_limit:
        limit = _integer("pids-limit", args.pids_limit, signed=True)
        if limit:
            res["pids"] = {"limit": limit}
    if memory:
        res["memory"] = memory
    if cpu:
        res["cpu"] = cpu
    return res


def read_resources_document(source: str) -> dict:
    """The --resources JSON: "-" is stdin (docker), anything else a file (podman)."""
    where = "stdin" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as f:
                text = f.read()
    except OSError as e:
        raise RuntimeFailure(f"update: reading resources from {where}: {e.strerror or e}") from None
    if not text.strip():
        raise RuntimeFailure(f"update: no resources given on {where} (expected a LinuxResources JSON object)")
    try:
        return json.loads(text)
    except ValueError as e:
        raise RuntimeFailure(f"update: resources from {where} are not valid JSON: {e}") from None


def normalise_request(res: dict) -> dict:
    """runc's adjustments: unlimited memory without a swap value means unlimited swap too; device
    rules are never changed by update (runc skips them: engines and GPU plugins own them)."""
    res = dict(res)
    if res.pop("devices", None):
        logger.warning("update: linux.resources.devices cannot be changed by update; ignored")
    memory = res.get("memory")
    if isinstance(memory, dict) and memory.get("limit") == -1 and memory.get("swap") is None:
        res["memory"] = {**memory, "swap": -1}
    return res


def merge_resources(old: dict | None, update: dict, path: tuple = ()) -> dict:
    """`old` with the changes `update` makes; zeros that mean "unchanged" leave old values alone."""
    merged = dict(old or {})
    for key, value in update.items():
        here = path + (key,)
        if value is None or key == "checkBeforeUpdate":   # a one-off instruction, not a setting
            continue
        if isinstance(value, dict):
            inner = merge_resources(merged.get(key) if isinstance(merged.get(key), dict) else {}, value, here)
            if inner or key in merged:
                merged[key] = inner
        elif isinstance(value, list) and here in _LIST_KEYS:
            merged[key] = _merge_entries(merged.get(key) or [], value, _LIST_KEYS[here])
        elif len(here) == 2 and here[1] in _ZERO_IS_UNCHANGED.get(here[0], ()) and value in (0, "", False):
            continue
        else:
            merged[key] = value
    return merged


def _merge_entries(old: list, new: list, keys: tuple[str, ...]) -> list:
    out = {tuple(item.get(k) for k in keys): item for item in old if isinstance(item, dict)}
    for item in new:
        out[tuple(item.get(k) for k in keys)] = item
    return list(out.values())


def cmd_update(args) -> int:
    from .container import STOPPED, Container
    from .validate import validate_resources

    container = Container.load(args.root or DEFAULT_ROOT, args.id)   # runc's order: an unknown id first
    if args.resources:
        given = [f"--{a.replace('_', '-')}" for a in _ALL_FLAGS if getattr(args, a, None)]
        if given:
            logger.warning(f"update: --resources is given, so {' '.join(given)} ignored (as in runc)")
        request = read_resources_document(args.resources)
        document = "resources from stdin" if args.resources == "-" else args.resources
    else:
        request = resources_from_flags(args)
        document = "update flags"
    validate_resources(request, document=document)
    request = normalise_request(request)

    with container.dir.locked():
        container.state = container.dir.load()   # what an update that held the lock before us saved
        if container.status() == STOPPED:
            raise BadState(f"cannot update container {args.id}: container not running")
        mgr = container.cgroups
        if mgr is None:
            raise RuntimeFailure(f"cannot update container {args.id}: it has no cgroup")
        mgr.update(request)
        container.state["resources"] = merge_resources(container.state.get("resources"), request)
        container.dir.save(container.state)
    return 0

