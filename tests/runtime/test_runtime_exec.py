"""pyrunc exec: a process joining a running container, as docker/podman/containerd call it."""

from __future__ import annotations

import json
import os
import time

import pytest

from support import userns_edit
from test_runtime_process import ConsoleSocket

pytestmark = pytest.mark.root


@pytest.fixture
def running(make_bundle, pyrunc):
    def start(edit=None, args=("sleep", "1000")):
        bundle = make_bundle(list(args), edit=edit)
        out = pyrunc("run", "-d", "--bundle", bundle, "ex")
        assert out.returncode == 0, out.stderr
        return json.loads(pyrunc("state", "ex").stdout)["pid"]

    return start


def ns_of(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_exec_joins_namespaces_and_cgroup(running, pyrunc):
    init = running()
    out = pyrunc("exec", "ex", "sh", "-c", "for n in pid mnt net ipc uts; do readlink /proc/self/ns/$n; done; "
                 "cat /proc/self/cgroup; echo $$; exit 6")
    assert out.returncode == 6, out.stderr
    lines = out.stdout.split()
    assert lines[:5] == [ns_of(init, k) for k in ("pid", "mnt", "net", "ipc", "uts")]
    init_cgroups = set(open(f"/proc/{init}/cgroup").read().split())
    assert set(lines[5:-1]) == init_cgroups
    assert int(lines[-1]) > 1  # a pid inside the container's pid namespace


def test_exec_inherits_container_process_settings(running, pyrunc):
    def settings(spec):
        spec["process"]["env"].append("FROM_CONFIG=yes")
        spec["process"]["cwd"] = "/tmp"
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}

    running(edit=settings)
    out = pyrunc("exec", "ex", "sh", "-c", 'echo "$FROM_CONFIG $(pwd) $(id -u)"')
    assert out.stdout.strip() == "yes /tmp 1000", out.stderr
    out = pyrunc("exec", "-u", "0:0", "--cwd", "/", "-e", "FROM_CONFIG=overridden", "ex",
                 "sh", "-c", 'echo "$FROM_CONFIG $(pwd) $(id -u)"')
    assert out.stdout.strip() == "overridden / 0", out.stderr


def test_exec_process_file_detach_pid_file(running, pyrunc, tmp_path):
    running()
    process = {"args": ["sh", "-c", "echo detached > /tmp/out; sleep 100"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                                            "permitted": ["CAP_KILL"]}}
    pfile = tmp_path / "process.json"
    pfile.write_text(json.dumps(process))
    out = pyrunc("exec", "--process", pfile, "--detach", "--pid-file", tmp_path / "exec.pid", "ex")
    assert out.returncode == 0, out.stderr
    raw = (tmp_path / "exec.pid").read_bytes()
    assert raw.isdigit()
    pid = int(raw)
    for _ in range(100):
        status = open(f"/proc/{pid}/status").read()
        if "sleep" in open(f"/proc/{pid}/cmdline").read():
            break
        time.sleep(0.02)
    assert "CapEff:\t0000000000000020" in status
    assert pyrunc("exec", "ex", "cat", "/tmp/out").stdout == "detached\n"
    assert pid in json.loads(pyrunc("ps", "--format", "json", "ex").stdout)


def test_exec_terminal_via_console_socket(running, pyrunc, tmp_path):
    running()
    console = ConsoleSocket(tmp_path / "c.sock")
    out = pyrunc("exec", "-t", "--console-socket", console.path, "-d", "ex", "sh", "-c", "tty; exit 0")
    assert out.returncode == 0, out.stderr
    console.thread.join(5)
    assert len(console.fds) == 1
    assert "/dev/pts/" in console.read_all().decode()
    os.close(console.master)


def test_exec_missing_binary_and_stopped_container(running, pyrunc):
    running()
    out = pyrunc("exec", "ex", "no-such-program")
    assert out.returncode == 255  # runc's status for an exec that failed
    assert out.stderr == 'exec: "no-such-program": executable file not found in $PATH\n'  # one line, no traceback
    assert pyrunc("kill", "ex", "KILL").returncode == 0
    for _ in range(200):
        if json.loads(pyrunc("state", "ex").stdout)["status"] == "stopped":
            break
        time.sleep(0.02)
    out = pyrunc("exec", "ex", "true")
    assert out.returncode != 0 and "stopped" in out.stderr


def test_exec_user_namespace_container(running, pyrunc, rootfs):
    init = running(edit=userns_edit(rootfs, 200000))
    out = pyrunc("exec", "ex", "sh", "-c", "readlink /proc/self/ns/user; id -u; cat /proc/self/uid_map")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == ns_of(init, "user") and lines[1] == "0"
    assert lines[2].split() == ["0", "200000", "65536"]


