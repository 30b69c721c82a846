"""Where cgroups live: the mounted hierarchies, our own cgroup, and the container's directory.

`linux.cgroupsPath` is resolved as runc resolves it: an absolute path is taken from the root of
each hierarchy, a relative one is placed under the runtime's own cgroup (on v2, under its parent,
since the runtime's own cgroup holds processes and so cannot delegate controllers), and an absent
one means the container id, relative. Unlike runc, which silently clamps `..`, a path that climbs
out of its base is refused.
"""

from __future__ import annotations

import os
import posixpath

from oci_runtime.cgroups.fileio import CgroupError

CGROUP_ROOT = "/sys/fs/cgroup"


class CgroupMount:
    """One cgroup mount from mountinfo."""

    __slots__ = ("mountpoint", "root", "fstype", "subsystems")

    def __init__(self, mountpoint: str, root: str, fstype: str, subsystems: tuple[str, ...]):
        self.mountpoint = mountpoint
        self.root = root                # the cgroup shown at the mount point ("/" unless in a cgroup namespace)
        self.fstype = fstype            # "cgroup" (v1) or "cgroup2"
        self.subsystems = subsystems    # v1 controllers and "name=..." hierarchies; () for cgroup2

    def __repr__(self) -> str:
        return f"CgroupMount({self.mountpoint!r}, root={self.root!r}, {self.fstype}, {self.subsystems})"

    @property
    def name(self) -> str:
        """The directory name under /sys/fs/cgroup, e.g. "cpu,cpuacct" or "systemd"."""
        return posixpath.basename(self.mountpoint)


def is_cgroup2_root(root: str = CGROUP_ROOT) -> bool:
    """A cgroup2 file system mounted at `root` (pure v2); a tmpfs of v1 hierarchies has no such file."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def known_v1_controllers() -> set[str]:
    names = set()
    try:
        with open("/proc/cgroups") as f:
            for line in f:
                if not line.startswith("#") and line.split():
                    names.add(line.split()[0])
    except OSError:
        pass
    return names


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[CgroupMount]:
    """Every cgroup and cgroup2 mount, in mount order."""
    from oci_runtime.mountinfo import unescape

    controllers: set[str] | None = None
    mounts = []
    with open(mountinfo) as f:
        for line in f:
            if " - cgroup" not in line:
                continue
            left, _, right = line.rstrip("\n").partition(" - ")
            fields, tail = left.split(" "), right.split(" ")
            fstype = tail[0]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            subsystems: tuple[str, ...] = ()
            if fstype == "cgroup":
                if controllers is None:
                    controllers = known_v1_controllers()
                opts = tail[2].split(",") if len(tail) > 2 else []
                subsystems = tuple(o for o in opts if o in controllers or o.startswith("name="))
            mounts.append(CgroupMount(unescape(fields[4]), unescape(fields[3]), fstype, subsystems))
    return mounts


def v1_hierarchies(mounts: list[CgroupMount], root: str = CGROUP_ROOT) -> list[CgroupMount]:
    """One mount per v1 hierarchy, preferring the one under `root` when a hierarchy is mounted twice."""
    chosen: dict[tuple[str, ...], CgroupMount] = {}
    for m in mounts:
        if m.fstype != "cgroup" or not m.subsystems:
            continue
        under_root = posixpath.dirname(m.mountpoint) == root
        if m.subsystems not in chosen or (under_root and posixpath.dirname(chosen[m.subsystems].mountpoint) != root):
            chosen[m.subsystems] = m
    return list(chosen.values())


def own_cgroups(pid: str | int = "self") -> dict[str, str]:
    """/proc/<pid>/cgroup as {controller: path}; the v2 entry is under the key ""."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) != 3:
                continue
            if parts[1] == "":
                out[""] = parts[2]
            for name in parts[1].split(","):
                if name:
                    out[name] = parts[2]
    return out


def clean_cgroups_path(path: str) -> str:
    """Normalise a cgroupsPath; refuse one whose `..` climbs above its base (the hierarchy root for an
    absolute path, the runtime's own cgroup for a relative one) and one naming the base itself."""
    absolute = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                where = "the cgroup hierarchy" if absolute else "the runtime's cgroup"
                raise CgroupError(f'cgroup: cgroupsPath "{path}" escapes {where} (".." above its root)')
            parts.pop()
            continue
        parts.append(comp)
    if not parts:
        raise CgroupError(f'cgroup: cgroupsPath "{path}" names the root of the hierarchy, not a cgroup below it')
    joined = "/".join(parts)
    return "/" + joined if absolute else joined


def inner_path(cgroups_path: str | None, container_id: str) -> str:
    """The cleaned cgroup path; absent means the container id, relative to our own cgroup like runc."""
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise CgroupError(f"cgroup: container id {container_id!r} cannot name a cgroup")
        return container_id
    return clean_cgroups_path(cgroups_path)


def dir_in_mount(mount: CgroupMount, cgroup_path: str) -> str:
    """Host directory for `cgroup_path` (a path from the hierarchy root) in this mount."""
    if mount.root in ("", "/"):
        return posixpath.join(mount.mountpoint, cgroup_path.lstrip("/"))
    rel = posixpath.relpath(cgroup_path, mount.root)
    if rel == ".." or rel.startswith("../"):
        # Our own cgroup is outside what this mount shows: use the mount's root (runc does the same).
        rel = ""
    return posixpath.join(mount.mountpoint, rel) if rel not in ("", ".") else mount.mountpoint


def v1_directory(mount: CgroupMount, inner: str, own: dict[str, str]) -> str:
    if inner.startswith("/"):
        return posixpath.join(mount.mountpoint, inner.lstrip("/"))
    base = own.get(mount.subsystems[0], "/")
    return dir_in_mount(mount, posixpath.join(base, inner))


def v2_directory(mountpoint: str, inner: str, own: dict[str, str], mount_root: str = "/") -> str:
    if inner.startswith("/"):
        return posixpath.join(mountpoint, inner.lstrip("/"))
    base = posixpath.dirname(own.get("", "/").rstrip("/")) or "/"
    return dir_in_mount(CgroupMount(mountpoint, mount_root, "cgroup2", ()), posixpath.join(base, inner))
