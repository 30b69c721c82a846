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
Every failure in stage1 or init is sent back as {"t": "error"} and the runtime cleans up.
"""

from __future__ import annotations

import os
import _socket as socket  # the C module: `socket` costs milliseconds of enum set-up at import

from . import namespaces, process as proc_setup, rootfs as rootfs_mod
from . import linux
from .config import Bundle
from .errors import RuntimeFailure, child_failed
from .hooks import run_hooks
from .jsonio import dumps, loads
from .state import StateDir

_MSG_MAX = 1 << 16


class LaunchSpec:
    def __init__(self, container_id: str, bundle: Bundle, state_dir: StateDir, cgroups=None, console_sock=None,
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


def _send(sock: socket.socket, **msg) -> None:
    sock.send(dumps(msg, compact=True).encode())


def _recv(sock: socket.socket) -> dict | None:
    data = sock.recv(_MSG_MAX)
    return loads(data) if data else None


def state_for_hooks(spec: LaunchSpec, status: str, pid: int) -> dict:
    config = spec.bundle.config
    return {"ociVersion": config.get("ociVersion", ""), "id": spec.container_id, "status": status,
            "pid": pid, "bundle": spec.bundle.path, "annotations": config.get("annotations") or {}}


# -- runtime side ---------------------------------------------------------------------------------
def spawn_init(spec: LaunchSpec) -> int:
    """Fork stage1 and drive the handshake until init is ready; return init's host pid."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    # opened here, not in init: in a user namespace init may not be allowed to walk the host's paths
    spec.fifo_fd = os.open(spec.state_dir.fifo, linux.O_PATH | os.O_CLOEXEC)
    spec.proc_fd = os.open("/proc", linux.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    ns_fds = namespaces.open_joins(spec.bundle.ns)
    try:
        stage1 = os.fork()
        if stage1 == 0:  # pragma: no cover - runs in the child
            parent_sock.close()
            try:
                _stage1(spec, child_sock, ns_fds)
            except BaseException as e:  # noqa: BLE001 - every failure must reach the runtime
                child_failed(lambda text: _send(child_sock, t="error", msg=text), e)
            os._exit(1)
    finally:
        for _, fd in ns_fds:
            os.close(fd)
        os.close(spec.fifo_fd)
        os.close(spec.proc_fd)
    child_sock.close()
    init_pid = 0
    try:
        init_pid = _drive(spec, parent_sock, stage1)
        return init_pid
    except BaseException:
        if init_pid:
            _kill(init_pid)
        raise
    finally:
        parent_sock.close()
        _reap(stage1)


def _drive(spec: LaunchSpec, sock: socket.socket, stage1: int) -> int:
    linux_cfg = spec.bundle.config.get("linux") or {}
    hooks = spec.bundle.config.get("hooks") or {}
    # Joining the cgroup: stage1 moves itself into the v1 hierarchies (fast, see join_self), and the rest
    # (cgroup2) gets init's pid while init sets itself up, overlapping the kernel's ~10 ms wait. With a new
    # cgroup namespace, whose root is fixed when it is created, everything is joined before that.
    mgr = spec.cgroups
    late = mgr is not None and not spec.bundle.ns.creates("cgroup")
    if mgr is not None and not late:
        mgr.apply(stage1)
    _send(sock, t="go", join_self=late)
    init_pid = 0
    try:
        while True:
            msg = _recv(sock)
            if msg is None:
                raise RuntimeFailure("container init exited unexpectedly before it was ready")
            kind = msg["t"]
            if kind == "userns":
                namespaces.write_id_maps(stage1, linux_cfg)
                _send(sock, t="ok")
            elif kind == "pid":
                init_pid = msg["pid"]
                if late:
                    mgr.apply_rest(init_pid)
            elif kind == "hooks":
                state = state_for_hooks(spec, "creating", init_pid)
                try:
                    run_hooks(hooks.get("createRuntime"), "createRuntime", state)
                except RuntimeFailure as e:
                    _send(sock, t="error", msg=str(e))
                    raise
                _send(sock, t="ok", state=state)
            elif kind == "ready":
                if msg.get("seccomp_fd") is not None:
                    _hand_over_listener(spec, init_pid, msg["seccomp_fd"])
                return init_pid
            elif kind == "error":
                raise RuntimeFailure(msg["msg"])
    except BaseException:
        if init_pid:
            _kill(init_pid)
        raise


def _hand_over_listener(spec: LaunchSpec, init_pid: int, fd_number: int) -> None:
    """SCMP_ACT_NOTIFY: take the listener fd from init and send it to linux.seccomp.listenerPath."""
    from .security.seccomp_listener import fd_from_process

    fd = fd_from_process(init_pid, fd_number)
    try:
        spec.seccomp.send_listener(fd, state_for_hooks(spec, "creating", init_pid))
    finally:
        os.close(fd)


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
def _stage1(spec: LaunchSpec, sock: socket.socket, ns_fds: list[tuple[str, int]]) -> None:
    linux.prctl(linux.PR_SET_DUMPABLE, 0)  # nothing in the container may ptrace or open us via /proc
    go = _recv(sock) or {}
    if go.get("t") != "go":
        os._exit(1)
    if go.get("join_self"):
        spec.cgroups.join_self()
    ns = spec.bundle.ns
    paths = dict(ns.join)
    for kind, fd in ns_fds:
        if kind == "user":
            namespaces.join(kind, fd, paths[kind])
    if ns.creates("user"):
        linux.unshare(linux.CLONE_NEWUSER)
        _send(sock, t="userns")
        reply = _recv(sock)
        if not reply or reply.get("t") != "ok":
            os._exit(1)
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
    released_r, released_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(released_w)
        try:
            # wait until stage1 has told the runtime our pid, so that messages arrive in order
            os.read(released_r, 1)
            os.close(released_r)
            _init(spec, sock)
        except BaseException as e:  # noqa: BLE001
            child_failed(lambda text: _send(sock, t="error", msg=text), e)
        os._exit(1)
    _send(sock, t="pid", pid=pid)
    os.write(released_w, b"1")
    os._exit(0)


# -- init: the container's first process ----------------------------------------------------------
def _init(spec: LaunchSpec, sock: socket.socket) -> None:
    config = spec.bundle.config
    linux_cfg = config.get("linux") or {}
    process = config.get("process")
    hooks = config.get("hooks") or {}
    ns = spec.bundle.ns
    os.setsid()
    if not spec.no_new_keyring:
        _join_session_keyring(spec.container_id)

    fifo_fd, proc_fd = spec.fifo_fd, spec.proc_fd  # needed after pivot_root, when host paths are gone
    builder = None
    if ns.creates("mount"):
        builder = rootfs_mod.RootfsBuilder(config, spec.bundle.path, spec.bundle.rootfs, spec.cgroups,
                                           in_userns=ns.has("user"))
        builder.prepare()
    if ns.creates("network"):
        namespaces.loopback_up()
    if ns.has("uts"):
        if config.get("hostname"):
            linux.sethostname(config["hostname"])
        if config.get("domainname"):
            linux.setdomainname(config["domainname"])

    state = None
    if hooks.get("createRuntime") or hooks.get("createContainer") or hooks.get("startContainer"):
        _send(sock, t="hooks")  # the runtime runs createRuntime and sends the state (with our host pid)
        reply = _recv(sock)
        if not reply or reply.get("t") != "ok":
            os._exit(1)
        state = reply["state"]
        run_hooks(hooks.get("createContainer"), "createContainer", state)
    if hooks.get("startContainer"):
        import subprocess  # noqa: F401 - run_hooks needs it after pivot_root, when the host's stdlib is gone
    if process is not None:
        proc_setup.preload(process)

    if builder is not None:
        builder.pivot(spec.no_pivot)
    else:
        os.chroot(spec.bundle.rootfs)
        os.chdir("/")
    rootfs_mod.write_sysctls(linux_cfg.get("sysctl"))  # before /proc/sys becomes read-only
    if builder is not None:
        builder.finish()

    prepared = None
    if process is not None:
        prepared = proc_setup.prepare(process, console_sock=spec.console_sock, preserve_fds=spec.preserve_fds,
                                      seccomp=spec.seccomp, in_userns=ns.has("user"), extra_env=spec.extra_env,
                                      bind_console=builder is not None)
    elif spec.console_sock is not None:
        spec.console_sock.close()
    _send(sock, t="ready", seccomp_fd=prepared.notify_fd if prepared is not None else None)
    sock.close()

    # Block until `pyrunc start` opens the fifo for reading; from now on errors go to it.
    fifo = os.open(f"self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    os.close(fifo_fd)
    os.close(proc_fd)
    try:
        if hooks.get("startContainer"):
            run_hooks(hooks["startContainer"], "startContainer", dict(state, status="created"))
        if prepared is None:
            os._exit(0)  # a container without a process: started, it has nothing to run
        prepared.execute()
    except BaseException as e:  # noqa: BLE001 - report to `start`, which prints it
        child_failed(lambda text: os.write(fifo, text.encode() or b"exec failed"), e, 127)


def _join_session_keyring(container_id: str) -> None:
    import ctypes

    keyctl = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine, 250)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(keyctl, 1, f"_ses.{container_id}".encode())  # KEYCTL_JOIN_SESSION_KEYRING; best effort
