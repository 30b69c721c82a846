"""events: runc's event stream for one container, as JSON lines.

  events --stats ID           one {"type":"stats","id":ID,"data":{...}} and exit
  events [--interval 5s] ID   a stats event every interval, an {"type":"oom","id":ID} event whenever
                              the container's memory cgroup goes out of memory; exit 0 when the
                              container stops (or its cgroup is removed)

The data object has runc's field names and its JSON encoding (zero fields runc marks omitempty
are left out, map keys sorted), so tools written for `runc events` read it unchanged.
OOMs are noticed as the kernel reports them, not by polling: on cgroup v1 through an eventfd
registered on memory.oom_control, on v2 by poll(2) on memory.events (oom_kill counter): cgroups/oom.py.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time

from oci_runtime.cgroups.oom import open_oom_watcher
from oci_runtime.errors import BadState, RuntimeFailure
from oci_runtime.log import logger


# --- runc's JSON shape -----------------------------------------------------------------------------

# Fields runc's types.Stats marks `omitempty`: left out when zero or empty (structs never are).
_OMIT_EMPTY = {
    ("cpu", "usage"): ("total", "percpu", "percpu_kernel", "percpu_user"),
    ("cpu", "throttling"): ("periods", "throttledPeriods", "throttledTime"),
    ("cpuset",): ("cpus", "mems"),
    ("memory",): ("cache", "raw"),
    ("memory", "usage"): ("usage", "max"),
    ("memory", "swap"): ("usage", "max"),
    ("memory", "kernel"): ("usage", "max"),
    ("memory", "kernelTCP"): ("usage", "max"),
    ("pids",): ("current", "limit"),
    ("blkio",): ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
                 "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive"),
}


def _drop_empty(obj: dict, keys) -> dict:
    return {k: v for k, v in obj.items() if not (k in keys and v in (0, "", None, [], {}))}


def runc_shape(stats: dict) -> dict:
    """The stats record (cgroups.stats) encoded the way runc's Go types encode it."""
    out = {}
    for section, value in stats.items():
        if isinstance(value, dict):
            value = dict(value)
            for (name, *sub), keys in _OMIT_EMPTY.items():
                if name != section:
                    continue
                if not sub:
                    value = _drop_empty(value, keys)
                elif isinstance(value.get(sub[0]), dict):
                    value[sub[0]] = _drop_empty(value[sub[0]], keys)
            if section == "memory" and isinstance(value.get("raw"), dict):
                value["raw"] = dict(sorted(value["raw"].items()))   # a Go map: keys in order
            elif section == "blkio":
                value = {k: [_drop_empty(e, ("major", "minor", "op", "value")) for e in entries]
                         for k, entries in value.items()}
            elif section == "hugetlb":
                value = {size: _drop_empty(entry, ("usage", "max")) for size, entry in sorted(value.items())}
            elif section == "intel_rdt":
                value = _drop_empty(value, tuple(value))
        out[section] = value
    return out


class EventWriter:
    """One compact JSON object per line, flushed at once (a pipe reader waits for each event)."""

    def __init__(self, container_id: str, stream=None):
        self.id = container_id
        self.stream = stream or sys.stdout
        self.closed = False

    def emit(self, kind: str, data: dict | None = None) -> None:
        event: dict = {"type": kind, "id": self.id}
        if data is not None:
            event["data"] = data
        try:
            self.stream.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away: stop quietly, and keep Python's exit-time flush from complaining.
            self.closed = True
            devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


# --- watching -----------------------------------------------------------------------------------------


def _open_pidfd(container) -> int | None:
    """A pidfd for the container's init, or None (kernel without pidfd_open: we poll instead)."""
    from oci_runtime import linux

    try:
        pidfd = linux.pidfd_open(container.pid)
    except OSError:
        return None
    if not container.init_alive():   # the pid was free or reused by the time we opened it
        os.close(pidfd)
        raise BadState(f"container with id {container.id} is not running")
    return pidfd


def watch(container, mgr, out: EventWriter, interval: float) -> int:
    """Stats every `interval` seconds and OOM events as they happen, until the container stops."""
    pidfd = _open_pidfd(container)
    oom = open_oom_watcher(mgr)
    poller = select.poll()
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    if oom is not None:
        poller.register(oom.fd, oom.poll_events)
    # Without a pidfd, look at init's state at least once a second.
    recheck = None if pidfd is not None else 1.0
    next_stats = time.monotonic() + interval
    try:
        while not out.closed:
            wait = max(0.0, next_stats - time.monotonic())
            if recheck is not None:
                wait = min(wait, recheck)
            ready = dict(poller.poll(int(wait * 1000) + 1))
            if oom is not None and oom.fd in ready:
                count, gone = oom.read()
                for _ in range(count):
                    out.emit("oom")
                if gone:
                    return 0
            if (pidfd is not None and pidfd in ready) or (pidfd is None and not container.init_alive()):
                if oom is not None:   # an OOM kill of init wakes both; report it before leaving
                    for _ in range(oom.read()[0]):
                        out.emit("oom")
                return 0
            if time.monotonic() >= next_stats:
                try:
                    out.emit("stats", runc_shape(mgr.stats()))
                except RuntimeFailure as e:   # like runc: report, and try again next time
                    logger.error(f"events: reading stats of {container.id}: {e}")
                next_stats += interval * max(1, int((time.monotonic() - next_stats) // interval) + 1)
    finally:
        if oom is not None:
            oom.close()
        if pidfd is not None:
            os.close(pidfd)
    return 0
