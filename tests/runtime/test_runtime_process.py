"""The container process: identity, capabilities, limits, environment, terminal, inherited fds."""

from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import threading

import pytest

from support import PYRUNC

pytestmark = pytest.mark.root


def run_script(make_bundle, pyrunc, script, edit=None, cid="proc", **kw):
    bundle = make_bundle(["sh", "-c", script], edit=edit)
    return pyrunc("run", "--bundle", bundle, cid, **kw)


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


def test_user_groups_umask(make_bundle, pyrunc):
    def user(spec):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 5], "umask": 0o077}

    out = run_script(make_bundle, pyrunc, "id; umask; touch /tmp/f; stat -c %a /tmp/f", edit=user)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("uid=1000(user) gid=1000(user) groups=")
    assert "5(tty)" in lines[0] and "10(wheel)" in lines[0]
    assert lines[1] == "0077" and lines[2] == "600"


def test_home_from_passwd_and_env(make_bundle, pyrunc):
    def env(spec):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        spec["process"]["env"].append("GREETING=hello world")
        spec["process"]["cwd"] = "/home/user"

    out = run_script(make_bundle, pyrunc, 'echo "$HOME|$GREETING|$(pwd)"', edit=env)
    assert out.stdout.strip() == "/home/user|hello world|/home/user", out.stderr


def test_capability_sets(make_bundle, pyrunc):
    def caps(spec):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}  # root would get its bounding set back at execve
        spec["process"]["capabilities"] = {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
            "ambient": ["CAP_KILL"],
        }

    out = run_script(make_bundle, pyrunc, "grep Cap /proc/self/status", edit=caps)
    assert out.returncode == 0, out.stderr
    # after execve of a plain binary by a non-root user: permitted = effective = ambient
    assert int(status_field(out.stdout, "CapBnd"), 16) == (1 << 0) | (1 << 5) | (1 << 13) | (1 << 7)
    assert int(status_field(out.stdout, "CapInh"), 16) == (1 << 5) | (1 << 13)
    assert int(status_field(out.stdout, "CapAmb"), 16) == 1 << 5
    assert int(status_field(out.stdout, "CapPrm"), 16) == 1 << 5
    assert int(status_field(out.stdout, "CapEff"), 16) == 1 << 5


def test_root_without_caps_cannot_chown(make_bundle, pyrunc):
    def nocaps(spec):
        spec["process"]["capabilities"] = {k: [] for k in ("bounding", "effective", "permitted", "ambient")}

    out = run_script(make_bundle, pyrunc, "touch /tmp/a; chown 5 /tmp/a && echo chowned || echo denied", edit=nocaps)
    assert out.stdout.strip().endswith("denied"), out.stdout + out.stderr


