"""cgroups for pyrunc: one manager per container, for cgroup v1 (and hybrid) or v2.

    mgr = open_manager(spec["linux"].get("cgroupsPath"), container_id, systemd=args.systemd_cgroup)
    mgr.create(); mgr.set(spec["linux"].get("resources")); mgr.apply(pid)
    state["cgroup"] = mgr.to_state()       # later: open_manager_from_state(state["cgroup"])

Managers offer: create, set, apply, update, pids, freeze, thaw, frozen, stats, kill_all, destroy,
exists, to_state, mounts_for_container. Every failure is a CgroupError whose message names the
file and the value. Only the modules a command needs are imported (v1 or v2; eBPF only to set
v2 device rules; stats only for stats).
"""

from __future__ import annotations

from oci_runtime.cgroups.fileio import CgroupError
from oci_runtime.cgroups.paths import CGROUP_ROOT, is_cgroup2_root

__all__ = ["open_manager", "open_manager_from_state", "CgroupError", "DEFAULT_DEVICE_RULES", "DeviceRule",
           "cgroup_version"]


def __getattr__(name: str):
    """DEFAULT_DEVICE_RULES and DeviceRule, from devices.py when asked for: the commands that only read or
    remove a cgroup never load it."""
    if name in ("DEFAULT_DEVICE_RULES", "DeviceRule"):
        from oci_runtime.cgroups import devices
        return getattr(devices, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cgroup_version(root: str = CGROUP_ROOT) -> int:
    """2 when `root` is a cgroup2 mount (pure v2), else 1 (v1 or hybrid)."""
    return 2 if is_cgroup2_root(root) else 1


def open_manager(cgroups_path: str | None, container_id: str, *, systemd: bool = False,
                 root: str = CGROUP_ROOT, v2_mountpoint: str | None = None):
    """The manager for a container's cgroup (nothing is created until `create()`).

    `v2_mountpoint` forces the v2 manager on that cgroup2 mount (e.g. /sys/fs/cgroup/unified on a
    hybrid host); otherwise the layout under `root` decides.
    """
    if systemd:
        from oci_runtime.cgroups.systemd import open_systemd_manager
        return open_systemd_manager(cgroups_path, container_id)
    if v2_mountpoint is not None or is_cgroup2_root(root):
        from oci_runtime.cgroups.v2 import V2Manager
        return V2Manager.open(cgroups_path, container_id, mountpoint=v2_mountpoint or root)
    from oci_runtime.cgroups.v1 import V1Manager
    return V1Manager.open(cgroups_path, container_id, root=root)


def open_manager_from_state(state: dict):
    """The manager saved by `to_state()` (in state.json), for later commands."""
    if not isinstance(state, dict) or state.get("version") not in (1, 2):
        raise CgroupError(f"cgroup: unrecognised cgroup state {state!r}")
    if state["version"] == 2:
        from oci_runtime.cgroups.v2 import V2Manager
        return V2Manager.from_state(state)
    from oci_runtime.cgroups.v1 import V1Manager
    return V1Manager.from_state(state)
