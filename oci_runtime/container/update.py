"""update: change the cgroup limits of a live container, as `runc update` does.

Two ways to say what changes:
  update --resources FILE|- ID    a LinuxResources JSON document (podman: a file; docker: stdin)
  update --memory 64m ... ID      runc's flags (ignored when --resources is given, as in runc)

Zero means "leave unchanged" for the limits docker sends as zeros; such values never reach a
cgroup file. The cgroup manager undoes its writes if the kernel refuses one, so a refused update
changes nothing. What was applied is merged into state.json ("resources") for later commands.
"""

from __future__ import annotations

from oci_runtime.errors import BadState, RuntimeFailure
from oci_runtime.log import logger


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


def update(container, request: dict) -> None:
    """Apply a validated LinuxResources request to the container's cgroup and record it in its state."""
    from oci_runtime.container.lifecycle import STOPPED

    request = normalise_request(request)
    with container.dir.locked():
        container.state = container.dir.load()   # what an update that held the lock before us saved
        if container.status() == STOPPED:
            raise BadState(f"cannot update container {container.id}: container not running")
        mgr = container.cgroups
        if mgr is None:
            raise RuntimeFailure(f"cannot update container {container.id}: it has no cgroup")
        mgr.update(request)
        container.state["resources"] = merge_resources(container.state.get("resources"), request)
        container.dir.save(container.state)
