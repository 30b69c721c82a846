"""pyrunc under containerd 1.6 (ctr run --runc-binary <path to pyrunc>, through containerd-shim-runc-v2).

ctr 1.6 has no --user, --hostname or --pids-limit flags: those are covered through docker and podman."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engines_fixtures import PROBE, PtySession, cgroup_dir, engine_fixture, names, wait_until  # noqa: F401

pytestmark = pytest.mark.engines

engine = engine_fixture("containerd")


def run(engine, name, *args, flags=(), timeout=120, input=None):
    """`ctr run --rm --runc-binary pyrunc [flags] IMAGE NAME ARGS...` in the foreground."""
    return engine("run", "--rm", *engine.runtime, *flags, engine.image, name, *args, timeout=timeout, input=input)


def start_detached(engine, name, *args, flags=(), log: Path | None = None, ready: str | None = None) -> int:
    """A detached task (output to `log`, or nowhere); waits for `ready` in the log; returns its host pid."""
    io = ["--log-uri", f"file://{log}"] if log else ["--null-io"]
    out = engine("run", "--detach", *io, *engine.runtime, *flags, engine.image, name, *args)
    assert out.returncode == 0, out.stderr + engine.daemon_log()
    if ready:
        wait_until(lambda: log.exists() and ready in log.read_text(), f"{ready!r} in {log}")
    return task(engine, name)["pid"]


def task(engine, name) -> dict:
    """The task's row of `ctr task ls`: {"pid": int, "status": str}."""
    out = engine("tasks", "list")
    for line in out.stdout.splitlines()[1:]:
        fields = line.split()
        if fields[0] == name:
            return {"pid": int(fields[1]), "status": fields[2]}
    raise AssertionError(f"no task {name} in {out.stdout!r}")


def test_run_output_and_exit_code(engine, names):
    out = run(engine, names(), "sh", "-c", "echo out; echo err >&2; exit 3")
    assert out.returncode == 3, out.stderr
    assert out.stdout == "out\n"
    assert "err\n" in out.stderr


