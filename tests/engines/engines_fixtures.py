"""Real container engines with pyrunc as their runtime: fixtures that start docker, podman and containerd
on scratch roots through scripts/engines.sh (once per test module), a busybox image imported into each,
and helpers (a pty runner, cgroup paths of a container's process, waiting for a condition).

An engine that is not installed, or whose daemon does not start, skips its tests with the reason; set
PYRUNC_ENGINES=require to make that a failure instead (CI, where the engines must be there)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import tarfile
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from support import PYDOCK, REPO, run_captured, unavailable

SCRIPT = REPO / "scripts" / "engines.sh"
ENGINE_BINARIES = {"docker": "/usr/sbin/dockerd", "podman": "/usr/bin/podman", "containerd": "/usr/bin/containerd"}
DEBIAN_PACKAGES = {"docker": "docker.io", "podman": "podman", "containerd": "containerd"}
IMAGE_TAG = "busybox:pyrunc"


@dataclass
class Engine:
    """One engine's command line, with the environment that points it at our scratch daemons."""

    name: str
    cli: list[str]
    env: dict[str, str]
    runtime: list[str]  # `run`/`create` flags that select pyrunc
    runc: list[str]  # the same for runc, to compare with
    image: str = ""
    log: Path | None = None  # the daemon's log, quoted when something fails
    scratch: Path | None = None

    def __call__(self, *args: object, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        return run_captured([*self.cli, *map(str, args)], timeout=timeout, input=input, env=self.env)

    def popen(self, *args: object, stdout, **kw) -> subprocess.Popen:
        return subprocess.Popen([*self.cli, *map(str, args)], stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.STDOUT, env=self.env, **kw)

    def daemon_log(self, lines: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def remove(self, name: str) -> None:
        """Remove a container whatever its state (test cleanup)."""
        if self.name == "containerd":
            self("tasks", "kill", "--all", "--signal", "SIGKILL", name, timeout=30)
            self("tasks", "delete", "--force", name, timeout=30)
            self("containers", "delete", name, timeout=30)
        elif self.name == "podman":
            self("rm", "--force", "--time", "0", name, timeout=60)
        else:
            self("rm", "--force", name, timeout=60)


def start_engine(name: str) -> tuple[Engine, Path]:
    """Start one engine on a new scratch dir (short, under /tmp: unix socket paths are limited to 108 bytes)."""
    if os.geteuid() != 0:
        pytest.skip("container engines need root")
    if not os.path.exists(ENGINE_BINARIES[name]):
        unavailable(f"{DEBIAN_PACKAGES[name]} is not installed (bash scripts/engines.sh install)")
    scratch = Path(tempfile.mkdtemp(prefix=f"pyrunc-{name}-", dir="/tmp"))
    out = run_captured(["bash", str(SCRIPT), "start", str(scratch), name], timeout=180)
    if out.returncode != 0:
        run_captured(["bash", str(SCRIPT), "stop", str(scratch)], timeout=180)
        unavailable(f"{name} did not start: {out.stderr.strip()[-2000:]}")
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINERD_", "CONTAINERS_"))}
    pyrunc = values["PYRUNC"]
    if name == "docker":
        env.update(DOCKER_HOST=values["DOCKER_HOST"], DOCKER_CONFIG=values["DOCKER_CONFIG"])
        engine = Engine(name, [values["DOCKER_CLI"]], env, ["--runtime", "pyrunc"], ["--runtime", "runc"],
                        log=Path(values["DOCKERD_LOG"]))
    elif name == "podman":
        env.update(CONTAINERS_CONF=values["CONTAINERS_CONF"], CONTAINERS_STORAGE_CONF=values["CONTAINERS_STORAGE_CONF"])
        runc = shutil.which("runc") or "/usr/sbin/runc"
        engine = Engine(name, ["/usr/bin/podman"], env, ["--runtime", pyrunc], ["--runtime", runc])
    else:
        cli = ["/usr/bin/ctr", "--address", values["CONTAINERD_ADDRESS"], "--namespace", values["CONTAINERD_NAMESPACE"]]
        runc = shutil.which("runc") or "/usr/sbin/runc"
        engine = Engine(name, cli, env, ["--runc-binary", pyrunc], ["--runc-binary", runc],
                        log=Path(values["CONTAINERD_LOG"]))
    engine.scratch = scratch
    return engine, scratch


def stop_engine(scratch: Path) -> None:
    out = run_captured(["bash", str(SCRIPT), "stop", str(scratch)], timeout=300)
    assert out.returncode == 0, out.stderr


def busybox_tarball(template: Path, dest: Path) -> Path:
    """The test busybox rootfs as an uncompressed tar, the input of `docker import` and friends."""
    with tarfile.open(dest, "w") as tar:
        for entry in sorted(template.iterdir()):
            tar.add(entry, arcname=entry.name)
    return dest


def import_image(engine: Engine, template: Path, work: Path) -> str:
    """Put the busybox rootfs into the engine's image store; return the reference to run."""
    tarball = busybox_tarball(template, work / "busybox.tar")
    if engine.name == "docker":
        ref = IMAGE_TAG
        out = engine("import", tarball, ref)
    elif engine.name == "podman":
        ref = f"localhost/{IMAGE_TAG}"
        out = engine("import", tarball, ref)
    else:
        # ctr imports archives, not rootfs tarballs: our own builder turns the tarball into a docker archive.
        store = work / "pydock"
        env = {**os.environ, "PYDOCK_ROOT": str(store)}
        for cmd in (["import", str(tarball), IMAGE_TAG], ["save", "-o", str(work / "busybox-docker.tar"), IMAGE_TAG]):
            made = run_captured([*PYDOCK, *cmd], env=env)
            assert made.returncode == 0, made.stderr
        ref = f"docker.io/library/{IMAGE_TAG}"
        out = engine("images", "import", work / "busybox-docker.tar")
    assert out.returncode == 0, f"{engine.name} could not import the busybox image: {out.stderr}\n{engine.daemon_log()}"
    return ref


def engine_fixture(name: str):
    """A fixture yielding a started Engine with the busybox image, stopped by pid at the end. Module scope:
    each engine's tests live in one module, so its daemon starts once and is gone before other tests run."""

    @pytest.fixture(scope="module")
    def fixture(busybox_template, tmp_path_factory):
        engine, scratch = start_engine(name)
        try:
            engine.image = import_image(engine, busybox_template, tmp_path_factory.mktemp(f"{name}-image"))
            yield engine
        finally:
            stop_engine(scratch)

    return fixture


@pytest.fixture
def names(engine):
    """names() -> a fresh container name; every container named so is removed after the test."""
    made: list[str] = []

    def new() -> str:
        made.append(f"pyrunc-t{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    for name in made:
        engine.remove(name)


# ------------------------------------------------------------------------------------------- helpers


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.1):
    """Poll until condition() is truthy and return it; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def cgroup_dir(pid: int, controller: str) -> Path:
    """The host directory of the cgroup that `pid` is in, for a v1 controller (or the v2 tree for "")."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    v2 = next(line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
              if line.startswith("0::"))
    return Path("/sys/fs/cgroup") / ("unified" if Path("/sys/fs/cgroup/unified").is_dir() else "") / v2.lstrip("/")


@dataclass
class PtyResult:
    returncode: int
    output: str


@dataclass
class PtySession:
    """A command whose stdin/stdout/stderr are a pty, as when a person types it in a terminal."""

    argv: list[str]
    env: dict[str, str]
    rows: int = 40
    columns: int = 100
    output: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        master, slave = pty.openpty()
        # a window size the engine passes on to the container's terminal
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.columns, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave, env=self.env,
                                     start_new_session=True)
        os.close(slave)

    def _read(self, timeout: float) -> bytes | None:
        """What arrives within `timeout`: None if nothing did, b"" at the end (every slave fd closed)."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return None
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the slave side is closed
            data = b""
        self.output += data
        return data

    def expect(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern.encode(), self.output):
            if time.monotonic() > deadline or self._read(0.2) == b"":
                raise AssertionError(f"{pattern!r} never appeared in {bytes(self.output)!r}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 60) -> PtyResult:
        """Read to the end and reap the command."""
        deadline = time.monotonic() + timeout
        while True:
            chunk = self._read(0.2)
            if chunk == b"" or (chunk is None and self.proc.poll() is not None):
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                os.close(self.master)
                raise AssertionError(f"{self.argv} did not finish; output so far {bytes(self.output)!r}")
        rc = self.proc.wait()
        os.close(self.master)
        return PtyResult(rc, self.output.decode(errors="replace"))


# ------------------------------------------------------------------------------- docker-like CLIs

# The container's view of itself, compared between runc and pyrunc on the same engine. Things that differ
# between any two containers (ids, times, the mount order podman picks at random) are normalised away.
PROBE = r"""
grep -E '^(Cap|NoNewPrivs|Seccomp|Groups)' /proc/self/status
id; umask; ulimit -a
env | grep -v '^HOSTNAME=' | sort
ls -la /dev /dev/pts /dev/shm /dev/mqueue | sed -E 's/ [A-Z][a-z]{2} [ 0-9]{2} [0-9:]{4,5} / /'
sed -E 's/lowerdir=[^ ]*//; s#^tmpfs /sys/fs/cgroup tmpfs (ro|rw),#tmpfs /sys/fs/cgroup tmpfs #
        s#^[a-z]+ (/sys/fs/cgroup/[^ ]+ cgroup )#cgroup \1#' /proc/mounts | sort
