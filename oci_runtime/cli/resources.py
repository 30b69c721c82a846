"""update, events, pause, resume: a live container's resources."""

from __future__ import annotations

import sys

from oci_runtime import log, units
from oci_runtime.cli.common import state_root
from oci_runtime.cli.parser import Cmd, Opt
from oci_runtime.errors import BadState, RuntimeFailure


# Flags whose value is a memory size: runc reads them with docker's units.RAMInBytes ("-1" = unlimited).
_MEMORY_FLAGS = (("memory", "limit"), ("memory_swap", "swap"), ("memory_reservation", "reservation"),
                 ("kernel_memory_tcp", "kernelTCP"))


_UNSIGNED_CPU_FLAGS = (("cpu_burst", "burst"), ("cpu_period", "period"), ("cpu_rt_period", "realtimePeriod"),
                       ("cpu_share", "shares"))


_SIGNED_CPU_FLAGS = (("cpu_quota", "quota"), ("cpu_rt_runtime", "realtimeRuntime"), ("cpu_idle", "idle"))


_ALL_FLAGS = ("blkio_weight", "cpu_period", "cpu_quota", "cpu_burst", "cpu_share", "cpu_rt_period",
              "cpu_rt_runtime", "cpuset_cpus", "cpuset_mems", "memory", "memory_reservation", "memory_swap",
              "kernel_memory", "kernel_memory_tcp", "pids_limit", "l3_cache_schema", "mem_bw_schema", "cpu_idle")


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
        log.logger.warning("Setting --kernel-memory is ignored: kernel memory limits are not supported")
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
    import json

    try:
        return json.loads(text)
    except ValueError as e:
        raise RuntimeFailure(f"update: resources from {where} are not valid JSON: {e}") from None


def cmd_update(args) -> int:
    from oci_runtime.container.lifecycle import Container
    from oci_runtime.container.update import normalise_request, update
    from oci_runtime.validate import validate_resources

    container = Container.load(state_root(args), args.id)   # runc's order: an unknown id first
    if args.resources:
        given = [f"--{a.replace('_', '-')}" for a in _ALL_FLAGS if getattr(args, a, None)]
        if given:
            log.logger.warning(f"update: --resources is given, so {' '.join(given)} ignored (as in runc)")
        request = read_resources_document(args.resources)
        document = "resources from stdin" if args.resources == "-" else args.resources
    else:
        request = resources_from_flags(args)
        document = "update flags"
    # devices are dropped (with a warning) before the rest is checked: update never changes them, as runc
    if isinstance(request, dict):
        request = normalise_request(request)
    validate_resources(request, document=document)
    update(container, request)
    return 0


def parse_duration(text: str) -> float:
    """Seconds from a Go duration string as runc's --interval takes it: "5s", "500ms", "1m30s", "1.5h"."""
    try:
        return units.go_duration(text.strip()) / 1e9
    except ValueError as e:
        raise RuntimeFailure(str(e)) from None


def cmd_events(args) -> int:
    from oci_runtime.container.events import EventWriter, runc_shape, watch
    from oci_runtime.container.lifecycle import STOPPED, Container

    interval = parse_duration(args.interval)
    if interval <= 0:
        raise RuntimeFailure("duration interval must be greater than 0")
    container = Container.load(state_root(args), args.id)
    if container.status() == STOPPED:
        raise BadState(f"container with id {args.id} is not running")
    mgr = container.cgroups
    if mgr is None:
        raise RuntimeFailure(f"container {args.id} has no cgroup: no statistics to report")
    out = EventWriter(args.id)
    if args.stats:
        out.emit("stats", runc_shape(mgr.stats()))
        return 0
    return watch(container, mgr, out, interval)


def cmd_pause(args) -> int:
    from oci_runtime.container.lifecycle import Container

    c = Container.load(state_root(args), args.id)
    with c.dir.locked():
        c.pause()
    return 0


def cmd_resume(args) -> int:
    from oci_runtime.container.lifecycle import Container

    c = Container.load(state_root(args), args.id)
    with c.dir.locked():
        c.resume()
    return 0


def commands() -> list:
    update_flags = [f"--{name.replace('_', '-')}" for name in _ALL_FLAGS]
    return [
        Cmd("update", cmd_update, "update the resource limits of a container",
            [Opt("-r --resources", "str", None, "LinuxResources JSON file, or - for stdin")]
            + [Opt(flag, "str", None, flag[2:].replace("-", " ")) for flag in update_flags], ("id",)),
        Cmd("events", cmd_events, "show container events and resource usage", [
            Opt("--stats", help="print one stats event and exit"),
            Opt("--interval", "str", "5s", "stats interval (e.g. 5s, 500ms)"),
        ], ("id",)),
        Cmd("pause", cmd_pause, "freeze all processes of a container", args=("id",)),
        Cmd("resume", cmd_resume, "thaw a paused container", args=("id",)),
    ]
