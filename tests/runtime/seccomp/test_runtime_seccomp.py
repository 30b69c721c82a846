"""Seccomp in real containers: errno rules, a docker-like default deny profile, and SCMP_ACT_NOTIFY agents."""

from __future__ import annotations

import os

import pytest

from test_seccomp import Agent, docker_like_profile

pytestmark = pytest.mark.root


def run(make_bundle, pyrunc, script, seccomp, nnp=True, cid="sc"):
    def edit(spec):
        spec["linux"]["seccomp"] = seccomp
        spec["process"]["noNewPrivileges"] = nnp

    return pyrunc("run", "--bundle", make_bundle(["sh", "-c", script], edit=edit), cid)


@pytest.mark.parametrize("nnp", [True, False])
def test_errno_rule_in_container(make_bundle, pyrunc, nnp):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    out = run(make_bundle, pyrunc, "mkdir /tmp/x 2>&1; touch /tmp/y && echo touched; grep Seccomp: /proc/self/status",
              profile, nnp=nnp)
    assert out.returncode == 0, out.stderr
    assert "Permission denied" in out.stdout and "touched" in out.stdout
    assert "Seccomp:\t2" in out.stdout


def test_getcwd_blocked_like_runtime_tools(make_bundle, pyrunc):
    """The filter is loaded last: a profile refusing getcwd must not break the runtime itself."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    out = run(make_bundle, pyrunc, "echo started", profile)
    assert out.returncode == 0 and out.stdout == "started\n", out.stderr


def test_docker_like_default_deny_profile(make_bundle, pyrunc):
    out = run(make_bundle, pyrunc, "ls / >/dev/null && echo listing-ok; unshare -U true 2>&1 || echo unshare-denied",
              docker_like_profile(), nnp=False)
    assert out.returncode == 0, out.stderr
    assert "listing-ok" in out.stdout and "unshare-denied" in out.stdout


def test_every_exec_gets_the_containers_deny_profile(make_bundle, pyrunc):
    """exec loads the program create kept in the cache: every exec is filtered all the same."""
    def edit(spec):
        spec["linux"]["seccomp"] = docker_like_profile()
        spec["process"]["noNewPrivileges"] = False

    assert pyrunc("run", "-d", "--bundle", make_bundle(["sleep", "100"], edit=edit), "dx").returncode == 0
    try:
        for _ in range(2):
            out = pyrunc("exec", "dx", "sh", "-c", "ls / >/dev/null && echo listing-ok; "
                         "unshare -U true 2>&1 || echo unshare-denied; grep Seccomp: /proc/self/status")
            assert out.returncode == 0, out.stderr
            assert "listing-ok" in out.stdout and "unshare-denied" in out.stdout and "Seccomp:\t2" in out.stdout
    finally:
        pyrunc("delete", "--force", "dx")


def test_containers_from_the_program_cache_are_filtered_as_the_first(make_bundle, pyrunc):
    """The second container with a profile loads the program the first one compiled (one file a profile)."""
    from oci_runtime.seccomp.filter import CACHE_DIR

    profile = docker_like_profile()
    # a rule of this run's own for a call the profile refuses anyway: a profile no earlier run has cached
    profile["syscalls"].append({"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2 + os.getpid() % 100})
    before = set(os.listdir(CACHE_DIR)) if os.path.isdir(CACHE_DIR) else set()
    for _ in range(2):
        out = run(make_bundle, pyrunc, "ls / >/dev/null && echo listing-ok; unshare -U true 2>&1 || echo unshare-denied",
                  profile, nnp=False)
        assert out.returncode == 0, out.stderr
        assert "listing-ok" in out.stdout and "unshare-denied" in out.stdout, out.stdout
    new = set(os.listdir(CACHE_DIR)) - before
    for name in new:
        os.unlink(os.path.join(CACHE_DIR, name))
    assert len(new) == 1


def test_a_cache_directory_that_is_not_roots_private_one_is_ignored():
    from oci_runtime.seccomp import filter as seccomp_filter

    assert seccomp_filter.cache_dir() == seccomp_filter.CACHE_DIR
    os.chmod(seccomp_filter.CACHE_DIR, 0o755)
    try:
        assert seccomp_filter.cache_dir() is None
    finally:
        os.chmod(seccomp_filter.CACHE_DIR, 0o700)


def test_unknown_architecture_refused_before_create(make_bundle, pyrunc, state_root):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]}
    out = run(make_bundle, pyrunc, "true", profile)
    assert out.returncode != 0 and "SCMP_ARCH_NOPE" in out.stderr
    assert os.listdir(state_root) == []


def test_unknown_syscall_name_refused_before_create(make_bundle, pyrunc, state_root):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdri"], "action": "SCMP_ACT_ERRNO"}]}
    out = run(make_bundle, pyrunc, "true", profile)
    assert out.returncode != 0 and '"mkdri"' in out.stderr and "unknown syscall" in out.stderr
    assert os.listdir(state_root) == []


def test_notify_listener_reaches_the_agent(make_bundle, pyrunc, tmp_path):
    agent = Agent(tmp_path / "agent.sock", answer=4242)
    agent.start()
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(agent.path), "listenerMetadata": "meta",
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}

    def edit(spec):
        spec["linux"]["seccomp"] = profile
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]

    # without a pid namespace busybox's getppid goes to the kernel, and the agent answers it
    bundle = make_bundle(["sh", "-c", "echo ppid=$PPID"], edit=edit)
    out = pyrunc("run", "--bundle", bundle, "notify")
    agent.join()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ppid=4242"
    assert agent.state["metadata"] == "meta" and agent.state["fds"] == ["seccompFd"]
    assert agent.state["state"]["id"] == "notify"


class ServingAgent:
    """A seccomp agent serving every listener it is given until stopped: mkdir(at) is answered with a success
    that makes nothing (so the test can tell the agent answered), every other call is let through."""

    def __init__(self, path):
        import socket
        import threading

        self.path = str(path)
        self.seen: list[int] = []
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import fcntl
        import select
        import socket

        from test_seccomp import NOTIF, NOTIF_RESP, SECCOMP_IOCTL_NOTIF_RECV, SECCOMP_IOCTL_NOTIF_SEND, _nr

        fake = {_nr("mkdir"), _nr("mkdirat")}
        listeners: list[int] = []
        while not self._stop.is_set():
            ready, _, _ = select.select([self._server, *listeners], [], [], 0.05)
            for fd in ready:
                if fd is self._server:
                    conn, _ = self._server.accept()
                    with conn:
                        _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
                        while conn.recv(1 << 16):
                            pass
                    listeners += fds
                    self.connections += 1
                    continue
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
                except OSError:  # every process under this filter is gone
                    listeners.remove(fd)
                    os.close(fd)
                    continue
                notif_id, _, _, nr, *_ = NOTIF.unpack(buf)
                self.seen.append(nr)
                flags = 0 if nr in fake else 1  # SECCOMP_USER_NOTIF_FLAG_CONTINUE
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(NOTIF_RESP.pack(notif_id, 0, 0, flags)), True)
                except OSError:
                    pass  # the caller was killed meanwhile
        for fd in listeners:
            os.close(fd)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._server.close()


def notify_profile(agent, names):
    return {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path, "listenerMetadata": "bar",
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]}


@pytest.mark.parametrize("nnp", [False, True])
def test_notify_on_the_syscalls_the_runtime_itself_makes(make_bundle, pyrunc, tmp_path, nnp):
    """With execve, open, read and close notified, the listener must reach the agent the moment the filter
    is loaded: the runtime's own next syscalls are among them (runc's "important syscalls" case)."""
    agent = ServingAgent(tmp_path / "agent.sock")
    try:
        out = run(make_bundle, pyrunc, "mkdir /made && echo answered; test -d /made || echo not-made",
                  notify_profile(agent, ["execve", "openat", "open", "read", "close", "mkdir"]), nnp=nnp)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "answered\nnot-made\n"
        assert agent.connections == 1 and len(agent.seen) > 3
    finally:
        agent.stop()


@pytest.mark.parametrize("nnp", [False, True])
def test_exec_hands_its_listener_to_the_agent(make_bundle, pyrunc, tmp_path, nnp):
    agent = ServingAgent(tmp_path / "agent.sock")
    try:
        def edit(spec):
            spec["linux"]["seccomp"] = notify_profile(agent, ["mkdir"])
            spec["process"]["noNewPrivileges"] = nnp

        assert pyrunc("run", "-d", "--bundle", make_bundle(["sleep", "100"], edit=edit), "nx").returncode == 0
        out = pyrunc("exec", "nx", "sh", "-c", "mkdir /made && echo answered; test -d /made || echo not-made")
        assert out.returncode == 0 and out.stdout == "answered\nnot-made\n", out.stderr
        assert agent.connections == 2  # init's listener, then the exec'd process's
    finally:
        pyrunc("delete", "--force", "nx")
        agent.stop()


def test_no_agent_is_runcs_words(make_bundle, pyrunc, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    out = run(make_bundle, pyrunc, "true", profile, nnp=False)
    assert out.returncode != 0 and "failed to connect with seccomp agent" in out.stderr


@pytest.mark.parametrize("nnp", [False, True])
def test_notify_under_a_deny_by_default_profile(make_bundle, pyrunc, tmp_path, nnp):
    """The ENOSYS stub's own load path (seccomp(2) directly) also makes the listener and hands it over."""
    from test_seccomp import docker_like_profile

    agent = ServingAgent(tmp_path / "agent.sock")
    try:
        profile = docker_like_profile()
        profile["listenerPath"] = agent.path
        profile["syscalls"] = [rule for rule in profile["syscalls"]] + [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        for rule in profile["syscalls"][:-1]:
            rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")]
        out = run(make_bundle, pyrunc, "mkdir /made && echo answered; test -d /made || echo not-made", profile,
                  nnp=nnp)
        assert out.returncode == 0 and out.stdout == "answered\nnot-made\n", out.stderr
        assert agent.connections == 1
    finally:
        agent.stop()
