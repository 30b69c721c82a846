"""`pyrunc exec`: a new process inside a running container.

runtime (pyrunc exec)            stage1 (forked)                        process (forked by stage1)
  place stage1 in the cgroup ->  non-dumpable; setns into each of
                                 init's namespaces (user first, mnt
                                 last); fork                         -> terminal, rlimits, user, caps,
                             <-  "pid" N; exit                          no_new_privs, cwd, lookup
  write --pid-file; wait for EOF on the socket (execve closed it)      <- "error" if anything failed
  then wait for the process (or return at once with --detach)            seccomp; execve

Security: the joining processes are non-dumpable before they enter any namespace, so nothing in the
container can open /proc/<pid>/exe, /mem or /fd of the runtime while it runs there (CVE-2019-5736), and
every fd but stdio and --preserve-fds is close-on-exec before anything container-controlled runs
(CVE-2024-21626). The process's cwd is resolved inside the container's mount namespace.
"""

from __future__ import annotations

import os

import _socket as socket

from . import process as proc_setup
from . import linux
from .container import CREATED, PAUSED, RUNNING, STOPPED, Container, write_pid_file
from .errors import BadState, ConfigInvalid, RuntimeFailure, child_failed
from .jsonio import dumps, loads
from .namespaces import FLAGS, JOIN_ORDER, PROC_NAMES, NamespacePlan, open_joins

_MSG_MAX = 1 << 16


def cmd_exec(args) -> int:
    from .cli import console_socket, state_root

    container = Container.load(state_root(args), args.id)
    status = container.status()
    if status == STOPPED:
        raise BadState("cannot exec in a stopped container")
    if status == PAUSED and not args.ignore_paused:
        raise BadState("cannot exec in a paused container (use --ignore-paused)")
    if status not in (CREATED, RUNNING, PAUSED):
        raise BadState(f"cannot exec in a {status} container")
    process = build_process(container, args)
    seccomp = None
    config_linux = (container.state.get("config") or {}).get("linux") or {}
    if config_linux.get("seccomp"):
        from .security.seccomp import prepare_filter

        seccomp = prepare_filter(config_linux["seccomp"], strict=True)

    own_pty = None
    sock = console_socket(args.console_socket) if process.get("terminal") else None
    if process.get("terminal") and sock is None:
        if args.detach:
            raise RuntimeFailure("exec with a terminal and --detach needs --console-socket")
        own_pty, sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    if not args.detach:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # the process is our grandchild; its exit must come to us
    try:
        pid = spawn(container, process, seccomp, sock, args.preserve_fds)
    finally:
        if sock is not None:
            sock.close()
    if args.pid_file:
        write_pid_file(args.pid_file, pid)
    if args.detach:
        return 0
    from .run import wait_foreground

    master = None
    if own_pty is not None:
        from .console import recv_fd

        master = recv_fd(own_pty)
        own_pty.close()
    try:
        return wait_foreground(pid, master)
    finally:
        if master is not None:
            os.close(master)


def build_process(container: Container, args) -> dict:
    """The process to run: --process FILE as given, or the container's own process with ARGS and flags."""
    if args.process:
        from .config import read_json
        from .validate import validate_process

        process = read_json(args.process, "process.json")
        validate_process(process)
    else:
        if not args.command:
            raise ConfigInvalid("exec needs a command to run, or --process FILE")
        base = (container.state.get("config") or {}).get("process") or {}
        process = loads(dumps(base))  # a deep copy of the container's process settings
        process["args"] = list(args.command)
        process.pop("consoleSize", None)
        process["terminal"] = False
    if args.tty:
        process["terminal"] = True
    if args.cwd:
        process["cwd"] = args.cwd
    if args.env:
        env = [e for e in process.get("env") or [] if e.split("=", 1)[0] not in {x.split("=", 1)[0] for x in args.env}]
        process["env"] = env + list(args.env)
    if args.user:
        uid, _, gid = args.user.partition(":")
        try:
            user = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise ConfigInvalid(f"--user {args.user!r}: expected uid[:gid] as numbers") from None
        process["user"] = user
    if args.additional_gids:
        process.setdefault("user", {})["additionalGids"] = [int(g) for g in args.additional_gids]
    if args.cap:
        caps = process.setdefault("capabilities", {})
        for set_name in ("bounding", "effective", "permitted"):
            caps[set_name] = list(dict.fromkeys((caps.get(set_name) or []) + list(args.cap)))
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    if args.apparmor:
        process["apparmorProfile"] = args.apparmor
    if args.process_label:
        process["selinuxLabel"] = args.process_label
    proc_setup.check(process)
    return process


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


