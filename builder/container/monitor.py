"""The monitor: one small process per running container, double-forked and in its own session so that
the CLI that started it can die. It mounts the container's filesystem, creates and starts the container
through oci_runtime.api (state root STORE/runtime), owns its stdio (pipes, or the pty master received on
a console socket), appends output to the json-file log (and to the attached CLI's stdio, for a foreground
run), reaps the container's init (it is the child subreaper init is reparented to), records the exit
code and finish time, and applies the restart policy (--restart) until the container stays down.

It serves the attach socket (builder.container.attach) for `pydock attach` and window sizes. It tells
the CLI how things go on a status pipe, one line each: "started PID", "error CODE MESSAGE", "detached"
(the detach keys were typed in a foreground -it run), "exit CODE". A guard process it forks watches it:
if the monitor dies without recording an end (it was killed), the guard kills the container and records
it as exited, so no container outlives its monitor.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

from builder.container.liveness import process_start_time
from builder.container.logs import LogWriter, log_path, rotation
from builder.container.records import Records
from oci_runtime import errors, linux
from oci_runtime.units import rfc3339

KILLED_EXIT = 137
RuntimeErrors = (errors.RuntimeFailure, errors.ConfigInvalid)


def command_failure_status(message: str) -> int:
    """docker's status for a command that cannot run: 127 not found, 126 otherwise; 125 for the rest."""
    text = message.lower()
    if "not found" in text or "no such file" in text:
        return 127
    if "permission denied" in text or "exec format" in text or "is a directory" in text:
        return 126
    return 125


def runtime_for(store_root: Path):
    from oci_runtime.api import Runtime

    return Runtime(root=os.fspath(Path(store_root) / "runtime"))


def spawn_monitor(store_root: Path, container_id: str, *, attach: bool, detach_keys: bytes = b"",
                  stdin: bool = True) -> int:
    """Start the monitor (double fork + setsid); return the read end of its status pipe. attach: the
    monitor forwards output to our stdout/stderr and (if stdin) our stdin to the container (foreground
    run); with a pty, detach_keys typed there let the CLI go ("detached" on the status pipe) and the
    container run on."""
    status_r, status_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(status_r)
            os.setsid()
            if os.fork() == 0:
                if not attach:
                    _to_devnull(0, 1, 2)
                elif not stdin:
                    _to_devnull(0)  # our input is not the container's: the monitor never reads it
                code = 1
                try:
                    code = run_monitor(Path(store_root), container_id, status_w, attach=attach,
                                       detach_keys=detach_keys, stdin=stdin)
                finally:
                    os._exit(code)
        finally:
            os._exit(0)
    os.close(status_w)
    os.waitpid(child, 0)
    return status_r


def _to_devnull(*fds: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd)
    os.close(null)


def _say(status_fd: int, line: str) -> None:
    try:
        os.write(status_fd, (line + "\n").encode())
    except OSError:
        pass  # the CLI is gone: nobody to tell