def test_exec_runtime_not_reachable_while_joining(running, pyrunc):
    """While the runtime runs inside the container it is non-dumpable: a container process scanning /proc
    can never read its exe link (the door of CVE-2019-5736)."""
    watcher = ("end=$(( $(date +%s) + 20 )); while [ $(date +%s) -lt $end ] && [ ! -e /tmp/stop ]; do "
               "for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null); case $l in *python*) "
               "echo $p $l >> /tmp/seen;; esac; done; done; touch /tmp/done; sleep 1000")
    running(args=("sh", "-c", watcher))
    for _ in range(15):
        assert pyrunc("exec", "ex", "true").returncode == 0
    assert pyrunc("exec", "ex", "touch", "/tmp/stop").returncode == 0
    for _ in range(200):
        if pyrunc("exec", "ex", "test", "-e", "/tmp/done").returncode == 0:
            break
        time.sleep(0.05)
    out = pyrunc("exec", "ex", "sh", "-c", "cat /tmp/seen 2>/dev/null; echo end")
    assert out.stdout == "end\n", out.stdout


def test_exec_no_host_fds_leak(running, pyrunc, tmp_path):
    running()
    leaked = os.open("/sys/fs/cgroup", os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        out = pyrunc("exec", "ex", "ls", "-l", "/proc/self/fd", pass_fds=(leaked,))
    finally:
        os.close(leaked)
    assert out.returncode == 0, out.stderr
    assert "/sys/fs/cgroup" not in out.stdout
    fds = [line.split(" -> ")[0].split()[-1] for line in out.stdout.splitlines() if " -> " in line]
    assert sorted(int(f) for f in fds) in ([0, 1, 2], [0, 1, 2, 3])  # 3 would be ls's own directory


def test_exec_refusals_exit_255_like_runc_and_the_process_status_is_kept(running, pyrunc):
    assert pyrunc("exec", "no-such-container", "true").returncode == 255
    running()
    assert pyrunc("exec", "ex", "sh", "-c", "exit 3").returncode == 3


@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/memory"), reason="a cgroup v1 host")
def test_exec_into_sub_cgroups_of_the_container(running, pyrunc):
    init = running()
    own = {line.split(":")[1]: line.split(":")[2] for line in open(f"/proc/{init}/cgroup").read().splitlines()}
    memory_dir = "/sys/fs/cgroup/memory" + own["memory"]
    os.mkdir(f"{memory_dir}/submem")
    try:
        out = pyrunc("exec", "--cgroup", "memory:submem", "ex", "cat", "/proc/self/cgroup")
        assert out.returncode == 0, out.stderr
        mine = {line.split(":")[1]: line.split(":")[2] for line in out.stdout.splitlines()}
        assert mine["memory"] == own["memory"] + "/submem" and mine["pids"] == own["pids"]
        out = pyrunc("exec", "--cgroup", "/", "ex", "cat", "/proc/self/cgroup")
        assert {line.split(":")[1]: line.split(":")[2] for line in out.stdout.splitlines()} == own
        for value, words in (("..", " .. is not a sub cgroup path"), ("a/../..", "is not a sub cgroup path"),
                             ("nonexistent", " adding pid "),  # the words runc's own tests match
                             ("nonexistent", "/nonexistent/cgroup.procs: no such file"),
                             ("cpu:nonexistent", "/nonexistent/cgroup.procs: no such file"),
                             ("whaaat:/", "unknown controller whaaat")):
            out = pyrunc("exec", "--cgroup", value, "ex", "true")
            assert out.returncode == 255 and words in out.stderr, (value, out.stderr)
    finally:
        os.rmdir(f"{memory_dir}/submem")


def test_exec_reads_a_process_from_a_pipe_and_logs_debug_lines(running, pyrunc):
    running()
    process = json.dumps({"args": ["echo", "from-a-pipe"], "cwd": "/", "user": {"uid": 0, "gid": 0}})
    out = pyrunc("--debug", "exec", "--process", "/dev/stdin", "ex", input=process)
    assert out.returncode == 0 and out.stdout == "from-a-pipe\n", out.stderr
    assert "level=debug" in out.stderr and "the process is pid" in out.stderr


# the stage names runc writes with --debug, which scripts (runc's own test suite) look for
EXEC_STAGES = ("nsexec container setup", "child process in init()", "setns_init: about to exec")


@pytest.mark.parametrize("userns", [False, True], ids=["direct", "stage1"])
def test_exec_debug_names_the_child_stages_in_the_log_only(running, pyrunc, rootfs, tmp_path, userns):
    running(edit=userns_edit(rootfs, 200000) if userns else None)
    log = tmp_path / "exec.log"
    out = pyrunc("--debug", "--log", log, "exec", "ex", "true")
    assert out.returncode == 0 and "level=debug" not in out.stderr, out.stderr
    text = log.read_text()
    assert all(stage in text for stage in EXEC_STAGES), text
    assert all(stage not in pyrunc("exec", "ex", "true").stderr for stage in EXEC_STAGES)


def test_exec_pid_file_that_cannot_be_written_is_255(running, pyrunc, tmp_path):
    running()
    out = pyrunc("exec", "--pid-file", tmp_path / "missing" / "pid", "ex", "true")
    assert out.returncode == 255 and out.stderr.startswith("writing the pid file") and out.stderr.count("\n") == 1
