"""pydock's container verbs against real containers: run, ps, logs, exec, stop/start/restart, rm,
inspect, export, the monitor's kill-safety and -t over a real pty. One image store per module."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from builder_support import Pydock
from support import PYDOCK, wait_for

pytestmark = pytest.mark.root


def record(dock: Pydock, ref: str) -> dict:
    cid = json.loads(dock("inspect", ref, check=True).stdout)[0]["Id"]
    return json.loads((dock.root / "containers" / cid / "config.json").read_text())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(os.fspath(path))]


def test_run_foreground_streams_output_and_exits_with_the_status(dock):
    proc = dock("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert dock("ps", "-aq").stdout == ""  # --rm


def test_run_options_reach_the_container(dock, tmp_path):
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol").chmod(0o777)  # the container writes as uid 65534
    (tmp_path / "vol" / "in").write_text("from host\n")
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\n")
    script = ("echo $FOO $FROM_FILE; pwd; id -u; hostname; cat /data/in; echo x > /data/out; "
              "touch /rofile 2>/dev/null || echo read-only; ls /sys/class/net | tr '\\n' ' '")
    proc = dock("run", "--rm", "--network", "none", "-e", "FOO=bar", "--env-file", env_file, "-w", "/tmp", "-u", "65534",
                "--hostname", "box", "-v", f"{tmp_path}/vol:/data", "--read-only", "--entrypoint", "sh",
                "busybox", "-c", script, check=True)
    assert proc.stdout.splitlines()[:6] == ["bar 1", "/tmp", "65534", "box", "from host", "read-only"]
    assert proc.stdout.splitlines()[6].split() == ["lo"]  # --network none: an empty netns
    assert (tmp_path / "vol" / "out").read_text() == "x\n"
    host = dock("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net", check=True).stdout.split()
    assert sorted(host) == sorted(name for _, name in socket.if_nameindex())  # the netns we run in


def test_stdin_is_forwarded_with_dash_i(dock):
    proc = dock("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert (proc.returncode, proc.stdout) == (0, "HELLO\n")


@pytest.mark.parametrize("args, message", [
    (["run", "--pull", "never", "nosuchimage"], "image not found"),
    (["run", "-v", "/tmp:relative", "busybox", "true"], "must be absolute"),
    (["run", "--env-file", "/nonexistent/env", "busybox", "true"], "/nonexistent/env"),
    (["run", "--network", "bridge0", "busybox", "true"], "network"),
    (["start", "nosuchcontainer"], "No such container"),
    (["run", "-u", "nosuchuser", "busybox", "true"], "nosuchuser"),  # found out by the monitor
    (["run", "-w", "relative", "busybox", "true"], "absolute"),
])
def test_bad_input_is_one_line_exit_125_and_leaves_nothing(dock, args, message):
    before = dock("ps", "-aq").stdout
    proc = dock(*args)
    assert proc.returncode == 125
    assert proc.stderr.startswith("pydock: error: ") and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert dock("ps", "-aq").stdout == before
    assert not [p for p in os.listdir(dock.root / "containers") if p.startswith(".")]
    runtime_state = dock.root / "runtime"
    assert mounts_under(dock.root) == [] and (not runtime_state.exists() or not os.listdir(runtime_state))


def test_a_command_that_cannot_run_exits_126_or_127(dock):
    assert dock("run", "--rm", "busybox", "nosuchcommand").returncode == 127
    assert dock("run", "--rm", "busybox", "/etc").returncode == 126


def test_detached_container_walkthrough(dock):
    cid = dock("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
               "echo started; while true; do echo tick; sleep 0.2; done", check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert wait_for(lambda: "tick" in dock("logs", "ticker").stdout)

    name_taken = dock("run", "-d", "--name", "ticker", "busybox", "true")
    assert name_taken.returncode == 125 and "already in use" in name_taken.stderr
    assert dock("start", "ticker").returncode == 125  # already running
    rm = dock("rm", "ticker")
    assert rm.returncode == 125 and "running" in rm.stderr

    lines = dock("ps").stdout.splitlines()
    assert re.split(r"\s{3,}", lines[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                                             "NAMES"]
    row = next(line for line in lines if line.endswith("ticker"))
    assert row.startswith(cid[:12] + " ") and "busybox" in row and re.search(r"Up (\d+ seconds?|Less than)", row)
    assert dock("ps", "-q").stdout.split() == [cid[:12]]
    assert cid[:6] in dock("ps", "--no-trunc").stdout.replace(cid, cid[:6])

    log = [json.loads(line) for line in (dock.root / "containers" / cid / f"{cid}-json.log").read_text().splitlines()]
    assert log[0]["log"] == "started\n" and log[0]["stream"] == "stdout"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", log[0]["time"])
    assert dock("logs", "--tail", "1", cid[:8]).stdout == "tick\n"
    assert dock("logs", "-t", "ticker").stdout.splitlines()[0].endswith("Z started")

    ex = dock("exec", "-e", "V=1", "-w", "/etc", "ticker", "sh", "-c", "echo $V $(pwd); exit 4")
    assert (ex.returncode, ex.stdout) == (4, "1 /etc\n")
    assert dock("exec", "ticker", "nosuchcommand").returncode == 127

    info = json.loads(dock("inspect", "ticker", check=True).stdout)[0]
    assert info["Id"] == cid and info["Name"] == "/ticker"
    state = info["State"]
    assert state["Status"] == "running" and state["Running"] and alive(state["Pid"]) and state["ExitCode"] == 0
    assert state["StartedAt"].endswith("Z") and info["Config"]["Image"] == "busybox"
    assert info["Config"]["Cmd"][0] == "sh" and any(e.startswith("PATH=") for e in info["Config"]["Env"])
    assert info["Mounts"] == []

    (dock.root / "marker").write_text("")
    assert dock("exec", "ticker", "touch", "/kept").returncode == 0
    started = time.monotonic()
    assert dock("stop", "-t", "1", "ticker", check=True).stdout == "ticker\n"
    assert time.monotonic() - started < 20  # 1 s, then SIGKILL (slack for a loaded machine)
    assert not alive(state["Pid"])
    assert re.search(r"Exited \(137\) .*ago", dock("ps", "-a").stdout)
    assert mounts_under(dock.root / "containers" / cid) == []  # unmounted at stop
    assert json.loads(dock("inspect", cid).stdout)[0]["State"]["FinishedAt"].endswith("Z")

    assert dock("start", "ticker", check=True).stdout == "ticker\n"
    assert dock("exec", "ticker", "ls", "/kept").returncode == 0  # the upper dir survived the stop
    old_pid = json.loads(dock("inspect", "ticker").stdout)[0]["State"]["Pid"]
    dock("restart", "-t", "0", "ticker", check=True)
    new_pid = json.loads(dock("inspect", "ticker").stdout)[0]["State"]["Pid"]
    assert new_pid != old_pid and alive(new_pid) and not alive(old_pid)

    assert dock("kill", "-s", "SIGKILL", "ticker", check=True).stdout == "ticker\n"
    assert dock("wait", "ticker", check=True, timeout=20).stdout == "137\n"
    assert dock("kill", "ticker").returncode == 125  # not running
    assert dock("rm", "-f", "ticker", check=True).stdout == "ticker\n"
    assert dock("inspect", "ticker").returncode != 0
    assert not (dock.root / "containers" / cid).exists()


def test_start_right_after_stop_keeps_running(dock):
    dock("run", "-d", "--name", "again", "busybox", "sleep", "60", check=True)
    for _ in range(3):
        dock("stop", "-t", "0", "again", check=True)
        dock("start", "again", check=True)
        time.sleep(0.5)  # the old monitor's guard wakes up meanwhile: it must leave the new container alone
        assert json.loads(dock("inspect", "again").stdout)[0]["State"]["Status"] == "running"
    dock("rm", "-f", "again", check=True)


def test_logs_follow_until_the_container_exits(dock):
    dock("run", "-d", "--name", "follow", "busybox", "sh", "-c", "echo one; sleep 1; echo two >&2", check=True)
    proc = dock("logs", "-f", "follow", timeout=15)
    assert (proc.stdout, proc.stderr) == ("one\n", "two\n")
    dock("rm", "follow", check=True)


def test_export_then_import(dock, tmp_path):
    dock("run", "--name", "exp", "busybox", "sh", "-c", "echo data > /made-here; rm /bin/true", check=True)
    out = tmp_path / "exp.tar"
    dock("export", "-o", out, "exp", check=True)
    dock("import", out, "exported:latest", check=True)
    proc = dock("run", "--rm", "exported", "sh", "-c", "cat /made-here; [ -e /bin/true ] || echo gone")
    assert proc.stdout == "data\ngone\n"
    dock("rm", "exp", check=True)
    dock("rmi", "exported", check=True)


def test_killing_the_cli_leaves_the_container_running(dock):
    cli = subprocess.Popen([*PYDOCK, "--root", dock.root, "run", "--name", "orphan", "busybox", "sleep", "60"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: "orphan" in dock("ps").stdout)
    cli.kill()
    cli.wait()
    detached = subprocess.Popen([*PYDOCK, "--root", dock.root, "run", "-d", "--name", "orphan2", "busybox", "sleep",
                                 "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    detached.kill()
    detached.wait()
    # the monitor goes on without the CLI: the container comes up (under load it may still be starting)
    assert wait_for(lambda: json.loads(dock("inspect", "orphan").stdout)[0]["State"]["Status"] == "running")
    pid = json.loads(dock("inspect", "orphan").stdout)[0]["State"]["Pid"]
    assert alive(pid) and "Up " in dock("ps").stdout
    if dock("inspect", "orphan2").returncode == 0:  # the record was made before the kill
        assert wait_for(lambda: json.loads(dock("inspect", "orphan2").stdout)[0]["State"]["Status"]
                        in ("running", "exited"))
    dock("rm", "-f", "orphan", "orphan2")


def test_killing_the_monitor_kills_the_container(dock):
    dock("run", "-d", "--name", "guarded", "busybox", "sleep", "60", check=True)
    rec = record(dock, "guarded")
    pid = rec["State"]["Pid"]
    assert alive(pid)
    os.kill(rec["Monitor"]["Pid"], signal.SIGKILL)
    assert wait_for(lambda: not alive(pid))
    assert wait_for(lambda: "Exited (137)" in dock("ps", "-a").stdout)
    assert rec["Id"][:12] not in dock("ps", "-q").stdout
    assert mounts_under(dock.root / "containers" / rec["Id"]) == []
    dock("rm", "guarded", check=True)


def test_a_record_without_its_monitor_reads_as_exited(dock):
    dock("create", "--name", "stale", "busybox", "true", check=True)
    path = dock.root / "containers" / record(dock, "stale")["Id"] / "config.json"
    doc = json.loads(path.read_text())
    doc["State"].update(Status="running", Running=True, Pid=999999)
    doc["Monitor"] = {"Pid": 999999, "StartTime": 1}  # as after a reboot
    path.write_text(json.dumps(doc))
    assert json.loads(dock("inspect", "stale").stdout)[0]["State"]["Status"] == "exited"
    assert "Exited (255)" in dock("ps", "-a").stdout
    dock("rm", "stale", check=True)


def read_until(fd: int, needle: bytes, timeout: float = 10.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_tty_over_a_real_pty(dock):
    master, slave = pty.openpty()
    cli = subprocess.Popen([*PYDOCK, "--root", dock.root, "run", "--rm", "-it", "busybox", "sh"],
                           stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        assert b"# " in read_until(master, b"# ")  # the shell's prompt
        os.write(master, b"tty; echo $((6*7))\n")
        out = read_until(master, b"42\r\n")
        assert b"/dev/pts/" in out and b"42\r\n" in out
        os.write(master, b"exit 5\n")
        assert cli.wait(timeout=15) == 5
    finally:
        if cli.poll() is None:
            cli.kill()
        os.close(master)


def test_signals_to_a_foreground_run_reach_the_container(dock):
    cli = subprocess.Popen([*PYDOCK, "--root", dock.root, "run", "--rm", "--name", "proxied", "busybox", "sh", "-c",
                            "trap 'echo got INT; exit 7' INT; echo ready; while true; do sleep 0.1; done"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert cli.stdout.readline() == "ready\n"
    cli.send_signal(signal.SIGINT)
    out, _ = cli.communicate(timeout=15)
    assert (cli.returncode, out) == (7, "got INT\n")


def test_create_then_start_attached(dock):
    cid = dock("create", "--name", "later", "busybox", "sh", "-c", "echo $0 attached; exit 2", check=True).stdout
    assert dock("ps", "-a").stdout.count("Created") == 1
    proc = dock("start", "-a", "later")
    assert (proc.returncode, proc.stdout) == (2, "sh attached\n")
    assert json.loads(dock("inspect", cid.strip()).stdout)[0]["State"]["ExitCode"] == 2
    dock("rm", "later", check=True)


def test_exec_with_a_tty(dock):
    dock("run", "-d", "--name", "host-of-exec", "busybox", "sleep", "60", check=True)
    master, slave = pty.openpty()
    cli = subprocess.Popen([*PYDOCK, "--root", dock.root, "exec", "-it", "host-of-exec", "sh", "-c",
                            "tty; read line; echo got:$line; exit 3"],
                           stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        assert b"/dev/pts/" in read_until(master, b"/dev/pts/")
        os.write(master, b"typed\n")
        assert b"got:typed" in read_until(master, b"got:typed")
        assert cli.wait(timeout=15) == 3
    finally:
        if cli.poll() is None:
            cli.kill()
        os.close(master)
    dock("rm", "-f", "host-of-exec", check=True)


def test_start_a_without_i_does_not_send_our_input(dock):
    dock("create", "-i", "--name", "reads-input", "busybox", "sh", "-c",
         "if read -t 2 line; then echo got:$line; else echo nothing; fi", check=True)
    proc = dock("start", "-a", "reads-input", input="typed\n")
    assert (proc.returncode, proc.stdout) == (0, "nothing\n"), proc.stderr
    proc = dock("start", "-ai", "reads-input", input="typed\n")
    assert (proc.returncode, proc.stdout) == (0, "got:typed\n"), proc.stderr
    dock("rm", "reads-input", check=True)
