"""The systemd cgroup driver (`--systemd-cgroup`, cgroupsPath "slice:prefix:name").

With systemd managing the cgroup tree, a runtime must ask systemd (over D-Bus) for a transient
scope rather than make directories itself, or systemd will later undo its work. pyrunc has no
D-Bus client yet, so this driver checks the request and refuses clearly instead of writing
behind systemd's back. The path parsing and slice expansion are what the real driver will use.
"""

from __future__ import annotations

import os

from oci_runtime.cgroups.fileio import CgroupError

SYSTEMD_RUNTIME_DIR = "/run/systemd/system"
DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "pyrunc"


def systemd_running() -> bool:
    """systemd's own test (sd_booted): its runtime directory exists."""
    return os.path.isdir(SYSTEMD_RUNTIME_DIR)


def parse_systemd_path(cgroups_path: str | None, container_id: str) -> tuple[str, str, str]:
    """(slice, prefix, name); absent means the default slice, our prefix and the container id."""
    if not cgroups_path:
        return DEFAULT_SLICE, DEFAULT_PREFIX, container_id
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise CgroupError(f'cgroup: expected cgroupsPath to be of format "slice:prefix:name" for systemd '
                          f'cgroups, got "{cgroups_path}" instead')
    slice_, prefix, name = parts
    if not name:
        raise CgroupError(f'cgroup: systemd cgroupsPath "{cgroups_path}" has an empty name')
    return slice_ or DEFAULT_SLICE, prefix, name


def expand_slice(slice_: str) -> str:
    """systemd's slice naming: "a-b-c.slice" lives at /a.slice/a-b.slice/a-b-c.slice; "-.slice" is the root."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise CgroupError(f'cgroup: invalid systemd slice name "{slice_}" (want e.g. "system.slice")')
    name = slice_[: -len(".slice")]
    if name == "-":
        return "/"
    if not name or name.startswith("-") or name.endswith("-") or "--" in name:
        raise CgroupError(f'cgroup: invalid systemd slice name "{slice_}"')
    path, prefix = "", ""
    for component in name.split("-"):
        prefix = f"{prefix}-{component}" if prefix else component
        path += f"/{prefix}.slice"
    return path


def unit_name(prefix: str, name: str) -> str:
    """The transient unit: a scope "<prefix>-<name>.scope", or the named slice itself."""
    if name.endswith(".slice"):
        return name
    return f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def open_systemd_manager(cgroups_path: str | None, container_id: str):
    if not systemd_running():
        raise CgroupError("cgroup: systemd cgroup driver requested but systemd is not running "
                          f"({SYSTEMD_RUNTIME_DIR} is missing); run without --systemd-cgroup to use cgroupfs")
    slice_, prefix, name = parse_systemd_path(cgroups_path, container_id)
    scope = f"{expand_slice(slice_)}/{unit_name(prefix, name)}".replace("//", "/")
    raise CgroupError(f"cgroup: the systemd cgroup driver is not supported by pyrunc yet (it would create the "
                      f"transient unit {scope} over D-Bus); run without --systemd-cgroup to use cgroupfs")
