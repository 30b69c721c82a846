"""The runtime as a library, for pydock and other Python orchestrators: podman's OCIRuntime shape.

    rt = Runtime(root="/run/myengine")
    rt.create("web", "/path/to/bundle", console_socket=..., pid_file=...)
    rt.start("web")
    rt.state("web").status            # "running"
    rt.kill("web", "TERM"); rt.delete("web", force=True)

Each call runs the runtime in a child process (`pyrunc --root ROOT COMMAND ...`): the runtime forks,
becomes a child subreaper and installs signal handlers, none of which a library should do to its caller
(which may have threads, e.g. progress bars). Failures raise the runtime's own exception classes
(oci_runtime.errors: ContainerNotFound, ContainerExists, BadState, ConfigInvalid, RuntimeFailure) with the
runtime's one-line message.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from oci_runtime import errors
from oci_runtime.container.state import DEFAULT_ROOT

# subprocess's DEVNULL: callers may pass either; subprocess itself loads only where a program is started
DEVNULL = -3

_ERROR_KINDS = {cls.__name__: cls for cls in (errors.RuntimeFailure, errors.ConfigInvalid, errors.ContainerNotFound,
                                               errors.ContainerExists, errors.BadState)}


def pyrunc_command(root: str | None = None) -> list[str]:
    """The runtime's command line for a child process: this interpreter with -I -S (as the pyrunc launcher
    starts it: site.py and runpy skipped), given this process's sys.path so that the same oci_runtime and
    its dependencies load, whatever the install (regular, editable, or a source checkout)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [package_parent] + [p for p in sys.path if p and p != package_parent]
    code = f"import sys; sys.path[:0] = {paths!r}; from oci_runtime.cli import main_and_exit; main_and_exit()"
    return [sys.executable, "-I", "-S", "-c", code, "--root", root or DEFAULT_ROOT]


class ContainerState:
    """The OCI state of a container (`pyrunc state`). A plain class: dataclasses costs every caller ~4 ms of
    imports (inspect, ast)."""

    __slots__ = ("id", "status", "pid", "bundle", "created", "annotations")

    def __init__(self, id: str, status: str, pid: int, bundle: str, created: str = "",
                 annotations: dict | None = None):
        self.id, self.status, self.pid, self.bundle = id, status, pid, bundle
        self.created, self.annotations = created, {} if annotations is None else annotations

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return self._fields() == other._fields() if type(other) is ContainerState else NotImplemented

    def __repr__(self) -> str:
        return "ContainerState(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__) + ")"

    @classmethod
    def from_json(cls, doc: dict) -> "ContainerState":
        return cls(doc["id"], doc["status"], doc.get("pid") or 0, doc.get("bundle", ""), doc.get("created", ""),
                   doc.get("annotations") or {})


