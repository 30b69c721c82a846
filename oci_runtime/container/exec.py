"""exec: a new process inside a running container.

runtime (pyrunc exec)            stage1 (forked)                        process (forked by stage1)
  place stage1 in the cgroup ->  non-dumpable; setns into each of
                                 init's namespaces (user first, mnt
                                 last); fork                         -> terminal, rlimits, user, caps,
                             <-  "pid" N; exit                          no_new_privs, cwd, lookup
  write --pid-file; wait for EOF on the socket (execve closed it)      <- "error" if anything failed
  then wait for the process (or return at once with --detach)            seccomp; execve

Without a user or time namespace to join, stage1 is skipped: the runtime forks the process itself, with the
container's pid namespace set for that one child only (and its own set back at once); the process joins the
other namespaces itself and reports no PID (the runtime knows it).

Security: the joining processes are non-dumpable before they enter any namespace, so nothing in the
container can open /proc/<pid>/exe, /mem or /fd of the runtime while it runs there (CVE-2019-5736), and
every fd but stdio and --preserve-fds is close-on-exec before anything container-controlled runs
(CVE-2024-21626). The process's cwd is resolved inside the container's mount namespace.
"""

from __future__ import annotations

import os

from oci_runtime import linux
from oci_runtime.container.lifecycle import CREATED, PAUSED, RUNNING, STOPPED, Container, write_pid_file
from oci_runtime.errors import BadState, RuntimeFailure
from oci_runtime.log import logger
from oci_runtime.process import setup as proc_setup
from oci_runtime.process.channel import ERROR, GO, OK, PID, SECCOMP, Channel, fork_announced, fork_child
from oci_runtime.process.namespaces import FLAGS, JOIN_ORDER, PROC_NAMES, NamespacePlan, open_joins


def exec_process(container: Container, process: dict, *, console_sock=None, detach: bool = False,
                 pid_file: str | None = None, preserve_fds: int = 0, ignore_paused: bool = False,
                 sub_cgroups: dict | None = None, no_subreaper: bool = False) -> int:
    """Run `process` (an OCI process object) in the container. In the foreground: forward signals, proxy
    the terminal when no console socket was given, and return the exit code (128+N if killed by N).
    Detached: return 0 once the process has exec'd. no_subreaper (runc's --no-subreaper): we are a subreaper
    only until the process is our child (forked by stage1, it becomes ours when stage1 exits); what it orphans
    is not reparented to us."""
    status = container.status()
    if status == STOPPED:
        raise BadState("cannot exec in a stopped container")
    if status == PAUSED and not ignore_paused:
        raise BadState("cannot exec in a paused container (use --ignore-paused)")
    if status not in (CREATED, RUNNING, PAUSED):
        raise BadState(f"cannot exec in a {status} container")
    proc_setup.check(process)
    seccomp = None
    config_linux = (container.state.get("config") or {}).get("linux") or {}
    if config_linux.get("seccomp"):
        from oci_runtime.seccomp.filter import cache_dir, prepare_filter

        seccomp = prepare_filter(config_linux["seccomp"], strict=True, keep_in=cache_dir())

    own_pty = None
    if process.get("terminal") and console_sock is None:
        if detach:
            raise RuntimeFailure("exec with a terminal and --detach needs --console-socket")
        from oci_runtime.process.stdio import terminal_socketpair

        own_pty, console_sock = terminal_socketpair()
    if not detach:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # the process may be our grandchild; its exit must come to us
    logger.debug(f"exec {container.id}: {process.get('args')}")
    try:
        pid = spawn(container, process, seccomp, console_sock, preserve_fds, sub_cgroups or {})
    finally:
        if console_sock is not None:
            console_sock.close()
    if no_subreaper and not detach:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 0)
    logger.debug(f"exec {container.id}: the process is pid {pid}")
    if pid_file:
        write_pid_file(pid_file, pid)
    if detach:
        return 0
    from oci_runtime.process.stdio import receive_terminal, wait_foreground

    master = receive_terminal(own_pty) if own_pty is not None else None
    try:
        return wait_foreground(pid, master)
    finally:
        if master is not None:
            os.close(master)


def _namespaces_to_join(init_pid: int) -> list[tuple[str, int]]:
    """Every namespace of the container's init that differs from ours, opened now (user first, mnt last)."""
    plan = NamespacePlan()
    for kind in JOIN_ORDER:
        name = PROC_NAMES[kind]
        theirs = f"/proc/{init_pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                plan.join.append((kind, theirs))
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{init_pid}"):
                raise BadState("cannot exec: the container's init is gone") from None
            # else: a namespace type this kernel does not have
    try:
        return open_joins(plan)
    except RuntimeFailure:
        raise BadState("cannot exec: the container's init is gone") from None


