"""Creating the container's init: runtime <-> stage1 <-> init, synchronised over a socketpair.

runtime (pyrunc create)          stage1 (forked)                    init (forked by stage1)
  place stage1 in the cgroup  ->  joins namespaces by path
                                  unshare(user) -> "userns"
  write uid/gid maps          ->  unshare(the rest); fork          ->  rootfs mounts, hostname, ...
                              <-  "pid" N; exit                       "hooks"
  run prestart/createRuntime  ->                                       createContainer hooks, pivot_root,
                                                                       console, rlimits, user, caps
                              <-                                       "ready"; blocks opening exec.fifo
  save state, exit 0                                                    (`start` opens it) -> execve
Every failure in stage1 or init is sent back as an ERROR message and the runtime cleans up. The messages
are channel.py's; init's own work is init.py.

Without a user or time namespace, stage1 is skipped: the runtime forks init itself, the new (or joined) pid
namespace set for that one child only and set back at once, and init joins and unshares the rest. A fork of
the whole interpreter less, and init is the runtime's child from the start.
"""

from __future__ import annotations

import os

from oci_runtime import linux
from oci_runtime.errors import RuntimeFailure
from oci_runtime.process import namespaces
from oci_runtime.process.channel import (ERROR, GO, HOOKS, OK, PID, READY, SECCOMP, USERNS, Channel, fork_announced,
                                         fork_child)
from oci_runtime.process.hooks import run_hooks
from oci_runtime.process.init import run_init
from oci_runtime.process.rootfs import open_bind_sources


class LaunchSpec:
    """What stage1 and init need: everything is decided before the fork."""

    def __init__(self, container_id: str, bundle, state_dir, cgroups=None, console_sock=None,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 extra_env: dict | None = None, seccomp=None):
        self.container_id = container_id
        self.bundle = bundle
        self.state_dir = state_dir
        self.cgroups = cgroups
        self.console_sock = console_sock
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.extra_env = extra_env or {}
        self.seccomp = seccomp
        self.fifo_fd = self.proc_fd = -1
        # runc's rule: init that joins no namespace may be dumpable while it waits for start, which an
        # unprivileged runtime needs to exec into it (see init._wait_for_start); a root runtime does not
        self.dumpable_when_created = os.geteuid() != 0 and not bundle.ns.join
        self.bind_sources: dict[int, int] = {}  # mounts[i] -> a detached copy of its source (open_tree)


def state_for_hooks(spec: LaunchSpec, status: str, pid: int) -> dict:
    config = spec.bundle.config
    return {"ociVersion": config.get("ociVersion", ""), "id": spec.container_id, "status": status,
            "pid": pid, "bundle": spec.bundle.path, "annotations": config.get("annotations") or {}}


# -- runtime side ---------------------------------------------------------------------------------
def spawn_init(spec: LaunchSpec) -> int:
    """Fork stage1 and drive the handshake until init is ready; return init's host pid."""
    # opened here, not in init: in a user namespace init may not be allowed to walk the host's paths
    # a root runtime reaches more of the host than the container's root; an unprivileged one, no more
    if spec.bundle.ns.creates("mount") and spec.bundle.ns.creates("user") and os.geteuid() == 0:
        spec.bind_sources = open_bind_sources(spec.bundle.config, spec.bundle.path)
    spec.fifo_fd = os.open(spec.state_dir.fifo, linux.O_PATH | os.O_CLOEXEC)
    spec.proc_fd = os.open("/proc", linux.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    ns_fds = namespaces.open_joins(spec.bundle.ns)
    direct = forks_init_itself(spec.bundle.ns)
    try:
        if direct:
            child, parent = _fork_init(spec, ns_fds)
        else:
            child, parent = fork_child(lambda channel: _stage1(spec, channel, ns_fds))
    finally:
        for _, fd in ns_fds:
            os.close(fd)
        os.close(spec.fifo_fd)
        os.close(spec.proc_fd)
        for fd in spec.bind_sources.values():
            os.close(fd)
    init_pid = child if direct else 0
    ready = False
    try:
        init_pid = _drive(spec, parent, child, init_pid)
        ready = True
        return init_pid
    except BaseException:
        if init_pid:
            _kill(init_pid)
        raise
    finally:
        parent.close()
        if not (direct and ready):  # stage1 has exited; a direct init that failed was killed above
            _reap(child)


def forks_init_itself(ns) -> bool:
    """Whether the runtime forks init without stage1: a user namespace needs its id maps written from outside
    between unshare and the rest, and a time namespace its offsets before its first process."""
    return not ns.has("user") and not ns.has("time")


def _fork_init(spec: LaunchSpec, ns_fds: list[tuple[str, int]]) -> tuple[int, Channel]:
    """Fork init in its pid namespace: unshare(CLONE_NEWPID) and setns(pid) apply to our next child only,
    and ours is set back right after the fork. init is born non-dumpable (stage1's rule): in a joined pid
    namespace others see it at once, before its first instruction."""
    ns = spec.bundle.ns
    pid_join = [(fd, path) for (kind, fd), (_, path) in zip(ns_fds, ns.join) if kind == "pid"]
    ours = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC) if ns.has("pid") else -1
    dumpable = linux.prctl(linux.PR_GET_DUMPABLE)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    try:
        if pid_join:
            namespaces.join("pid", *pid_join[0])
        elif ns.creates("pid"):
            try:
                linux.unshare(linux.CLONE_NEWPID)
            except OSError as e:
                raise RuntimeFailure(f"creating namespaces: {e.strerror}") from None
        def child(channel: Channel) -> None:
            if ours >= 0:
                os.close(ours)  # the host's pid namespace: nothing in the container keeps a handle on it
            _direct_init(spec, channel, ns_fds)

        return fork_child(child)
    finally:
        linux.prctl(linux.PR_SET_DUMPABLE, dumpable)
        if ours >= 0:
            linux.setns(ours, linux.CLONE_NEWPID, label="the runtime's own pid namespace")
            os.close(ours)