class Runtime:
    """One state root of the runtime."""

    def __init__(self, root: str | None = None, *, systemd_cgroup: bool = False):
        self.root = root or DEFAULT_ROOT
        self.systemd_cgroup = systemd_cgroup

    # -- lifecycle ---------------------------------------------------------------------------------
    def create(self, container_id: str, bundle, *, console_socket: str | None = None,
               pid_file: str | None = None, preserve_fds: int = 0, no_pivot: bool = False,
               stdin=None, stdout=None, stderr=None, pass_fds=()) -> None:
        """Create the container (its init waits for start). stdin/stdout/stderr become the container's
        stdio when it has no terminal (file objects, fds, or None for /dev/null)."""
        args = ["create", "--bundle", os.fspath(bundle), *_create_flags(console_socket, pid_file, preserve_fds,
                                                                        no_pivot), container_id]
        self._call(args, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds)

    def start(self, container_id: str) -> None:
        self._call(["start", container_id])

    def run(self, container_id: str, bundle, *, detach: bool = False, console_socket: str | None = None,
            pid_file: str | None = None, keep: bool = False, stdin=None, stdout=None, stderr=None) -> int:
        """create + start; in the foreground, wait and return the exit code (128+N if killed by signal N).
        A container that cannot be made raises; its own non-zero exit is returned."""
        args = ["run", "--bundle", os.fspath(bundle), *_create_flags(console_socket, pid_file, 0, False)]
        args += (["--detach"] if detach else []) + (["--keep"] if keep else []) + [container_id]
        return self._call(args, stdin=stdin, stdout=stdout, stderr=stderr, status_is_result=not detach)

    def state(self, container_id: str) -> ContainerState:
        return ContainerState.from_json(json.loads(self._output(["state", container_id])))

    def list(self) -> list[ContainerState]:
        return [ContainerState.from_json(doc) for doc in json.loads(self._output(["list", "--format", "json"]))
                or []]

    def kill(self, container_id: str, signal: str | int = "TERM", *, all_processes: bool = False) -> None:
        self._call(["kill", *(["--all"] if all_processes else []), container_id, str(signal)])

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self._call(["delete", *(["--force"] if force else []), container_id])

    def pause(self, container_id: str) -> None:
        self._call(["pause", container_id])

    def resume(self, container_id: str) -> None:
        self._call(["resume", container_id])

    # -- processes and resources -------------------------------------------------------------------
    def exec(self, container_id: str, process: dict, *, detach: bool = False, console_socket: str | None = None,
             pid_file: str | None = None, stdin=None, stdout=None, stderr=None) -> int:
        """Run an OCI process object in the container; in the foreground return its exit code."""
        with _scratch_file("process-", json.dumps(process).encode()) as path:
            args = ["exec", "--process", path]
            args += (["--detach"] if detach else []) + (["--console-socket", console_socket] if console_socket else [])
            args += (["--pid-file", pid_file] if pid_file else []) + [container_id]
            return self._call(args, stdin=stdin, stdout=stdout, stderr=stderr, status_is_result=not detach)

    def processes(self, container_id: str) -> list[int]:
        return json.loads(self._output(["ps", "--format", "json", container_id]))

    def update(self, container_id: str, resources: dict) -> None:
        """Change the container's cgroup limits (a LinuxResources object)."""
        self._call(["update", "--resources", "-", container_id], input=json.dumps(resources).encode())

    def stats(self, container_id: str) -> dict:
        """One `events --stats` sample: runc's stats object."""
        return json.loads(self._output(["events", "--stats", container_id]))["data"]

    def events(self, container_id: str, interval: str = "5s") -> Iterator[dict]:
        """runc's event stream ({"type": "stats"|"oom", ...}) until the container stops."""
        import subprocess

        with _scratch_file("pyrunc-log-") as log:
            proc = subprocess.Popen(self._argv(["events", "--interval", interval, container_id], log),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                for line in proc.stdout:
                    yield json.loads(line)
            finally:
                proc.stdout.close()
                if proc.poll() is None:
                    proc.terminate()
                proc.wait()
            if proc.returncode:
                _raise_from_log(log, proc.returncode)

    # -- running the runtime -----------------------------------------------------------------------
    def _argv(self, args: list[str], log_path: str) -> list[str]:
        head = pyrunc_command(self.root) + ["--log", log_path, "--log-format", "json"]
        return head + (["--systemd-cgroup"] if self.systemd_cgroup else []) + args

    def _call(self, args: list[str], *, stdin=None, stdout=None, stderr=None, input: bytes | None = None,
              pass_fds=(), status_is_result: bool = False) -> int:
        if input is None and stdin is None:
            stdin = DEVNULL
        stdout = stdout if stdout is not None else DEVNULL
        stderr = stderr if stderr is not None else DEVNULL
        with _scratch_file("pyrunc-log-") as log:
            argv = self._argv(args, log)
            code = None if input is not None else _forked_runtime(argv, stdin, stdout, stderr, pass_fds)
            if code is None:
                import subprocess

                code = subprocess.run(argv, input=input, stdin=stdin, stdout=stdout, stderr=stderr,
                                      pass_fds=pass_fds).returncode
            if code:
                record = _logged_error(log)
                # a run or exec whose process failed returns its status; the runtime's own failure raises
                if record is not None or not status_is_result:
                    _raise(record, code)
        return code

    def _output(self, args: list[str]) -> str:
        import subprocess

        with _scratch_file("pyrunc-log-") as log:
            proc = subprocess.run(self._argv(args, log), stdin=subprocess.DEVNULL, capture_output=True)
            if proc.returncode:
                _raise_from_log(log, proc.returncode)
        return proc.stdout.decode()


@contextmanager
def _scratch_file(prefix: str, content: bytes = b""):
    """The path of a new private file holding content in $TMPDIR (else /tmp), removed afterwards: what
    tempfile.NamedTemporaryFile gives, without its imports (random, shutil: ~2 ms of every call)."""
    directory = os.environ.get("TMPDIR") or "/tmp"
    while True:
        path = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as f:
            f.write(content)
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _forked_runtime(argv: list[str], stdin, stdout, stderr, pass_fds) -> int | None:
    """Run pyrunc_command's argv in a child forked from this interpreter, without exec: the child is
    the same as the one subprocess would start (its own stdio and pass_fds only, default signal
    handlers), minus the interpreter start and the imports this process has already done (~15 ms of
    every call). Only while this process has a single thread (a fork copies no other thread, and their
    locks could be held); None then, and the caller starts the runtime as a new program."""
    if len(os.listdir("/proc/self/task")) != 1:  # every thread, not only threading's
        return None
    opened = []

    def fd_of(value, mode: int) -> int:
        if value == DEVNULL:
            opened.append(os.open(os.devnull, mode | os.O_CLOEXEC))
            return opened[-1]
        return value if isinstance(value, int) else value.fileno()

    try:
        std = [fd_of(stdin, os.O_RDONLY), fd_of(stdout, os.O_WRONLY), fd_of(stderr, os.O_WRONLY)]
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would write our buffered output a second time
        pid = os.fork()
        if pid == 0:
            _become_runtime(argv, std, pass_fds)
        _, status = os.waitpid(pid, 0)
    finally:
        for fd in opened:
            os.close(fd)
    return os.waitstatus_to_exitcode(status)


def _become_runtime(argv: list[str], std: list[int], pass_fds) -> None:
    """In the forked child: stdio and the passed fds only, a new program's signal handlers, then the CLI."""
    try:
        import signal

        moved = [os.dup(fd) for fd in std]  # first out of the way: one of them may be 0, 1 or 2
        for target, fd in enumerate(moved):
            os.dup2(fd, target)
        keep = sorted({0, 1, 2, *pass_fds})
        for low, high in zip(keep, keep[1:] + [os.sysconf("SC_OPEN_MAX")]):
            os.closerange(low + 1, high)
        for fd in pass_fds:
            os.set_inheritable(fd, True)
        signal.set_wakeup_fd(-1)
        for sig in signal.valid_signals():
            handler = signal.getsignal(sig)
            if callable(handler) and handler is not signal.default_int_handler:
                signal.signal(sig, signal.SIG_DFL)
        sys.argv = ["pyrunc", *argv[argv.index("-c") + 2:]]  # what follows `-c CODE`
        from oci_runtime.cli import main_and_exit

        main_and_exit()
    finally:
        os._exit(1)  # only reached when the CLI could not even start


def _logged_error(log_path: str) -> dict | None:
    """The runtime's last error record in its JSON log, or None."""
    last = None
    try:
        with open(log_path, "rb") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("level") == "error":
                    last = record
    except OSError:
        return None
    return last


def _raise_from_log(log_path: str, status: int):
    _raise(_logged_error(log_path), status)


def _raise(record: dict | None, status: int):
    record = record or {}
    cls = _ERROR_KINDS.get(record.get("kind", ""), errors.RuntimeFailure)
    raise cls(record.get("msg") or f"the runtime exited with status {status}")


def _create_flags(console_socket, pid_file, preserve_fds, no_pivot) -> list[str]:
    flags = ["--console-socket", console_socket] if console_socket else []
    flags += ["--pid-file", os.fspath(pid_file)] if pid_file else []
    flags += ["--preserve-fds", str(preserve_fds)] if preserve_fds else []
    return flags + (["--no-pivot"] if no_pivot else [])


# -- the two calls pydock's RUN steps make ---------------------------------------------------------------------
def run_container(bundle, container_id: str, *, root: str | None = None, stdin=None, stdout=None, stderr=None,
                  log_file: str | None = None) -> int:
    """Run the bundle in the foreground like `pyrunc run`; return the exit status, whether the container
    failed or the runtime did (128+N when killed by signal N); errors go to stderr and, if given, log_file.
    stdin/stdout/stderr: file objects, fds, or None to inherit (stdin: /dev/null)."""
    import subprocess

    cmd = pyrunc_command(root)
    if log_file:
        cmd += ["--log", log_file, "--log-format", "json"]
    cmd += ["run", "--bundle", os.fspath(bundle), container_id]
    proc = subprocess.run(cmd, stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=stdout,
                          stderr=stderr)
    return proc.returncode


def delete_container(container_id: str, *, root: str | None = None) -> None:
    """Force-delete a container (idempotent), e.g. after the caller was interrupted."""
    import subprocess

    subprocess.run([*pyrunc_command(root), "delete", "--force", container_id],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- seccomp profiles, for an engine writing linux.seccomp -----------------------------------------------------
def check_seccomp(seccomp: dict) -> None:
    """Raise errors.RuntimeFailure with the runtime's one line (naming the field) when it would refuse this
    linux.seccomp; no libseccomp needed."""
    from oci_runtime.seccomp.profile import parse_profile

    parse_profile(seccomp)


def unknown_syscall_names(names: list[str]) -> set[str]:
    """The names this host's libseccomp cannot resolve (the runtime refuses them; runc skips them). Empty when
    libseccomp is missing: the runtime then says why it cannot filter."""
    from oci_runtime.seccomp.errors import SeccompError
    from oci_runtime.seccomp.lib import NR_SCMP_ERROR, library

    try:
        lib = library()
    except SeccompError:
        return set()
    return {name for name in names if lib.syscall_number(name) == NR_SCMP_ERROR}