def _send(sock, **msg) -> None:
    sock.send(dumps(msg, compact=True).encode())


def spawn(container: Container, process: dict, seccomp, console_sock, preserve_fds: int) -> int:
    """Start the process inside the container; return its host pid once it has exec'd (errors raised)."""
    ns_fds = _namespaces_to_join(container.pid)
    in_userns = any(kind == "user" for kind, _ in ns_fds) or bool(
        ((container.state.get("config") or {}).get("linux") or {}).get("uidMappings"))
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        stage1 = os.fork()
        if stage1 == 0:  # pragma: no cover - runs in the child
            parent_sock.close()
            try:
                _stage1(child_sock, ns_fds, process, seccomp, console_sock, preserve_fds, in_userns,
                        container.cgroups)
            except BaseException as e:  # noqa: BLE001 - every failure must reach the runtime
                _report(child_sock, e)
            os._exit(1)
    finally:
        for _, fd in ns_fds:
            os.close(fd)
    child_sock.close()
    pid = 0
    try:
        mgr = container.cgroups
        if mgr is not None:
            mgr.apply_rest(stage1)  # stage1 joins the v1 hierarchies itself (fast), see launch.py
        _send(parent_sock, t="go", join_self=mgr is not None)
        error = None
        while True:  # until the socket closes: the process exec'd (close-on-exec) or died
            data = parent_sock.recv(_MSG_MAX)
            if not data:
                break
            msg = loads(data)
            if msg["t"] == "pid":
                pid = msg["pid"]
            elif msg["t"] == "error":
                error = msg["msg"]
        if error is not None or not pid:
            raise RuntimeFailure(error or "exec failed: the process exited before it started")
        return pid
    finally:
        parent_sock.close()
        try:
            os.waitpid(stage1, 0)
        except ChildProcessError:
            pass


def _report(sock, e: BaseException, code: int = 1):
    child_failed(lambda text: _send(sock, t="error", msg=text), e, code)


def _stage1(sock, ns_fds, process, seccomp, console_sock, preserve_fds, in_userns, cgroups) -> None:
    linux.prctl(linux.PR_SET_DUMPABLE, 0)  # before entering any namespace: see the module docstring
    proc_setup.preload(process)
    data = sock.recv(_MSG_MAX)
    go = loads(data) if data else {}
    if go.get("t") != "go":
        os._exit(1)
    if go.get("join_self"):
        cgroups.join_self()
    for kind, fd in ns_fds:
        try:
            linux.setns(fd, FLAGS[kind], label=f"{kind} namespace")
        except OSError as e:
            raise RuntimeFailure(f"joining the container's {kind} namespace: {e.strerror}") from None
        if kind == "user":
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    try:
        pid = os.fork()  # the pid namespace applies to our children only
    except OSError as e:
        if e.errno == 12:  # ENOMEM: the pid namespace's init has exited
            raise BadState("cannot exec: the container is stopping (its init has exited)") from None
        raise
    if pid == 0:
        try:
            os.setsid()
            prepared = proc_setup.prepare(process, console_sock=console_sock, preserve_fds=preserve_fds,
                                          seccomp=seccomp, in_userns=in_userns, bind_console=False)
            prepared.execute()
        except BaseException as e:  # noqa: BLE001
            _report(sock, e, 127)
        os._exit(127)
    _send(sock, t="pid", pid=pid)
    os._exit(0)