def spawn(container: Container, process: dict, seccomp, console_sock, preserve_fds: int, sub_cgroups: dict) -> int:
    """Start the process inside the container; return its host pid once it has exec'd (errors raised)."""
    ns_fds = _namespaces_to_join(container.pid)
    in_userns = any(kind == "user" for kind, _ in ns_fds) or bool(
        ((container.state.get("config") or {}).get("linux") or {}).get("uidMappings"))
    # setns(time) applies to children only; joining the pid namespace from outside a user namespace that owns
    # it takes privileges in ours too, so a user namespace is joined first, by stage1
    direct = not any(kind in ("time", "user") for kind, _ in ns_fds)
    try:
        if direct:
            stage1, parent = _fork_process(ns_fds, lambda channel: _join_and_run(
                channel, ns_fds, process, seccomp, console_sock, preserve_fds, in_userns, container.cgroups))
        else:
            stage1, parent = fork_child(lambda channel: _stage1(channel, ns_fds, process, seccomp, console_sock,
                                                                preserve_fds, in_userns, container.cgroups))
    finally:
        for _, fd in ns_fds:
            os.close(fd)
    pid = stage1 if direct else 0
    started = False
    try:
        mgr = container.cgroups
        if mgr is not None and sub_cgroups:
            mgr.apply_sub(stage1, sub_cgroups)  # every hierarchy from here, into the sub-cgroups asked for
        elif mgr is not None:
            mgr.apply_rest(stage1)  # stage1 joins the v1 hierarchies itself (fast), see launch.py
        parent.send(GO, join_self=mgr is not None and not sub_cgroups)
        error = None
        while msg := parent.recv():  # until the socket closes: the process exec'd (close-on-exec) or died
            if msg["t"] == PID:
                pid = msg["pid"]
            elif msg["t"] == SECCOMP:  # the process's listener, for the agent (PID always came first)
                seccomp.hand_over(pid, msg["fd"], container.hook_state(RUNNING))
                parent.send(OK)
            elif msg["t"] == ERROR:
                error = msg["msg"]
        if error is not None or not pid:
            raise RuntimeFailure(error or "exec failed: the process exited before it started")
        started = True
        return pid
    finally:
        parent.close()
        if not (direct and started):  # stage1, or a process that failed (and exits once the channel closes)
            try:
                os.waitpid(stage1, 0)
            except ChildProcessError:
                pass


def _fork_process(ns_fds, body):
    """Fork the process ourselves (no stage1), born non-dumpable and in the container's pid namespace: both set
    for the fork only and set back for us right after."""
    pid_fd = next((fd for kind, fd in ns_fds if kind == "pid"), -1)
    ours = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC) if pid_fd >= 0 else -1
    dumpable = linux.prctl(linux.PR_GET_DUMPABLE)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    try:
        if pid_fd >= 0:
            try:
                linux.setns(pid_fd, FLAGS["pid"], label="pid namespace")
            except OSError as e:
                raise RuntimeFailure(f"joining the container's pid namespace: {e.strerror}") from None
        def child(channel: Channel) -> None:
            if ours >= 0:
                os.close(ours)  # the host's pid namespace: nothing in the container keeps a handle on it
            body(channel)

        try:
            return fork_child(child)
        except OSError as e:
            if e.errno == 12:  # ENOMEM: the pid namespace's init has exited
                raise BadState("cannot exec: the container is stopping (its init has exited)") from None
            raise
    finally:
        linux.prctl(linux.PR_SET_DUMPABLE, dumpable)
        if ours >= 0:
            linux.setns(ours, FLAGS["pid"], label="the runtime's own pid namespace")
            os.close(ours)


def _join_and_run(channel: Channel, ns_fds, process, seccomp, console_sock, preserve_fds, in_userns,
                  cgroups) -> None:
    """The process forked by the runtime itself (already in the pid namespace): stage1's joins, then the
    process; a failure before execve is exit status 127, as with stage1."""
    try:
        proc_setup.preload(process)
        go = channel.expect(GO)
        if go.get("join_self"):
            cgroups.join_self()
        channel.debug("nsexec container setup: the process joining the container's namespaces (no stage1 is "
                      "needed without a user or time namespace to join)")
        _join(ns_fds, skip="pid")
        _run_process(channel, process, seccomp, console_sock, preserve_fds, in_userns)
    except BaseException as e:  # noqa: BLE001 - every failure must reach the runtime
        channel.fail(e, 127)


def _run_process(channel: Channel, process, seccomp, console_sock, preserve_fds, in_userns) -> None:
    """In the container's namespaces: set the process up and exec it (failures go to the caller)."""
    channel.debug("child process in init(): setting up the exec'd process (terminal, limits, user, "
                  "capabilities, cwd)")
    os.setsid()
    prepared = proc_setup.prepare(process, console_sock=console_sock, preserve_fds=preserve_fds, seccomp=seccomp,
                                  in_userns=in_userns, bind_console=False, hand_over=channel.hand_over_listener)
    channel.debug(f"setns_init: about to exec {prepared.executable}")
    prepared.execute()


def _join(ns_fds, skip: str = "") -> None:
    """setns into each of the container's namespaces (user first: then we are its root)."""
    for kind, fd in ns_fds:
        if kind == skip:
            continue
        try:
            linux.setns(fd, FLAGS[kind], label=f"{kind} namespace")
        except OSError as e:
            raise RuntimeFailure(f"joining the container's {kind} namespace: {e.strerror}") from None
        if kind == "user":
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)


def _stage1(channel: Channel, ns_fds, process, seccomp, console_sock, preserve_fds, in_userns, cgroups) -> None:
    linux.prctl(linux.PR_SET_DUMPABLE, 0)  # before entering any namespace: see the module docstring
    proc_setup.preload(process)
    go = channel.expect(GO)
    if go.get("join_self"):
        cgroups.join_self()
    channel.debug("nsexec container setup: stage1 joining the container's namespaces")
    _join(ns_fds)
    channel.debug("nsexec container setup: stage1 is in the namespaces, forking the process into them")
    try:
        fork_announced(channel, lambda: _run_process(channel, process, seccomp, console_sock, preserve_fds,
                                                     in_userns), 127)  # the pid namespace applies to our children only
    except OSError as e:
        if e.errno == 12:  # ENOMEM: the pid namespace's init has exited
            raise BadState("cannot exec: the container is stopping (its init has exited)") from None
        raise
