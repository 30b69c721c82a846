"""OOM kills in a container's memory cgroup, as events: an eventfd on memory.oom_control (v1), poll(2) on
memory.events (v2)."""

from __future__ import annotations

import os
import select

from oci_runtime.log import logger


class OomWatcherV1:
    """cgroup v1: the kernel signals an eventfd registered for memory.oom_control on every OOM in the
    cgroup (and once more when the cgroup is removed, which we tell apart by the cgroup being gone)."""

    poll_events = select.POLLIN

    def __init__(self, memory_dir: str):
        from oci_runtime.cgroups.fileio import write_file

        self.dir = memory_dir
        self.control = os.open(os.path.join(memory_dir, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            try:
                write_file(memory_dir, "cgroup.event_control", f"{self.fd} {self.control}")
            except BaseException:
                os.close(self.fd)
                raise
        except BaseException:
            os.close(self.control)
            raise

    def read(self) -> tuple[int, bool]:
        """(OOM events to report, whether the cgroup is gone)."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0, False
        if not os.path.exists(os.path.join(self.dir, "cgroup.event_control")):
            return 0, True
        return 1, False

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.control)


class OomWatcherV2:
    """cgroup v2: memory.events wakes poll(2) with POLLPRI when it changes; each increase of its
    oom_kill counter is an OOM kill in the container."""

    poll_events = select.POLLPRI

    def __init__(self, cgroup_dir: str):
        self.fd = os.open(os.path.join(cgroup_dir, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
        self.kills = self._oom_kills()   # reading also arms the next notification

    def _oom_kills(self) -> int:
        os.lseek(self.fd, 0, os.SEEK_SET)
        for line in os.read(self.fd, 4096).decode().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def read(self) -> tuple[int, bool]:
        try:
            now = self._oom_kills()
        except OSError:   # ENODEV: the cgroup was removed
            return 0, True
        new, self.kills = max(0, now - self.kills), now
        return new, False

    def close(self) -> None:
        os.close(self.fd)


def open_oom_watcher(mgr):
    """The watcher for the container's memory cgroup, or None where the host has no memory controller."""
    try:
        if mgr.version == 1:
            memory_dir = mgr.path("memory")
            return OomWatcherV1(memory_dir) if memory_dir else None
        if os.path.exists(os.path.join(mgr.path, "memory.events")):
            return OomWatcherV2(mgr.path)
    except OSError as e:
        logger.warning(f"events: OOM notifications unavailable: {e}")
    return None
