"""A container that exists: its status and state, start, kill, delete, pause and resume (through the
cgroup), and the listing of a state root. Creating one is create.py."""

from __future__ import annotations

import os
import select
import time

from oci_runtime.container.state import StateDir, list_ids
from oci_runtime.errors import BadState, ContainerNotFound, RuntimeFailure, StateCorrupt
from oci_runtime.log import logger

CREATED, RUNNING, PAUSED, STOPPED, CREATING = "created", "running", "paused", "stopped", "creating"
SIGKILL = 9  # a literal: the signal module costs milliseconds to import


def proc_start_time(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, state letter) of a live pid, or None; tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19]), fields[0].decode()


def write_pid_file(path: str, pid: int) -> None:
    """Exactly the decimal pid, no newline (docker and containerd parse it with Atoi); atomic."""
    path = os.path.abspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        raise RuntimeFailure(f"writing the pid file {path}: {e.strerror}") from None


class Container:
    def __init__(self, state_dir: StateDir, state: dict):
        self.dir = state_dir
        self.state = state
        self._cgroups = None

    @property
    def id(self) -> str:
        return self.dir.id

    @classmethod
    def load(cls, root: str, container_id: str) -> "Container":
        state_dir = StateDir(root, container_id)
        return cls(state_dir, state_dir.load())

    # -- status ---------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.state.get("pid", 0)

    def init_alive(self) -> bool:
        info = proc_start_time(self.pid) if self.pid else None
        return info is not None and info[0] == self.state.get("pid_start") and info[1] not in ("Z", "X")

    @property
    def cgroups(self):
        if self._cgroups is None and self.state.get("cgroup"):
            from oci_runtime.cgroups import open_manager_from_state

            try:
                self._cgroups = open_manager_from_state(self.state["cgroup"])
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise StateCorrupt(f"container {self.id}: state.json holds an unusable cgroup record ({e!r})") from None
        return self._cgroups

    def status(self) -> str:
        if not self.init_alive():
            return STOPPED
        if os.path.exists(self.dir.fifo):
            return CREATED
        mgr = self.cgroups
        if mgr is not None:
            try:
                if mgr.frozen():
                    return PAUSED
            except OSError:
                pass
        return RUNNING

    def oci_state(self) -> dict:
        status = self.status()
        return {
            "ociVersion": self.state.get("ociVersion", ""),
            "id": self.id,
            "pid": self.pid if status != STOPPED else 0,
            "status": status,
            "bundle": self.state.get("bundle", ""),
            "rootfs": self.state.get("rootfs", ""),
            "created": self.state.get("created", ""),
            "owner": self.state.get("owner", ""),
            "annotations": self.state.get("annotations") or {},
        }

    def hook_state(self, status: str) -> dict:
        return {"ociVersion": self.state.get("ociVersion", ""), "id": self.id, "status": status,
                "pid": self.pid, "bundle": self.state.get("bundle", ""),
                "annotations": self.state.get("annotations") or {}}

    def _run_hooks(self, phase: str, status: str, hooks: list | None = None) -> None:
        hooks = hooks if hooks is not None else self.state.get("hooks", {}).get(phase)
        if not hooks:
            return
        from oci_runtime.process.hooks import run_hooks  # only containers with hooks pay for the import

        run_hooks(hooks, phase, self.hook_state(status))

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        with self.dir.locked():
            status = self.status()
            if status == STOPPED:
                raise BadState("cannot start a container that has stopped")
            if status != CREATED:
                raise BadState(f"cannot start an already {status} container")
            try:
                # prestart hooks run when `start` is called, before the user process (the runtime-tools
                # suite checks this timing), with the container's namespaces already in place
                self._run_hooks("prestart", CREATED)
            except RuntimeFailure:
                # the spec: stop the container and go on with the lifecycle at "delete"
                self._kill_everything()
                self._delete_stopped()
                raise
            logger.debug(f"start {self.id}: releasing init (pid {self.pid})")
            self._release_init()
            try:
                os.unlink(self.dir.fifo)
            except FileNotFoundError:
                pass
        for hook in self.state.get("hooks", {}).get("poststart") or []:
            try:
                self._run_hooks("poststart", RUNNING, [hook])
            except RuntimeFailure as e:  # the spec: a failing poststart hook is a warning
                logger.warning(str(e))

    def _release_init(self) -> None:
        """Open exec.fifo: init, blocked opening its other end, goes on to exec the process."""
        try:
            pidfd = os.pidfd_open(self.pid)  # not our ctypes layer: `start` then needs no ctypes at all
        except OSError:
            raise BadState("cannot start a container that has stopped") from None
        fifo = os.open(self.dir.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            poller = select.poll()
            poller.register(fifo, select.POLLIN | select.POLLHUP)
            poller.register(pidfd, select.POLLIN)
            message = b""
            writer_seen = False
            while True:
                events = dict(poller.poll())
                if fifo in events:
                    writer_seen = True
                    chunk = os.read(fifo, 4096)
                    if chunk:
                        message += chunk
                        continue
                    if events[fifo] & select.POLLHUP:
                        break  # init exec'd (the fifo closed on exec) or reported an error
                if pidfd in events:
                    if not writer_seen and not dict(poller.poll(0)).get(fifo):
                        raise BadState("cannot start a container that has stopped")
                    # init is gone: collect whatever it wrote before it went
                    while chunk := _read_nonblock(fifo):
                        message += chunk
                    break
        finally:
            os.close(fifo)
            os.close(pidfd)
        if message:
            raise RuntimeFailure(message.decode(errors="replace"))

    # -- kill -----------------------------------------------------------------------------------
    def kill(self, sig: int, all_processes: bool = False) -> None:
        status = self.status()
        if status == STOPPED and not all_processes:
            raise BadState("container not running")
        if all_processes and self.cgroups is not None:
            self.cgroups.kill_all(sig)
            return
        if status == STOPPED:  # --all without a cgroup (rootless): init was all we knew of, and it is gone
            return  # runc's rule: nothing is left to signal, which is not an error
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            raise BadState("container not running") from None

    # -- delete ---------------------------------------------------------------------------------
    def delete(self, force: bool = False) -> None:
        status = self.status()
        if status in (CREATED, RUNNING, PAUSED) and not force:
            raise BadState(f"cannot delete container {self.id} that is not stopped: {status}")
        if status != STOPPED:
            self._kill_everything()
        self._delete_stopped()

    def _delete_stopped(self) -> None:
        self.destroy()
        for hook in self.state.get("hooks", {}).get("poststop") or []:
            try:
                self._run_hooks("poststop", STOPPED, [hook])
            except RuntimeFailure as e:  # the spec: a failing poststop hook is a warning
                logger.warning(str(e))

    def _kill_everything(self) -> None:
        mgr = self.cgroups
        if mgr is not None:
            try:
                if mgr.frozen():
                    mgr.kill_all(SIGKILL)
                    mgr.thaw()
            except OSError:
                pass
        if self.init_alive():
            try:
                os.kill(self.pid, SIGKILL)
            except ProcessLookupError:
                pass
        if mgr is not None and not self.state.get("own_pidns", True):
            mgr.kill_all(SIGKILL)  # without a pid namespace, init's death does not end the others
        wait_gone(self.pid, self.state.get("pid_start"), 10.0)

    def destroy(self) -> None:
        """Remove what the container holds on the host: its cgroup and its state directory. Like runc, the
        cgroup goes even when create found it made; rmdir only takes empty cgroups, so one still holding
        processes that are not the container's stays (with a warning)."""
        mgr = self.cgroups
        if mgr is not None and self.state.get("cgroup_owned", True):
            try:
                if mgr.pids():  # leftovers of a killed create, or processes outliving init without a pid ns
                    mgr.kill_all(SIGKILL)
                    deadline = time.monotonic() + 5
                    while mgr.pids() and time.monotonic() < deadline:
                        time.sleep(0.01)
            except OSError:
                pass
        if mgr is not None:
            try:
                mgr.destroy()
            except OSError as e:
                logger.warning(f"removing cgroup of {self.id}: {e}")
        self.dir.remove()

    # -- pause / resume -------------------------------------------------------------------------
    def pause(self) -> None:
        status = self.status()
        if status not in (RUNNING, CREATED):
            raise BadState("container not running" if status == STOPPED else f"container is {status}")
        self._need_cgroups().freeze()

    def resume(self) -> None:
        if self.status() != PAUSED:
            raise BadState("container not paused")
        self._need_cgroups().thaw()

    def _need_cgroups(self):
        if self.cgroups is None:
            raise RuntimeFailure(f"container {self.id} has no cgroup")
        return self.cgroups


def _read_nonblock(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def wait_gone(pid: int, start: int | None, timeout: float) -> bool:
    """Wait until pid has exited (or become a zombie); True if it did within the timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while time.monotonic() < deadline:
        info = proc_start_time(pid)
        if info is None or info[0] != start or info[1] in ("Z", "X"):
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return False


def delete(root: str, container_id: str, force: bool = False) -> None:
    """Delete a stopped container (force: any, killing it first; an unknown id is then not an error).
    With force, a container whose state.json is damaged is still cleaned up, from its cleanup record."""
    try:
        container = Container.load(root, container_id)
    except ContainerNotFound:
        state_dir = StateDir(root, container_id)
        if state_dir.exists():  # a create that was killed before it saved any state
            state_dir.remove()
            return
        if force:  # engines delete --force an id they already deleted; that is success
            return
        raise
    except StateCorrupt:
        if not force:
            raise
        _delete_damaged(StateDir(root, container_id))
        return
    try:
        with container.dir.locked():
            container.delete(force=force)
    except StateCorrupt:  # a record that reads as JSON but cannot be used (its cgroup, say)
        if not force:
            raise
        _delete_damaged(container.dir)


def _delete_damaged(state_dir: StateDir) -> None:
    """Kill and remove what the cleanup record names (init, the processes in its cgroup, the cgroup), then the
    state directory. Without a usable record only the directory can go, and we say so."""
    try:
        record = state_dir.load_cleanup()
        container = Container(state_dir, record)
        with state_dir.locked():
            container._kill_everything()
            container.destroy()
        logger.warning(f"container {state_dir.id}: state.json was damaged; removed it with what cleanup.json names")
    except RuntimeFailure as e:
        logger.warning(f"container {state_dir.id}: {e}; removing its state directory only: its processes and "
                       "cgroup, if any, cannot be told apart")
        state_dir.remove()


def list_states(root: str) -> list[dict]:
    """The OCI state of every container under root that can be read."""
    states = []
    for container_id in list_ids(root):
        try:
            states.append(Container.load(root, container_id).oci_state())
        except RuntimeFailure:
            continue
    return states