sed -E 's#/[^/]+$#/ID#' /proc/1/cgroup
for ns in /proc/1/ns/*; do echo "$ns $(readlink $ns | sed -E 's/[0-9]+/N/')"; done
cat /proc/1/oom_score_adj
for f in cpu/cpu.cfs_quota_us cpu/cpu.shares memory/memory.limit_in_bytes pids/pids.max; do
  echo "$f $(cat /sys/fs/cgroup/$f 2>&1)"
done
ps -o comm
"""

# docker/podman run flags, in groups, each group run once under runc and once under pyrunc.
SAME_AS_RUNC_FLAGS = [
    [],
    ["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--security-opt", "no-new-privileges",
     "--user", "1000:1000", "--group-add", "10"],
    ["--read-only", "--tmpfs", "/run:size=1m", "--ulimit", "nofile=1000:2000", "--ulimit", "nproc=500:600",
     "--shm-size", "16m", "--device", "/dev/kmsg", "--sysctl", "net.ipv4.ip_forward=1", "--oom-score-adj", "500"],
    ["--cpus", "0.5", "--cpu-shares", "512", "--memory", "64m", "--pids-limit", "50", "--init"],
    ["--ipc", "host", "--network", "host", "--uts", "host", "--security-opt", "seccomp=unconfined"],
    ["--cgroupns", "private", "--tmpfs", "/tmp:exec,mode=1777", "--mount", "type=tmpfs,destination=/x,tmpfs-size=1m",
     "--device-cgroup-rule", "c 1:11 rwm", "--cpuset-cpus", "0", "--memory-reservation", "32m"],
    # on a machine without CAP_SYS_RESOURCE in the bounding set both fail, with the same exit status
    ["--privileged"],
]


class CliEngineCases:
    """Tests shared by docker and podman, whose command lines agree. A test module subclasses this as
    `TestDocker`/`TestPodman` beside an `engine` fixture; `names` gives each test its own containers."""

    reports_oom_killed = True  # the engine sets .State.OOMKilled
    update_flags = ["--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5", "--pids-limit", "20"]

    def run(self, engine: Engine, *args: object, timeout: float = 120, input: str | None = None):
        """`<engine> run --runtime pyrunc ARGS...`"""
        return engine("run", *engine.runtime, *args, timeout=timeout, input=input)

    def start_detached(self, engine: Engine, name: str, *args: object, ready: str | None = None) -> int:
        """Start a detached container; wait for `ready` in its logs; return its init's host pid."""
        out = self.run(engine, "-d", "--name", name, *args)
        assert out.returncode == 0, out.stderr + engine.daemon_log()
        if ready:
            wait_until(lambda: ready in engine("logs", name).stdout, f"{ready!r} in the logs of {name}")
        return int(engine("inspect", "--format", "{{.State.Pid}}", name).stdout)

    def inspect(self, engine: Engine, name: str, field: str) -> str:
        out = engine("inspect", "--format", "{{" + field + "}}", name)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    # --------------------------------------------------------------------------------- one-shot runs

    def test_run_output_and_exit_code(self, engine):
        out = self.run(engine, "--rm", engine.image, "sh", "-c", "echo out; echo err >&2; exit 3")
        assert out.returncode == 3, out.stderr
        assert out.stdout == "out\n"
        assert "err\n" in out.stderr

    def test_stdin_reaches_the_container(self, engine):
        out = self.run(engine, "--rm", "-i", engine.image, "sh", "-c", "read line; echo got $line",
                       input="hello\n")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "got hello\n"

    def test_terminal(self, engine):
        out = self.run(engine, "--rm", "-t", engine.image, "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "/dev/pts/0\r\nstdin-is-tty\r\n"

    def test_interactive_terminal(self, engine):
        session = PtySession([*engine.cli, "run", *engine.runtime, "--rm", "-it", engine.image, "sh"], engine.env)
        session.expect("# ")
        session.send("echo $((6 * 7)); stty size; exit 3\r")
        done = session.finish()
        assert done.returncode == 3, done.output
        assert "42\r\n40 100\r\n" in done.output

    def test_large_output(self, engine):
        out = self.run(engine, "--rm", engine.image, "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; exit 4")
        assert out.returncode == 4, out.stderr
        assert out.stdout == "x" * 3000000

    def test_signal_dispositions_are_defaults(self, engine, names):
        # nothing ignored or blocked leaks from the runtime: `yes | head` must end by SIGPIPE
        clean = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
        probe = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
        out = self.run(engine, "--rm", engine.image, *probe)
        assert out.stdout == clean, out.stderr
        name = names()
        self.start_detached(engine, name, engine.image, "sleep", "1000")
        out = engine("exec", name, *probe)
        assert out.stdout == clean, out.stderr

    def test_environment_workdir_hostname_user(self, engine):
        out = self.run(engine, "--rm", "-e", "FOO=bar baz", "-w", "/tmp", "--hostname", "h1", "--user", "1000:1000",
                       engine.image, "sh", "-c", 'echo "$FOO"; pwd; hostname; id -u; id -g; touch /tmp/mine')
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n") == ["bar baz", "/tmp", "h1", "1000", "1000", ""]

    def test_user_by_name_gets_its_groups(self, engine):
        # runc's rule: a user named without a group gets its primary group and its supplementary groups
        out = self.run(engine, "--rm", "--user", "user", engine.image, "id")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "uid=1000(user) gid=1000(user) groups=10(wheel),1000(user)"

    def test_read_only_root(self, engine):
        out = self.run(engine, "--rm", "--read-only", engine.image, "touch", "/etc/x")
        assert out.returncode == 1
        assert "Read-only file system" in out.stderr

    def test_bind_mounts(self, engine, tmp_path):
        (tmp_path / "rw").mkdir()
        (tmp_path / "ro").mkdir()
        (tmp_path / "rw" / "in").write_text("from the host\n")
        out = self.run(engine, "--rm", "-v", f"{tmp_path / 'rw'}:/data", "-v", f"{tmp_path / 'ro'}:/ro:ro",
                       engine.image, "sh", "-c", "cat /data/in; echo back > /data/out; touch /ro/x")
        assert out.returncode == 1
        assert out.stdout == "from the host\n"
        assert "Read-only file system" in out.stderr
        assert (tmp_path / "rw" / "out").read_text() == "back\n"
        assert not (tmp_path / "ro" / "x").exists()

    def test_missing_executable_is_127(self, engine):
        out = self.run(engine, "--rm", engine.image, "no-such-command")
        assert out.returncode == 127, out.stderr
        assert 'exec: "no-such-command": executable file not found in $PATH' in out.stderr

    def test_non_executable_is_126(self, engine):
        out = self.run(engine, "--rm", engine.image, "/etc/passwd")
        assert out.returncode == 126, out.stderr
        assert "permission denied" in out.stderr

    @pytest.mark.parametrize("flags", SAME_AS_RUNC_FLAGS, ids=lambda flags: " ".join(flags) or "defaults")
    def test_same_container_as_runc(self, engine, flags):
        seen = []
        for runtime in (engine.runc, engine.runtime):
            out = engine("run", "--rm", *runtime, *flags, engine.image, "sh", "-c", PROBE)
            seen.append((out.returncode, out.stdout.splitlines()))
        assert seen[1] == seen[0]

    def test_joins_another_containers_namespaces(self, engine, names):
        peer = names()
        self.start_detached(engine, peer, "--ipc", "shareable", engine.image, "sleep", "1000")
        join = [f"--{ns}=container:{peer}" for ns in ("pid", "ipc", "network")]
        seen = []
        for runtime in (engine.runc, engine.runtime):
            out = engine("run", "--rm", *runtime, *join, engine.image, "sh", "-c", PROBE)
            seen.append((out.returncode, out.stdout.splitlines()))
        assert seen[0][0] == 0, "runc could not join the namespaces either"
        assert seen[1] == seen[0]
        # the peer's sleep is visible in the shared pid namespace
        assert "sleep" in seen[1][1]

    # ------------------------------------------------------------------------------------ limits

    def test_memory_limit_kills_on_oom(self, engine, names):
        name = names()
        # containerd's shim watches for OOM only once `start` has returned, under runc too (2 kills in 40 go
        # unreported when the process allocates at once): give it a moment before allocating
        out = self.run(engine, "--name", name, "--memory", "32m", "--memory-swap", "32m", engine.image,
                       "sh", "-c", "sleep 1; exec dd if=/dev/zero of=/dev/null bs=100M count=1")
        assert out.returncode == 137, out.stderr
        if self.reports_oom_killed:
            assert self.inspect(engine, name, ".State.OOMKilled") == "true"

    def test_pids_limit_holds_a_fork_bomb(self, engine, names):
        name = names()
        # pid 1 keeps one sleep; a child shell forks sleeps until fork fails, and dies of it
        bomb = 'trap "exit 0" TERM; sleep 1000 & sh -c "while :; do sleep 1000 & done"; echo held; wait'
        pid = self.start_detached(engine, name, "--pids-limit", "10", engine.image, "sh", "-c", bomb, ready="held")
        pids = cgroup_dir(pid, "pids")
        assert (pids / "pids.max").read_text().strip() == "10"
        assert int((pids / "pids.current").read_text()) <= 10
        assert "can't fork" in engine("logs", name).stderr
        out = engine("stop", "--time", "30", name)
        assert out.returncode == 0, out.stderr
        assert self.inspect(engine, name, ".State.Status") == "exited"
        assert not Path(f"/proc/{pid}").exists()

    # ------------------------------------------------------------------------- detached containers

    def test_detached_stop_delivers_sigterm(self, engine, names):
        name = names()
        script = 'trap "echo got TERM; exit 7" TERM; echo ready; sleep 1000 & wait'
        pid = self.start_detached(engine, name, engine.image, "sh", "-c", script, ready="ready")
        assert self.inspect(engine, name, ".State.Status") == "running"
        out = engine("stop", "--time", "60", name)
        assert out.returncode == 0, out.stderr
        assert self.inspect(engine, name, ".State.ExitCode") == "7"
        assert engine("logs", name).stdout == "ready\ngot TERM\n"
        assert not Path(f"/proc/{pid}").exists()
        assert engine("rm", name).returncode == 0
        assert engine("inspect", name).returncode != 0

    def test_stop_escalates_to_sigkill(self, engine, names):
        # pid 1 without a handler ignores SIGTERM: stop ends with SIGKILL after the timeout
        name = names()
        pid = self.start_detached(engine, name, engine.image, "sleep", "1000")
        out = engine("stop", "--time", "1", name)
        assert out.returncode == 0, out.stderr
        assert self.inspect(engine, name, ".State.ExitCode") == "137"
        assert not Path(f"/proc/{pid}").exists()

    def test_kill_with_a_signal(self, engine, names):
        name = names()
        script = 'trap "echo got USR1; exit 9" USR1; echo ready; sleep 1000 & wait'
        self.start_detached(engine, name, engine.image, "sh", "-c", script, ready="ready")
        out = engine("kill", "--signal", "USR1", name)
        assert out.returncode == 0, out.stderr
        wait_until(lambda: self.inspect(engine, name, ".State.Status") == "exited", "the container to exit")
        assert self.inspect(engine, name, ".State.ExitCode") == "9"
        # killing a stopped container is refused by the engine
        assert engine("kill", name).returncode != 0

    def test_restart_recreates_the_same_id(self, engine, names):
        name = names()
        self.start_detached(engine, name, engine.image, "sh", "-c", "echo ready; sleep 1000", ready="ready")
        out = engine("restart", "--time", "0", name)
        assert out.returncode == 0, out.stderr
        wait_until(lambda: engine("logs", name).stdout.count("ready") == 2, "the second start's output")
        assert self.inspect(engine, name, ".State.Status") == "running"

    def test_exec(self, engine, names):
        name = names()
        self.start_detached(engine, name, engine.image, "sleep", "1000")
        out = engine("exec", name, "sh", "-c", "echo execd; echo to-stderr >&2; exit 5")
        assert out.returncode == 5, out.stderr
        assert out.stdout == "execd\n" and "to-stderr" in out.stderr
        out = engine("exec", "--user", "1000", "--env", "X=1", "--workdir", "/tmp", name,
                     "sh", "-c", "id -u; echo $X; pwd")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "1000\n1\n/tmp\n"
        out = engine("exec", "-i", name, "cat", input="piped\n")
        assert out.stdout == "piped\n", out.stderr

    def test_exec_terminal(self, engine, names):
        name = names()
        self.start_detached(engine, name, engine.image, "sleep", "1000")
        out = engine("exec", "-t", name, "sh", "-c", "tty")
        assert out.returncode == 0, out.stderr
        assert re.fullmatch(r"/dev/pts/\d+\r\n", out.stdout), out.stdout

    @pytest.mark.parametrize("flags, command, phrase", [
        ([], ["no-such-command"], 'exec: "no-such-command": executable file not found in $PATH'),
        ([], ["/etc/passwd"], 'exec: "/etc/passwd": permission denied'),
        (["--workdir", "/nonexistent"], ["pwd"], 'chdir to cwd ("/nonexistent") set in config.json failed'),
    ], ids=["missing", "not-executable", "bad-workdir"])
    def test_exec_failures_like_runc(self, engine, names, flags, command, phrase):
        # the engine shows our message, and its exit status (from matching the text) is runc's
        codes = []
        for runtime in (engine.runc, engine.runtime):
            name = names()
            started = engine("run", "--detach", "--name", name, *runtime, engine.image, "sleep", "1000")
            assert started.returncode == 0, started.stderr
            out = engine("exec", *flags, name, *command)
            assert phrase in out.stdout + out.stderr
            codes.append(out.returncode)
        assert codes[1] == codes[0] != 0

    def test_pause_and_unpause(self, engine, names):
        name = names()
        pid = self.start_detached(engine, name, engine.image, "sleep", "1000")
        freezer = cgroup_dir(pid, "freezer") / "freezer.state"
        assert engine("pause", name).returncode == 0
        assert self.inspect(engine, name, ".State.Status") == "paused"
        assert freezer.read_text().strip() == "FROZEN"
        assert engine("unpause", name).returncode == 0
        assert self.inspect(engine, name, ".State.Status") == "running"
        assert freezer.read_text().strip() == "THAWED"
        # a resumed container still runs commands
        assert engine("exec", name, "true").returncode == 0

    def test_top(self, engine, names):
        name = names()
        self.start_detached(engine, name, engine.image, "sh", "-c", "echo ready; sleep 1000", ready="ready")
        out = engine("top", name)
        assert out.returncode == 0, out.stderr
        assert "sleep 1000" in out.stdout

    def test_stats(self, engine, names):
        name = names()
        self.start_detached(engine, name, "--memory", "64m", engine.image, "sleep", "1000")
        out = engine("stats", "--no-stream", "--format", "{{.PIDs}} {{.MemUsage}}", name)
        assert out.returncode == 0, out.stderr
        pids, usage = out.stdout.split(" ", 1)
        assert pids == "1"
        assert re.search(r"/ 64MiB|/ 67.11MB", usage), usage

    def test_update_memory_cpu_pids(self, engine, names):
        name = names()
        pid = self.start_detached(engine, name, engine.image, "sleep", "1000")
        out = engine("update", *self.update_flags, name)
        assert out.returncode == 0, out.stderr
        assert (cgroup_dir(pid, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cgroup_dir(pid, "cpu") / "cpu.cfs_period_us").read_text().strip() == "100000"
        if "--pids-limit" in self.update_flags:
            assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "20"
        memory = cgroup_dir(pid, "memory")
        assert int((memory / "memory.limit_in_bytes").read_text()) == 64 << 20
        if (memory / "memory.memsw.limit_in_bytes").exists():
            assert int((memory / "memory.memsw.limit_in_bytes").read_text()) == 128 << 20
        # the new limit holds: allocating past it gets the allocating process killed
        out = engine("exec", name, "sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=200M count=1")
        assert out.returncode == 137, out.stderr
