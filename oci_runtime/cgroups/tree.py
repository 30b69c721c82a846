"""Operations on a cgroup directory and everything below it, shared by the v1 and v2 managers."""

from __future__ import annotations

import errno
import os
import time

from oci_runtime.cgroups.fileio import CgroupError, describe_errno, write_file

SIGKILL = 9   # the signal module pulls in enum, too slow to import on every container start


def pids_in_tree(path: str) -> list[int]:
    """Every pid in the cgroup and its descendants (host pids, sorted); [] if the cgroup is gone."""
    pids: set[int] = set()
    for dirpath, _dirs, _files in os.walk(path):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids.update(int(line) for line in f if line.strip())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CgroupError(f"cgroup: reading {os.path.join(dirpath, 'cgroup.procs')}: "
                              f"{describe_errno(exc.errno)}", errno_value=exc.errno) from None
    return sorted(pids)


def move_pid(path: str, pid: int) -> None:
    """Write pid to cgroup.procs; the error names the cgroup and the pid."""
    write_file(path, "cgroup.procs", str(pid))


def move_pid_below(path: str, sub: str, pid: int) -> None:
    """Write pid to cgroup.procs of the existing cgroup `sub` below `path` (runc's words when it is missing)."""
    target = os.path.join(path, sub) if sub else path
    if not os.path.isdir(target):
        raise CgroupError(f"exec --cgroup: adding pid {pid} to cgroups: {target}/cgroup.procs: no such file or directory")
    move_pid(target, pid)


def remove_tree(path: str, *, attempts: int = 8) -> None:
    """rmdir the cgroup and its descendants, deepest first. Exiting tasks keep a cgroup busy for a
    moment after they die, so EBUSY is retried with a short back-off. Already gone is fine."""
    if not os.path.isdir(path):
        return
    children = []
    for dirpath, dirnames, _files in os.walk(path):
        children.extend(os.path.join(dirpath, d) for d in dirnames)
    for directory in sorted(children, key=lambda p: p.count("/"), reverse=True) + [path]:
        delay = 0.005
        for attempt in range(attempts):
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == attempts - 1:
                    hint = ""
                    if exc.errno == errno.EBUSY:
                        left = pids_in_tree(directory)
                        hint = f" (processes still in it: {left})" if left else ""
                    raise CgroupError(f"cgroup: removing {directory}: {describe_errno(exc.errno)}{hint}",
                                      errno_value=exc.errno) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def signal_frozen(manager, sig: int, *, thaw_to_kill: bool) -> None:
    """Signal every process of the manager's cgroup while it is frozen, so that nothing forks past us; then
    restore the freezer's state. thaw_to_kill: the freezer holds even SIGKILL back (v1), so thaw for it."""
    was_frozen = manager.frozen()
    manager.freeze()
    try:
        signal_pids(manager.pids(), sig)
    finally:
        if not was_frozen or (thaw_to_kill and sig == SIGKILL):
            manager.thaw()


def wait_for(predicate, *, timeout: float = 10.0) -> bool:
    """Poll `predicate` with a growing interval until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
