"""Namespaces: which to create, which to join by path, uid/gid maps, time offsets, loopback."""

from __future__ import annotations

import errno
import fcntl
import os
import struct

import _socket as socket

from oci_runtime import linux
from oci_runtime.errors import ConfigInvalid, RuntimeFailure

FLAGS = {
    "pid": linux.CLONE_NEWPID, "network": linux.CLONE_NEWNET, "mount": linux.CLONE_NEWNS,
    "ipc": linux.CLONE_NEWIPC, "uts": linux.CLONE_NEWUTS, "user": linux.CLONE_NEWUSER,
    "cgroup": linux.CLONE_NEWCGROUP, "time": linux.CLONE_NEWTIME,
}
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
              "user": "user", "cgroup": "cgroup", "time": "time"}
# setns order: the user namespace first (it owns the others), the mount namespace last (it moves our root)
JOIN_ORDER = ["user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount"]


class NamespacePlan:
    def __init__(self) -> None:
        self.new = 0                              # CLONE_NEW* flags to unshare
        self.join: list[tuple[str, str]] = []     # (type, path) to setns, in JOIN_ORDER

    def creates(self, kind: str) -> bool:
        return bool(self.new & FLAGS[kind])

    def has(self, kind: str) -> bool:
        return self.creates(kind) or any(t == kind for t, _ in self.join)


def plan(linux: dict) -> NamespacePlan:
    result = NamespacePlan()
    seen: set[str] = set()
    joins = {}
    for i, ns in enumerate(linux.get("namespaces") or []):
        kind = ns.get("type")
        if kind not in FLAGS:
            raise ConfigInvalid(f"linux.namespaces[{i}].type: unknown namespace type {kind!r}")
        if kind in seen:
            raise ConfigInvalid(f"linux.namespaces: namespace {kind!r} is listed twice")
        seen.add(kind)
        path = ns.get("path")
        if path:
            if not os.path.exists(path):
                raise ConfigInvalid(f'linux.namespaces[{i}]: {kind} namespace path "{path}" does not exist')
            joins[kind] = path
        else:
            result.new |= FLAGS[kind]
    result.join = [(kind, joins[kind]) for kind in JOIN_ORDER if kind in joins]
    return result


def check_compatible(config: dict, ns: NamespacePlan) -> None:
    """The spec's rules tying other settings to namespaces."""
    linux_cfg = config.get("linux") or {}
    if (config.get("hostname") or config.get("domainname")) and not ns.has("uts"):
        raise ConfigInvalid("unable to set hostname without a private UTS namespace")
    if (linux_cfg.get("uidMappings") or linux_cfg.get("gidMappings")) and not ns.creates("user"):
        raise ConfigInvalid("uidMappings/gidMappings need a new user namespace")
    if ns.creates("user") and not (linux_cfg.get("uidMappings") and linux_cfg.get("gidMappings")):
        raise ConfigInvalid("a new user namespace needs linux.uidMappings and linux.gidMappings")
    if linux_cfg.get("timeOffsets") and not ns.creates("time"):
        raise ConfigInvalid("linux.timeOffsets needs a new time namespace")
    for key in (linux_cfg.get("sysctl") or {}):
        if key.startswith("net.") and not ns.has("network"):
            raise ConfigInvalid(f"sysctl {key} is not allowed in the host's network namespace")
        if (key.startswith("kernel.msg") or key.startswith("kernel.sem") or key.startswith("kernel.shm")
                or key.startswith("fs.mqueue.")) and not ns.has("ipc"):
            raise ConfigInvalid(f"sysctl {key} is not allowed in the host's IPC namespace")
        if key in ("kernel.hostname", "kernel.domainname") and not ns.has("uts"):
            raise ConfigInvalid(f"sysctl {key} is not allowed in the host's UTS namespace")


def open_joins(ns: NamespacePlan) -> list[tuple[str, int]]:
    fds = []
    try:
        for kind, path in ns.join:
            fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as e:
        for _, fd in fds:
            os.close(fd)
        raise RuntimeFailure(f"opening namespace {path}: {e.strerror}") from None
    return fds


def join(kind: str, fd: int, path: str = "") -> None:
    try:
        linux.setns(fd, FLAGS[kind], label=f"{kind} namespace {path}".strip())
    except OSError as e:
        raise RuntimeFailure(f'joining {kind} namespace "{path}": {e.strerror}') from None


def write_id_maps(pid: int, linux: dict) -> None:
    """Written by the runtime (outside) for the child that just unshared its user namespace. An unprivileged
    runtime may map only its own ids itself (the gid map only once setgroups(2) is denied in the namespace);
    for more it asks the setuid newuidmap/newgidmap (its subordinate ids in /etc/subuid, /etc/subgid), and
    then setgroups stays allowed, as runc does."""
    rootless = os.geteuid() != 0
    gid_maps = linux.get("gidMappings") or []
    own_gid_only = [(m.get("containerID"), m.get("hostID"), m.get("size")) for m in gid_maps] == [(0, os.getegid(), 1)]
    if rootless and own_gid_only:
        try:
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
        except OSError as e:
            raise RuntimeFailure(f"denying setgroups in /proc/{pid}/setgroups: {e.strerror}") from None
    for name, key, tool in (("uid_map", "uidMappings", "newuidmap"), ("gid_map", "gidMappings", "newgidmap")):
        maps = linux.get(key) or []
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(lines)
        except OSError as e:
            helper = None
            if rootless and e.errno == errno.EPERM:
                import shutil  # only on this path: the common start never loads it

                helper = shutil.which(tool)
            if helper is None:
                raise RuntimeFailure(f"writing {key} to /proc/{pid}/{name}: {e.strerror}") from None
            args = [str(v) for m in maps for v in (m["containerID"], m["hostID"], m["size"])]
            if _run_program(helper, [tool, str(pid), *args]) != 0:
                raise RuntimeFailure(f"writing {key} for pid {pid} with {helper} failed (is the range in "
                                     f"/etc/sub{name[:3]}?)") from None


def _run_program(path: str, argv: list[str]) -> int:
    """Its exit status; fork/exec, so that subprocess stays off the start path."""
    child = os.fork()
    if child == 0:
        try:
            os.execv(path, argv)
        finally:
            os._exit(127)
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])


def write_time_offsets(offsets: dict | None) -> None:
    if not offsets:
        return
    lines = "".join(f"{clock} {v.get('secs', 0)} {v.get('nanosecs', 0)}\n" for clock, v in offsets.items())
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)
    except OSError as e:
        raise RuntimeFailure(f"setting time namespace offsets: {e.strerror}") from None


def loopback_up() -> None:
    """Bring `lo` up in a new network namespace (ioctl; no netlink library on the hot path)."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()