def test_rlimits_oom_score_and_no_new_privs(make_bundle, pyrunc):
    def limits(spec):
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
                                      {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
        spec["process"]["oomScoreAdj"] = 317
        spec["process"]["noNewPrivileges"] = True

    out = run_script(make_bundle, pyrunc, "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; "
                     "grep NoNewPrivs /proc/self/status", edit=limits)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["512", "768", "317"] and lines[3].split() == ["NoNewPrivs:", "1"]


def test_signal_dispositions_are_clean(make_bundle, pyrunc):
    """Nothing the runtime's interpreter ignores or blocks reaches the container, in init or exec."""
    out = run_script(make_bundle, pyrunc, "grep -E 'Sig(Ign|Blk)' /proc/self/status; yes 0123456789 | head -c 300000 | wc -c")
    assert out.returncode == 0, out.stderr
    # what the caller ignores is inherited (as with runc; e.g. SIGINT in a background job), nothing more:
    # not the SIGPIPE/SIGXFSZ the runtime's interpreter ignores for itself
    ours = int(status_field(open("/proc/self/status").read(), "SigIgn"), 16)
    expected = ours & ~((1 << (13 - 1)) | (1 << (25 - 1)))
    assert int(status_field(out.stdout, "SigIgn"), 16) == expected
    assert status_field(out.stdout, "SigBlk") == "0000000000000000"
    assert out.stdout.split()[-1] == "300000"


def test_no_new_privs_off(make_bundle, pyrunc):
    def off(spec):
        spec["process"]["noNewPrivileges"] = False

    out = run_script(make_bundle, pyrunc, "grep NoNewPrivs /proc/self/status", edit=off)
    assert out.stdout.split() == ["NoNewPrivs:", "0"]


def test_only_stdio_reaches_the_container(make_bundle, pyrunc, tmp_path):
    leaked = os.open(tmp_path, os.O_RDONLY)  # inheritable fd in the caller, like a shim's socket
    os.set_inheritable(leaked, True)
    try:
        out = run_script(make_bundle, pyrunc, "ls /proc/self/fd", pass_fds=(leaked,))
    finally:
        os.close(leaked)
    assert out.returncode == 0, out.stderr
    assert sorted(int(x) for x in out.stdout.split()) == [0, 1, 2, 3]  # 3 is ls's own directory fd


def as_fd3(fd):
    """preexec_fn putting `fd` at 3 in the child (the test process's own fd 3 may be pytest's)."""
    return lambda: os.dup2(fd, 3)


def test_preserve_fds(make_bundle, pyrunc):
    r, w = os.pipe()
    try:
        bundle = make_bundle(["sh", "-c", "echo through-fd3 >&3; ls /proc/self/fd"])
        out = pyrunc("run", "--preserve-fds", "1", "--bundle", bundle, "pfd", pass_fds=(3,), preexec_fn=as_fd3(w))
    finally:
        os.close(w)
    assert out.returncode == 0, out.stderr
    assert os.read(r, 100) == b"through-fd3\n"
    os.close(r)
    assert 3 in [int(x) for x in out.stdout.split()]


def test_listen_fds_passed(make_bundle, pyrunc):
    r, w = os.pipe()
    try:
        bundle = make_bundle(["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; echo activated >&3"])
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
        out = pyrunc("run", "--bundle", bundle, "lfd", pass_fds=(3,), preexec_fn=as_fd3(w), env=env)
    finally:
        os.close(w)
    assert out.stdout.split() == ["1", "1"], out.stderr
    assert os.read(r, 100) == b"activated\n"
    os.close(r)


def test_missing_executable_reported_at_create(make_bundle, pyrunc, state_root):
    bundle = make_bundle(["no-such-binary"])
    out = pyrunc("create", "--bundle", bundle, "nx")
    assert out.returncode != 0
    assert 'exec: "no-such-binary": executable file not found in $PATH' in out.stderr
    assert os.listdir(state_root) == []


def test_bad_cwd_reported(make_bundle, pyrunc, state_root):
    def cwd(spec):
        spec["process"]["cwd"] = "/does/not/exist"

    out = run_script(make_bundle, pyrunc, "true", edit=cwd)
    assert out.returncode != 0 and "/does/not/exist" in out.stderr
    assert os.listdir(state_root) == []


class ConsoleSocket:
    """A console socket as engines run one: receives the pty master sent with SCM_RIGHTS."""

    def __init__(self, path):
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.master = None
        self.name = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conn, _ = self.server.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4 * 4))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % 4])
        self.name = msg
        self.fds = list(fds)
        self.master = fds[0] if fds else None
        conn.close()

    def read_all(self, timeout=10):
        import select

        data = b""
        while True:
            ready, _, _ = select.select([self.master], [], [], timeout)
            if not ready:
                break
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        return data


def test_terminal_via_console_socket(make_bundle, pyrunc, tmp_path):
    console = ConsoleSocket(tmp_path / "console.sock")

    def term(spec):
        spec["process"]["terminal"] = True
        spec["process"]["consoleSize"] = {"height": 30, "width": 101}

    bundle = make_bundle(["sh", "-c", "tty; stty size; test -t 0 && echo stdin-tty; ls -l /dev/console"], edit=term)
    out = pyrunc("create", "--console-socket", console.path, "--bundle", bundle, "tty1")
    assert out.returncode == 0, out.stderr
    console.thread.join(5)
    assert console.name == b"/dev/ptmx" and len(console.fds) == 1
    assert pyrunc("start", "tty1").returncode == 0
    text = console.read_all().decode().replace("\r", "")
    assert "/dev/pts/0\n30 101\nstdin-tty\n" in text, text
    import re

    assert re.search(r"136,\s+0 .*/dev/console", text)  # /dev/console is the pty slave
    os.close(console.master)