def run_monitor(store_root: Path, container_id: str, status_fd: int, *, attach: bool,
                detach_keys: bytes = b"", stdin: bool = True) -> int:
    from builder.container.attach import AttachServer

    records = Records(store_root)
    cdir = records.path(container_id)
    runtime = runtime_for(store_root)
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # init is reparented to us when `create` exits
    me = os.getpid()
    with records.edit(container_id) as doc:
        doc["Monitor"] = {"Pid": me, "StartTime": process_start_time(me)}
        doc["State"].update(Status="starting", Error="")
    guard_w, guard_pid = _spawn_guard(store_root, container_id, status_fd)
    with records.edit(container_id) as doc:
        doc["Guard"] = {"Pid": guard_pid, "StartTime": process_start_time(guard_pid)}
    tty, open_stdin = bool(doc["Config"].get("Tty")), bool(doc["Config"].get("OpenStdin"))
    server = AttachServer(cdir)
    foreground = _Foreground(status_fd, open_stdin and stdin, detach_keys if tty else b"") if attach else None
    restarts, first = 0, True
    while True:
        try:
            init_pid, outputs, stdin_w, ends = _start_once(store_root, records, runtime, doc, cdir)
        except _CannotStart as e:
            code = e.code
            again = not first and should_restart(records.load(container_id), code)
            auto_remove = _finish(records, runtime, container_id, cdir, code, error=e.message, reap=e.reap,
                                  restarting=again)
            if first:
                _say(status_fd, f"error {e.code} {e.message}")
                return 0
        else:
            started = time.monotonic()
            with records.edit(container_id) as doc:
                doc["State"].update(Status="running", Running=True, Restarting=False, Pid=init_pid,
                                    StartedAt=rfc3339(), ExitCode=0, FinishedAt="0001-01-01T00:00:00Z")
            if first:
                _say(status_fd, f"started {init_pid}")
                first = False
            if foreground and tty:
                _copy_window_size(0, ends[0])
            log = LogWriter(log_path(cdir, container_id), *rotation(doc["HostConfig"].get("LogConfig")),
                            on_error=lambda message: _note_log_error(records, container_id, message))
            code = _pump(init_pid, outputs, stdin_w if open_stdin else None, log, foreground, server,
                         pty=ends[0] if tty else None)
            log.close()
            for fd in ends:
                try:
                    os.close(fd)
                except OSError:
                    pass
            again = should_restart(records.load(container_id), code)
            auto_remove = _finish(records, runtime, container_id, cdir, code, error="", reap=None,
                                  restarting=again)
            server.end(code)  # once recorded: an attached client that returns sees the container exited
            if time.monotonic() - started > 10:
                restarts = 0  # it ran a while: the back-off starts over, as docker's does
        if not again:
            break
        restarts += 1
        with records.edit(container_id) as doc:
            doc["RestartCount"] = doc.get("RestartCount", 0) + 1
        time.sleep(min(0.1 * 2 ** (restarts - 1), 60.0))
        doc = records.load(container_id)
        if doc.get("StopRequested"):
            with records.edit(container_id) as doc:
                doc["State"].update(Status="exited", Restarting=False)
            break
    _say(status_fd, f"exit {code}")
    server.close()
    try:
        os.unlink(cdir / "attach.sock")
    except OSError:
        pass
    if auto_remove:
        from builder.container.volumes import remove_container_volumes

        remove_container_volumes(store_root, records, records.load(container_id))
        records.remove(container_id)
    os.close(guard_w)
    return 0


def _note_log_error(records: Records, container_id: str, message: str) -> None:
    """A log write failed (a full disk): `logs` tells the user some output is missing."""
    try:
        with records.edit(container_id) as doc:
            doc["LogError"] = message
    except Exception:  # noqa: BLE001 - the record's disk may be the full one: the container goes on
        pass


def should_restart(doc: dict, code: int) -> bool:
    """docker's restart policies: no, always, unless-stopped, on-failure[:max]; never after stop/rm."""
    policy = doc["HostConfig"].get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if doc.get("StopRequested") or name == "no":
        return False
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return code != 0 and (limit == 0 or doc.get("RestartCount", 0) < limit)
    return True


class _CannotStart(Exception):
    def __init__(self, code: int, message: str, reap: int | None = None):
        super().__init__(message)
        self.code, self.message, self.reap = code, message, reap


def _start_once(store_root: Path, records: Records, runtime, doc: dict, cdir: Path):
    """Mount, write the bundle, create and start the container: (init pid, outputs, stdin end, fds to
    close). Raises _CannotStart with docker's status (126/127: the command; 125: anything else)."""
    from builder.container.bundle import write_bundle
    from builder.container.rootfs import make_workdir, mount_rootfs
    from builder.container.volumes import copy_up_all
    from builder.image.store import ImageStore
    from builder.network.endpoints import attach as attach_network
    from builder.network.ports import publish_container as publish_ports

    container_id = doc["Id"]
    tty, open_stdin = bool(doc["Config"].get("Tty")), bool(doc["Config"].get("OpenStdin"))
    pid_file = cdir / "init.pid"
    try:
        store = ImageStore(store_root)
        image = store.resolve(doc["Image"])
        rootfs = mount_rootfs(store, image, cdir)
        make_workdir(rootfs, doc["Config"].get("WorkingDir"))
        copy_up_all(doc, rootfs)
        doc = attach_network(store_root, records, container_id)
        doc = publish_ports(store_root, records, container_id)
        bundle = write_bundle(cdir, doc, image.config, rootfs)
        if os.path.lexists(os.path.join(runtime.root, container_id)):  # a runtime call costs a process
            try:
                runtime.delete(container_id, force=True)  # what a crashed earlier run left
            except Exception:  # noqa: BLE001 - gone meanwhile
                pass
        pid_file.unlink(missing_ok=True)
        # `run --detach`: create and start in one runtime process (one interpreter start fewer than two calls)
        if tty:
            master, stdin_w, outputs = _run_with_pty(runtime, container_id, bundle, cdir, pid_file)
            ends = [master]
        else:
            stdin_w, outputs, ends = _run_with_pipes(runtime, container_id, bundle, pid_file, open_stdin)
        init_pid = int(pid_file.read_text())
    except RuntimeErrors as e:  # the command could not run (not found, not executable): docker's 126/127
        raise _CannotStart(command_failure_status(str(e)), str(e), reap=_pid_in(pid_file)) from None
    except BaseException as e:  # noqa: BLE001 - reported to the CLI, and recorded
        raise _CannotStart(125, str(e)) from None
    return init_pid, outputs, stdin_w, ends