def _drive(spec: LaunchSpec, channel: Channel, stage1: int, init_pid: int = 0) -> int:
    """Answer the child until init is READY. stage1 is the first child (init itself when forked directly,
    then init_pid is known already)."""
    linux_cfg = spec.bundle.config.get("linux") or {}
    hooks = spec.bundle.config.get("hooks") or {}
    # Joining the cgroup: stage1 moves itself into the v1 hierarchies (fast, see join_self), and the rest
    # (cgroup2) gets init's pid while init sets itself up, overlapping the kernel's ~10 ms wait. With a new
    # cgroup namespace, whose root is fixed when it is created, everything is joined before that.
    mgr = spec.cgroups
    late = mgr is not None and not spec.bundle.ns.creates("cgroup")
    if mgr is not None and not late:
        mgr.apply(stage1)
    channel.send(GO, join_self=late)
    try:
        if init_pid and late:
            mgr.apply_rest(init_pid)
        while True:
            msg = channel.recv()
            if msg is None:
                raise RuntimeFailure("container init exited unexpectedly before it was ready")
            kind = msg["t"]
            if kind == USERNS:
                namespaces.write_id_maps(stage1, linux_cfg)
                channel.send(OK)
            elif kind == PID:
                init_pid = msg["pid"]
                if late:
                    mgr.apply_rest(init_pid)
            elif kind == HOOKS:
                state = state_for_hooks(spec, "creating", init_pid)
                try:
                    run_hooks(hooks.get("createRuntime"), "createRuntime", state)
                except RuntimeFailure as e:
                    channel.send(ERROR, msg=str(e))
                    raise
                channel.send(OK, state=state)
            elif kind == SECCOMP:
                spec.seccomp.hand_over(init_pid, msg["fd"], state_for_hooks(spec, "creating", init_pid))
                channel.send(OK)
            elif kind == READY:
                return init_pid
            elif kind == ERROR:
                raise RuntimeFailure(msg["msg"])
    except BaseException:
        if init_pid:
            _kill(init_pid)
        raise


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)  # SIGKILL
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


# -- stage1: namespaces ---------------------------------------------------------------------------
def _stage1(spec: LaunchSpec, channel: Channel, ns_fds: list[tuple[str, int]]) -> None:
    linux.prctl(linux.PR_SET_DUMPABLE, 0)  # nothing in the container may ptrace or open us via /proc
    go = channel.expect(GO)
    if go.get("join_self"):
        spec.cgroups.join_self()
    channel.debug("nsexec container setup: stage1 joining and creating the container's namespaces")
    ns = spec.bundle.ns
    paths = dict(ns.join)
    for kind, fd in ns_fds:
        if kind == "user":
            namespaces.join(kind, fd, paths[kind])
    if ns.creates("user"):
        linux.unshare(linux.CLONE_NEWUSER)
        rootless = os.geteuid() != 0
        if rootless:  # an unprivileged runtime may write the id maps of a dumpable process only (runc's way)
            linux.prctl(linux.PR_SET_DUMPABLE, 1)
        channel.send(USERNS)
        channel.expect(OK)
        if rootless:
            linux.prctl(linux.PR_SET_DUMPABLE, 0)
    if ns.has("user"):
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for kind, fd in ns_fds:
        if kind != "user":
            namespaces.join(kind, fd, paths[kind])
    if ns.new & ~linux.CLONE_NEWUSER:
        try:
            linux.unshare(ns.new & ~linux.CLONE_NEWUSER)
        except OSError as e:
            raise RuntimeFailure(f"creating namespaces: {e.strerror}") from None
    if ns.creates("time"):
        namespaces.write_time_offsets((spec.bundle.config.get("linux") or {}).get("timeOffsets"))
    channel.debug("nsexec container setup: stage1 is in the namespaces, forking init into them")
    fork_announced(channel, lambda: run_init(spec, channel))


def _direct_init(spec: LaunchSpec, channel: Channel, ns_fds: list[tuple[str, int]]) -> None:
    """init forked by the runtime itself (forks_init_itself): stage1's work without a user or time namespace,
    already in its pid namespace, then init's."""
    go = channel.expect(GO)  # non-dumpable since the fork
    if go.get("join_self"):
        spec.cgroups.join_self()
    channel.debug("nsexec container setup: init joining and creating the container's namespaces (no stage1 is "
                  "needed without a user or time namespace)")
    ns = spec.bundle.ns
    paths = dict(ns.join)
    for kind, fd in ns_fds:
        if kind != "pid":
            namespaces.join(kind, fd, paths[kind])
    if ns.new & ~linux.CLONE_NEWPID:
        try:
            linux.unshare(ns.new & ~linux.CLONE_NEWPID)
        except OSError as e:
            raise RuntimeFailure(f"creating namespaces: {e.strerror}") from None
    run_init(spec, channel)