def test_the_terminal_belongs_to_the_user_and_the_tty_group(make_bundle, pyrunc, tmp_path):
    console = ConsoleSocket(tmp_path / "console.sock")

    def term(spec):
        spec["process"]["terminal"] = True
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}

    bundle = make_bundle(["sh", "-c", "stat -c '%u:%g' $(tty)"], edit=term)
    assert pyrunc("create", "--console-socket", console.path, "--bundle", bundle, "tty2").returncode == 0
    console.thread.join(5)
    assert pyrunc("start", "tty2").returncode == 0
    assert console.read_all().decode().strip() == "1000:5"
    os.close(console.master)


def test_run_with_terminal_proxies_output(make_bundle, state_root):
    def term(spec):
        spec["process"]["terminal"] = True

    bundle = make_bundle(["sh", "-c", "test -t 1 && echo on-a-tty; exit 3"], edit=term)
    proc = subprocess.run([*PYRUNC, "--root", str(state_root), "run", "--bundle", str(bundle), "tty2"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert b"on-a-tty" in proc.stdout


def test_terminal_without_console_socket_refused(make_bundle, pyrunc, state_root):
    def term(spec):
        spec["process"]["terminal"] = True

    bundle = make_bundle(["true"], edit=term)
    out = pyrunc("create", "--bundle", bundle, "tty3")
    assert out.returncode != 0 and "console" in out.stderr
    assert os.listdir(state_root) == []


def test_state_json_annotations(make_bundle, pyrunc):
    def annotate(spec):
        spec["annotations"] = {"org.example.key": "value"}

    bundle = make_bundle(["sleep", "10"], edit=annotate)
    assert pyrunc("create", "--bundle", bundle, "ann").returncode == 0
    state = json.loads(pyrunc("state", "ann").stdout)
    assert state["annotations"] == {"org.example.key": "value"}


def test_cwd_is_entered_before_dropping_privileges(make_bundle, pyrunc):
    """runc's order: a non-root process may start in a directory only the runtime could walk into."""
    def edit(spec):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        spec["process"]["cwd"] = "/private/work"

    bundle = make_bundle(["pwd"], edit=edit)
    private = bundle / "rootfs" / "private" / "work"
    private.mkdir(parents=True)
    os.chmod(private.parent, 0o700)  # root's only
    out = pyrunc("run", "--bundle", bundle, "cwd")
    assert out.returncode == 0 and out.stdout == "/private/work\n", out.stderr


# An orphan made inside the container (which shares our pid namespace here): its parent is the nearest subreaper.
ORPHAN_PARENT = ("sh -c 'sleep 30 & echo $! > /dev/shm/orphan'; sleep 0.3; "
                 "grep PPid: /proc/$(cat /dev/shm/orphan)/status; kill $(cat /dev/shm/orphan)")


def _without_pid_namespace(spec):
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]


def _parent_of_orphan(cmd: list[str]) -> tuple[int, int]:
    """(the runtime's pid, the orphan's parent) for a runtime command that runs ORPHAN_PARENT."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return proc.pid, int(status_field(out, "PPid"))


@pytest.mark.parametrize("flag", [[], ["--no-subreaper"]])
def test_run_no_subreaper_leaves_orphans_to_the_system(make_bundle, state_root, flag):
    bundle = make_bundle(["sh", "-c", ORPHAN_PARENT], edit=_without_pid_namespace)
    runtime, parent = _parent_of_orphan([*PYRUNC, "--root", str(state_root), "run", *flag, "--bundle", str(bundle),
                                         "reaper"])
    assert (parent == runtime) == (not flag)


@pytest.mark.parametrize("flag", [[], ["--no-subreaper"]])
def test_exec_no_subreaper_leaves_orphans_to_the_system(make_bundle, pyrunc, state_root, flag):
    bundle = make_bundle(["sleep", "100"], edit=_without_pid_namespace)
    assert pyrunc("run", "-d", "--bundle", bundle, "reaper-x").returncode == 0
    runtime, parent = _parent_of_orphan([*PYRUNC, "--root", str(state_root), "exec", *flag, "reaper-x",
                                         "sh", "-c", ORPHAN_PARENT])
    assert (parent == runtime) == (not flag)