def _pid_in(pid_file: Path) -> int | None:
    """The init a failed run left (killed by the runtime, reparented to us: ours to reap), if it wrote one."""
    try:
        return int(pid_file.read_text())
    except (OSError, ValueError):
        return None


def _run_with_pipes(runtime, container_id, bundle, pid_file, open_stdin):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if open_stdin else (None, None)
    try:
        runtime.run(container_id, bundle, detach=True, stdin=in_r, stdout=out_w, stderr=err_w,
                    pid_file=os.fspath(pid_file))
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    return in_w, {out_r: "stdout", err_r: "stderr"}, [out_r, err_r] + ([in_w] if in_w is not None else [])


def _run_with_pty(runtime, container_id, bundle, cdir, pid_file):
    import socket  # here: exec and the other commands that import this module need no socket
    import tempfile

    # a short path of our own: AF_UNIX paths stop at 108 bytes, and the store's may be longer
    sock_dir = tempfile.mkdtemp(prefix="pydock-console-")
    path = os.path.join(sock_dir, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
        runtime.run(container_id, bundle, detach=True, console_socket=path, pid_file=os.fspath(pid_file))
        conn, _ = listener.accept()  # init connected during the run; the backlog kept it
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(sock_dir)
    master = fds[0]
    return master, master, {master: "stdout"}


def _copy_window_size(tty_fd: int, master: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(tty_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass  # our stdin is no terminal


class _Foreground:
    """The CLI that started us in the foreground: its stdin is our fd 0, its stdout and stderr our 1 and
    2, until its detach keys are typed there (then it is told so and let go; the container runs on)."""

    def __init__(self, status_fd: int, open_stdin: bool, detach_keys: bytes):
        from builder.container.detachkeys import DetachScanner

        self.status_fd = status_fd
        self.reading = open_stdin
        self.sinks = {"stdout": 1, "stderr": 2}
        self.scanner = DetachScanner(detach_keys) if detach_keys else None

    def input(self, data: bytes) -> bytes:
        """What of the CLI's input goes on to the container."""
        if self.scanner is None:
            return data
        data, detached = self.scanner.feed(data)
        if detached:
            self.reading = False
            self.sinks.clear()
            _to_devnull(0, 1, 2)
            _say(self.status_fd, "detached")
        return data

    def output(self, stream: str, data: bytes) -> None:
        sink = self.sinks.get(stream)
        if sink is not None:
            try:
                os.write(sink, data)
            except OSError:
                self.sinks.pop(stream)  # the CLI went away; the container goes on


def _pump(init_pid: int, outputs: dict[int, str], stdin_w: int | None, log: LogWriter,
          foreground: _Foreground | None, server, pty: int | None) -> int:
    """Copy output to the log, the foreground CLI and attached clients, and their input to the
    container, until init has exited and its output is drained. Returns docker's exit code (128+N when
    killed by signal N)."""
    open_outputs = dict(outputs)
    forward_stdin = foreground is not None and foreground.reading and stdin_w is not None
    code = None
    drain_deadline = None
    try:
        exited = os.pidfd_open(init_pid)  # readable when init exits: no polling delay on the exit
    except OSError:
        exited = None
    while open_outputs or code is None:
        if code is None:
            pid, status = os.waitpid(init_pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code
                drain_deadline = time.monotonic() + 2.0
                if exited is not None:
                    os.close(exited)
                    exited = None
                if not open_outputs:
                    break  # exited and drained (the select below would only wait out its timeout)
        if drain_deadline is not None and time.monotonic() > drain_deadline:
            break  # a leftover process of the container still holds the pipe: stop waiting
        forward_stdin = forward_stdin and foreground.reading
        watched = list(open_outputs) + ([0] if forward_stdin else []) + server.fds()
        ready, _, _ = select.select(watched + ([exited] if exited is not None else []), [], [], 0.1)
        for fd in ready:
            if fd == exited:
                continue  # reaped at the top of the loop
            if fd not in open_outputs and fd != 0:
                if fd in server.fds():
                    server.handle(fd, stdin_w, pty)
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the pty's last slave is closed
                data = b""
            if fd == 0:
                if not data:
                    forward_stdin = False
                    if stdin_w not in outputs:  # a pipe: EOF reaches the container; a pty stays open
                        os.close(stdin_w)
                        stdin_w = None
                    continue
                data = foreground.input(data)
                try:
                    if data:
                        os.write(stdin_w, data)
                except OSError:
                    forward_stdin = False
                continue
            if not data:
                del open_outputs[fd]
                continue
            stream = open_outputs[fd]
            log.write(stream, data)
            if foreground is not None:
                foreground.output(stream, data)
            server.broadcast(stream, data)
    if exited is not None:
        os.close(exited)
    return code if code is not None else KILLED_EXIT


def _finish(records: Records, runtime, container_id: str, cdir: Path, code: int, *, error: str,
            reap: int | None, restarting: bool = False) -> bool:
    """Delete the runtime's container, unmount, record the end (as "restarting" when the policy will
    start it again: a `stop` meanwhile waits for us). Returns whether --rm asked for removal."""
    from builder.container.rootfs import unmount_rootfs

    try:
        runtime.delete(container_id, force=True)
    except Exception:  # noqa: BLE001 - already gone
        pass
    if reap:
        try:
            os.waitpid(reap, 0)
        except ChildProcessError:
            pass
    _release_network(store_root_of(records), records, container_id)
    unmount_rootfs(cdir)
    with records.edit(container_id) as doc:
        doc["State"].update(Status="restarting" if restarting else "exited", Running=False, Restarting=restarting,
                            Paused=False, Pid=0, ExitCode=code, Error=error, FinishedAt=rfc3339())
        return bool(doc["HostConfig"].get("AutoRemove"))


def store_root_of(records: Records) -> Path:
    return records.dir.parent


def _release_network(store_root: Path, records: Records, container_id: str) -> None:
    """The container's veths, addresses and netns go when it stops (docker's endpoint release); a failure
    here must not keep the end from being recorded, and the next pydock command reconciles."""
    from builder.network.endpoints import detach

    try:
        detach(store_root, records, container_id)
    except Exception:  # noqa: BLE001 - reconciled later
        pass


def _spawn_guard(store_root: Path, container_id: str, status_fd: int) -> tuple[int, int]:
    """Fork the guard; return the pipe end whose closing (our exit, however it happens) wakes it, and
    its pid (recorded: while it finishes a container, the container still counts as running)."""
    guard_r, guard_w = os.pipe2(os.O_CLOEXEC)
    monitor = os.getpid()
    guard_pid = os.fork()
    if guard_pid == 0:
        code = 0
        try:
            os.close(guard_w)
            os.close(status_fd)
            _to_devnull(0, 1, 2)
            while os.read(guard_r, 1):
                pass
            records = Records(store_root)
            doc = records.load(container_id)
            # our monitor died before recording an end (and no later `start` has made a new monitor)
            if doc["State"]["Status"] in ("starting", "running", "restarting") and (doc.get("Monitor") or {}).get("Pid") == monitor:
                _finish(records, runtime_for(store_root), container_id, records.path(container_id),
                        KILLED_EXIT, error="the container's monitor was killed", reap=None)
        except BaseException:  # noqa: BLE001 - the record is gone (rm -f): nothing to guard
            code = 1
        finally:
            os._exit(code)
    os.close(guard_r)
    return guard_w, guard_pid