def test_stdin_reaches_the_container(engine, names):
    out = run(engine, names(), "sh", "-c", "read line; echo got $line", input="hello\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "got hello\n"


def test_interactive_terminal(engine, names):
    session = PtySession([*engine.cli, "run", "--rm", "-t", *engine.runtime, engine.image, names(), "sh"],
                         engine.env)
    session.expect("# ")
    session.send("tty; echo $((6 * 7)); stty size; exit 3\r")
    done = session.finish()
    assert done.returncode == 3, done.output
    # ctr leaves the outer terminal cooked, so lines end in \r\r\n (the same under runc)
    assert re.search(r"/dev/pts/0\r+\n42\r+\n40 100\r+\n", done.output), done.output


def test_environment_and_workdir(engine, names):
    out = run(engine, names(), "sh", "-c", 'echo "$FOO"; pwd', flags=["--env", "FOO=bar baz", "--cwd", "/tmp"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == "bar baz\n/tmp\n"


def test_read_only_root(engine, names):
    out = run(engine, names(), "touch", "/etc/x", flags=["--read-only"])
    assert out.returncode == 1
    assert "Read-only file system" in out.stderr


def test_bind_mounts(engine, names, tmp_path):
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "rw" / "in").write_text("from the host\n")
    flags = ["--mount", f"type=bind,src={tmp_path / 'rw'},dst=/data,options=rbind:rw",
             "--mount", f"type=bind,src={tmp_path / 'ro'},dst=/ro,options=rbind:ro"]
    out = run(engine, names(), "sh", "-c", "cat /data/in; echo back > /data/out; touch /ro/x", flags=flags)
    assert out.returncode == 1
    assert out.stdout == "from the host\n"
    assert "Read-only file system" in out.stderr
    assert (tmp_path / "rw" / "out").read_text() == "back\n"


def test_missing_executable(engine, names):
    out = run(engine, names(), "no-such-command")
    assert out.returncode == 1
    assert 'OCI runtime create failed: exec: "no-such-command": executable file not found in $PATH' in out.stderr


def test_memory_limit_kills_on_oom(engine, names):
    out = run(engine, names(), "sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=100M count=1",
              flags=["--memory-limit", str(32 << 20)])
    assert out.returncode == 137, out.stderr


def test_default_seccomp_profile(engine, names):
    script = "grep '^Seccomp:' /proc/self/status; unshare -U true || echo refused"
    out = run(engine, names(), "sh", "-c", script, flags=["--seccomp"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Seccomp:\t2\nrefused\n"


@pytest.mark.parametrize("flags", [
    [],
    ["--read-only", "--seccomp", "--cap-add", "CAP_SYS_ADMIN", "--allow-new-privs"],
    ["--memory-limit", str(64 << 20), "--cpus", "0.5", "--cpu-shares", "512"],
    ["--net-host", "--privileged"],
], ids=lambda flags: " ".join(flags) or "defaults")
def test_same_container_as_runc(engine, names, flags):
    seen = []
    for runtime in (engine.runc, engine.runtime):
        out = engine("run", "--rm", *runtime, *flags, engine.image, names(), "sh", "-c", PROBE)
        seen.append((out.returncode, out.stdout.splitlines()))
    assert seen[1] == seen[0]


def test_sigterm_exec_and_exit_status(engine, names, tmp_path):
    name = names()
    log = tmp_path / "out"
    script = 'trap "echo got TERM; exit 7" TERM; echo ready; sleep 1000 & wait'
    with open(log, "wb") as out_file:
        fg = engine.popen("run", *engine.runtime, engine.image, name, "sh", "-c", script, stdout=out_file)
        try:
            wait_until(lambda: "ready" in log.read_text(), "the container to start")
            out = engine("tasks", "exec", "--exec-id", "e1", name, "sh", "-c", "echo execd; exit 5")
            assert out.returncode == 5, out.stderr
            assert out.stdout == "execd\n"
            assert engine("tasks", "kill", "--signal", "SIGTERM", name).returncode == 0
            assert fg.wait(timeout=60) == 7
        finally:
            if fg.poll() is None:
                fg.kill()
                fg.wait()
    assert log.read_text() == "ready\ngot TERM\n"
    # ctr run deletes the task when it ends (pyrunc delete), leaving the container record
    assert name not in engine("tasks", "list").stdout
    assert engine("containers", "delete", name).returncode == 0


def test_exec_terminal(engine, names):
    name = names()
    start_detached(engine, name, "sleep", "1000")
    session = PtySession([*engine.cli, "tasks", "exec", "-t", "--exec-id", "t1", name, "sh"], engine.env)
    session.expect("# ")
    session.send("tty; exit 4\r")
    done = session.finish()
    assert done.returncode == 4, done.output
    assert re.search(r"/dev/pts/\d+\r", done.output), done.output


def test_pause_resume_ps_metrics(engine, names):
    name = names()
    pid = start_detached(engine, name, "sh", "-c", "sleep 1000 & wait", flags=["--memory-limit", str(64 << 20)])
    freezer = cgroup_dir(pid, "freezer") / "freezer.state"
    assert engine("tasks", "pause", name).returncode == 0
    assert task(engine, name)["status"] == "PAUSED"
    assert freezer.read_text().strip() == "FROZEN"
    assert engine("tasks", "resume", name).returncode == 0
    assert task(engine, name)["status"] == "RUNNING"
    assert freezer.read_text().strip() == "THAWED"

    # `ctr task ps` is `pyrunc ps --format json`: every process of the container, by host pid
    procs = cgroup_dir(pid, "pids") / "cgroup.procs"
    wait_until(lambda: len(procs.read_text().split()) == 2, "the sleep to start")
    out = engine("tasks", "ps", name)
    assert out.returncode == 0, out.stderr
    listed = sorted(int(line.split()[0]) for line in out.stdout.splitlines()[1:])
    assert listed == sorted(map(int, procs.read_text().split()))

    out = engine("tasks", "metrics", "--format", "json", name)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["pids"]["current"] == 2
    assert metrics["memory"]["usage"]["limit"] == 64 << 20


def test_kill_all_and_force_delete(engine, names):
    name = names()
    pid = start_detached(engine, name, "sh", "-c", "sleep 1000 & sleep 1000 & wait")
    procs = cgroup_dir(pid, "pids") / "cgroup.procs"
    wait_until(lambda: len(procs.read_text().split()) == 3, "the sleeps to start")
    children = [int(p) for p in procs.read_text().split() if int(p) != pid]
    assert engine("tasks", "kill", "--all", "--signal", "SIGKILL", name).returncode == 0
    wait_until(lambda: task(engine, name)["status"] == "STOPPED", "the task to stop")
    assert not any(Path(f"/proc/{p}").exists() for p in [pid, *children])
    assert engine("tasks", "delete", name).returncode == 0

    # delete --force of a running task: kill --all 9, then delete
    other = names()
    pid = start_detached(engine, other, "sleep", "1000")
    out = engine("tasks", "delete", "--force", other)
    assert out.returncode == 0, out.stderr
    assert not Path(f"/proc/{pid}").exists()


def test_signal_dispositions_are_defaults(engine, names):
    clean = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    probe = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
    out = run(engine, names(), *probe)
    assert out.stdout == clean, out.stderr
    name = names()
    start_detached(engine, name, "sleep", "1000")
    out = engine("tasks", "exec", "--exec-id", "sig", name, *probe)
    assert out.stdout == clean, out.stderr
