"""init: the container's first process. It builds the rootfs, runs the createContainer hooks, pivots into the
root, prepares the user process, reports READY, then blocks on exec.fifo until `start` opens it, and execs.
From then on errors go through the fifo, to `start`, which prints them."""

from __future__ import annotations

import os

from oci_runtime import linux
from oci_runtime.errors import child_failed
from oci_runtime.process import namespaces, rootfs as rootfs_mod, setup as proc_setup
from oci_runtime.process.channel import HOOKS, OK, READY, Channel
from oci_runtime.process.hooks import run_hooks


# -- init: the container's first process ----------------------------------------------------------
def run_init(spec, channel: Channel) -> None:
    """The container's first process, from its fork by stage1 to the exec of the user process."""
    config = spec.bundle.config
    linux_cfg = config.get("linux") or {}
    process = config.get("process")
    hooks = config.get("hooks") or {}
    ns = spec.bundle.ns
    channel.debug("child process in init(): setting up the container's rootfs, hooks and process")
    os.setsid()
    if not spec.no_new_keyring:
        _join_session_keyring(spec.container_id)

    fifo_fd, proc_fd = spec.fifo_fd, spec.proc_fd  # needed after pivot_root, when host paths are gone
    builder = None
    if ns.creates("mount"):
        builder = rootfs_mod.RootfsBuilder(config, spec.bundle.path, spec.bundle.rootfs, spec.cgroups,
                                           in_userns=ns.has("user"), bind_sources=spec.bind_sources)
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
        channel.send(HOOKS)  # the runtime runs createRuntime and sends the state (with our host pid)
        state = channel.expect(OK)["state"]
        run_hooks(hooks.get("createContainer"), "createContainer", state, cwd=spec.bundle.rootfs)
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
                                      bind_console=builder is not None, hand_over=channel.hand_over_listener)
    elif spec.console_sock is not None:
        spec.console_sock.close()
    channel.debug("init: closing the pipe to signal completion: the container is set up, init now waits on "
                  "exec.fifo for start")
    channel.send(READY)
    channel.close()

    # Block until `pyrunc start` opens the fifo for reading; from now on errors go to it.
    fifo = _wait_for_start(fifo_fd, proc_fd, spec.dumpable_when_created)
    try:
        if prepared is not None:
            prepared.load_late_seccomp()
        if hooks.get("startContainer"):
            run_hooks(hooks["startContainer"], "startContainer", dict(state, status="created"), cwd="/")
        if prepared is None:
            os._exit(0)  # a container without a process: started, it has nothing to run
        prepared.execute()
    except BaseException as e:  # noqa: BLE001 - report to `start`, which prints it
        child_failed(lambda text: os.write(fifo, text.encode() or b"exec failed"), e, 127)


def _wait_for_start(fifo_fd: int, proc_fd: int, dumpable: bool) -> int:
    """Open exec.fifo for writing, which blocks until `start` opens it; return that fd (both given fds closed).

    dumpable: become dumpable for the wait, as runc's init is when it joins no namespace. An unprivileged
    runtime needs that to `exec` into a created container (opening our /proc/PID/ns files takes ptrace access,
    which a non-dumpable process grants only with CAP_SYS_PTRACE in the host's user namespace, where its memory
    belongs until it execs). A dumpable process can be ptraced from inside the container, so it must not hold
    the host's /proc first: the fifo is then reopened through the container's own /proc, if that leads to our
    fifo; else we stay non-dumpable.
    """
    via = proc_fd
    if dumpable:
        own = _own_proc_reaching(fifo_fd)
        if own >= 0:
            os.close(proc_fd)
            via = own
            linux.prctl(linux.PR_SET_DUMPABLE, 1)
    try:
        return os.open(f"self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC, dir_fd=via)
    finally:
        os.close(fifo_fd)
        os.close(via)


def _own_proc_reaching(fifo_fd: int) -> int:
    """The container's /proc (an O_PATH fd) if its self/fd/N is our exec.fifo, else -1."""
    try:
        own = os.open("/proc", linux.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        found, ours = os.stat(f"self/fd/{fifo_fd}", dir_fd=own), os.fstat(fifo_fd)
        if (found.st_dev, found.st_ino) == (ours.st_dev, ours.st_ino):
            return own
    except OSError:
        pass
    os.close(own)
    return -1


def _join_session_keyring(container_id: str) -> None:
    import ctypes

    keyctl = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine, 250)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(keyctl, 1, f"_ses.{container_id}".encode())  # KEYCTL_JOIN_SESSION_KEYRING; best effort
