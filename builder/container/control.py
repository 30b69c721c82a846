"""Starting, stopping and removing containers, for the CLI verbs: the monitor does the running; these
talk to it through the record, its status pipe and the runtime's kill."""

from __future__ import annotations

import os
import time
from pathlib import Path

from builder.container.liveness import ACTIVE, live_state
from builder.container.monitor import runtime_for, spawn_monitor
from builder.container.records import ContainerError, Records
from oci_runtime import errors


def is_running(records: Records, container_id: str) -> bool:
    try:
        return live_state(records.load(container_id))["Status"] in ACTIVE
    except ContainerError:
        return False


class StartFailed(ContainerError):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def start(store_root: Path, records: Records, doc: dict, *, attach: bool, detach_keys: bytes = b"",
          stdin: bool = True) -> int:
    """Start the container's monitor; return the read end of its status pipe once the container runs
    (attach: with our output, and our input too if stdin). Raises StartFailed (with docker's exit code)
    when it could not start."""
    if live_state(doc)["Status"] in ACTIVE:
        raise ContainerError(f"container {doc['Name'].lstrip('/')} is already running")
    with records.edit(doc["Id"]) as current:
        current["StopRequested"] = False
        current["RestartCount"] = 0
    status = spawn_monitor(store_root, doc["Id"], attach=attach, detach_keys=detach_keys, stdin=stdin)
    reader = os.fdopen(status, "r", encoding="utf-8", errors="replace")
    line = reader.readline().rstrip("\n")
    if line.startswith("started "):
        return reader
    reader.close()
    if line.startswith("error "):
        _, code, message = (line.split(" ", 2) + [""])[:3]
        raise StartFailed(int(code), message)
    raise StartFailed(125, "the container's monitor exited before starting it")


def wait_exit(reader) -> int | None:
    """The exit code the monitor reports on its status pipe (125 if it died without one); None when
    the detach keys let the CLI go."""
    with reader:
        for line in reader:
            if line.startswith("exit "):
                return int(line.split()[1])
            if line.startswith("detached"):
                return None
    return 125


def wait_stopped(records: Records, container_id: str, timeout: float | None) -> bool:
    """Until the container is no longer running (False on timeout). Its monitor records the end and then
    exits, unless a restart policy keeps it: we wake when it exits (a pidfd), else look again every 50 ms."""
    import select

    deadline = None if timeout is None else time.monotonic() + timeout
    monitor = _monitor_pidfd(records, container_id)
    try:
        while is_running(records, container_id):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if monitor is None:
                time.sleep(0.05)
            elif select.select([monitor], [], [], 0.05)[0]:  # it exited: the record says how, or its guard
                os.close(monitor)                             # (still finishing) will; look every 50 ms
                monitor = None
    finally:
        if monitor is not None:
            os.close(monitor)
    return True


def _monitor_pidfd(records: Records, container_id: str) -> int | None:
    """A pidfd of the container's monitor (readable once it has exited), or None when there is none."""
    from builder.container.liveness import alive

    try:
        entry = records.load(container_id).get("Monitor") or {}
        fd = os.pidfd_open(entry["Pid"])
    except (ContainerError, KeyError, TypeError, OSError):
        return None
    if not alive(entry):  # checked after pidfd_open, which pins the process: not another under a reused pid
        os.close(fd)
        return None
    return fd


def signal_container(store_root: Path, container_id: str, signal: str) -> None:
    name = signal.upper()
    name = name[3:] if name.startswith("SIG") else name
    try:
        runtime_for(store_root).kill(container_id, name)
    except (errors.BadState, errors.ContainerNotFound):
        pass  # it stopped, or was deleted, meanwhile: nothing left to signal
    except (errors.RuntimeFailure, OSError) as e:
        raise ContainerError(f"cannot kill container {container_id[:12]}: {e}") from None


def pause(store_root: Path, records: Records, doc: dict) -> None:
    """Freeze the container's processes (the runtime's freezer cgroup)."""
    if live_state(records.load(doc["Id"]))["Status"] != "running":
        raise ContainerError(f"container {doc['Id']} is not running")
    runtime_for(store_root).pause(doc["Id"])
    with records.edit(doc["Id"]) as current:
        current["State"].update(Status="paused", Paused=True)


def unpause(store_root: Path, records: Records, doc: dict) -> None:
    if live_state(records.load(doc["Id"]))["Status"] != "paused":
        raise ContainerError(f"container {doc['Id']} is not paused")
    runtime_for(store_root).resume(doc["Id"])
    with records.edit(doc["Id"]) as current:
        current["State"].update(Status="running", Paused=False)


def thaw(store_root: Path, records: Records, container_id: str) -> None:
    """Unpause a paused container first: a frozen process cannot act on a signal (docker does the same)."""
    if live_state(records.load(container_id))["Status"] == "paused":
        unpause(store_root, records, records.load(container_id))


def stop(store_root: Path, records: Records, doc: dict, timeout: float | None) -> None:
    """The container's StopSignal (or SIGTERM), then SIGKILL after `timeout` seconds (None: its
    --stop-timeout, or docker's 10; -1 waits for ever)."""
    if timeout is None:
        timeout = doc["Config"].get("StopTimeout")
        timeout = 10 if timeout is None else timeout
    if timeout < 0:
        timeout = None
    if not is_running(records, doc["Id"]):
        return
    thaw(store_root, records, doc["Id"])
    _request_stop(records, doc["Id"])
    signal_container(store_root, doc["Id"], doc["Config"].get("StopSignal") or "TERM")
    if not wait_stopped(records, doc["Id"], timeout):
        signal_container(store_root, doc["Id"], "KILL")
        wait_stopped(records, doc["Id"], 30)


def remove(store_root: Path, records: Records, doc: dict, *, force: bool, volumes: bool = False) -> None:
    """Remove the container (running: only with force), and with volumes its anonymous volumes."""
    if is_running(records, doc["Id"]):
        if not force:
            raise ContainerError(f"You cannot remove a running container {doc['Id']}. Stop the container "
                                 "before attempting removal or force remove")
        _request_stop(records, doc["Id"])
        thaw(store_root, records, doc["Id"])
        signal_container(store_root, doc["Id"], "KILL")
        wait_stopped(records, doc["Id"], 30)
    from builder.container.rootfs import unmount_rootfs

    runtime = runtime_for(store_root)
    if os.path.lexists(os.path.join(runtime.root, doc["Id"])):  # the usual case: the monitor deleted it
        try:
            runtime.delete(doc["Id"], force=True)
        except Exception:  # noqa: BLE001 - gone meanwhile
            pass
    from builder.network.endpoints import detach

    detach(store_root, records, doc["Id"])
    unmount_rootfs(records.path(doc["Id"]))
    if volumes:
        from builder.container.volumes import remove_container_volumes

        remove_container_volumes(store_root, records, doc)
    records.remove(doc["Id"])


def _request_stop(records: Records, container_id: str) -> None:
    """Tell the monitor that this exit is wanted: no restart policy applies to it."""
    with records.edit(container_id) as doc:
        doc["StopRequested"] = True
