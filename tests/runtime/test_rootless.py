"""pyrunc run by an unprivileged user: `spec --rootless`, a user namespace mapping only that user, state under
$XDG_RUNTIME_DIR, and no cgroup unless the user may write one (runc's rootless mode)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from support import PYRUNC, REPO, build_busybox_rootfs, run_captured, wait_for

pytestmark = pytest.mark.root  # root makes the user and the rootfs; the runtime then runs as the user

USER = "pyrunc-rootless"


@pytest.fixture(scope="module")
def user():
    created = False
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        entry, created = pwd.getpwnam(USER), True
    yield entry
    if created:
        subprocess.run(["userdel", USER], check=False)


@pytest.fixture
def home(user):
    """A directory the user owns, reachable by it (pytest's own tmp dirs are root's 0700 ones)."""
    path = tempfile.mkdtemp(prefix="pyrunc-rootless-")
    os.chmod(path, 0o755)
    build_busybox_rootfs(Path(path) / "bundle" / "rootfs")
    os.makedirs(os.path.join(path, "run"))
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", path], check=True)
    if not starts_as_user(user, path):
        # The checkout (or its venv) sits under a directory the user cannot enter, as a CI clone in /root
        # does: run a readable copy of the runtime package and its schemas (standard library only).
        for package in ("oci_runtime", "spec"):
            shutil.copytree(REPO / package, Path(path) / "lib" / package, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", os.path.join(path, "lib")], check=True)
        assert starts_as_user(user, path), "the copied runtime does not start as the user"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def starts_as_user(user, home) -> bool:
    try:
        return as_user(user, home, "--version").returncode == 0
    except PermissionError:  # the command itself is out of the user's reach
        return False


def as_user(user, home, *args, timeout=60):
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": os.path.join(home, "run"), "HOME": home}
    command = PYRUNC
    copied = os.path.join(home, "lib")
    if os.path.isdir(copied):
        command = [sys._base_executable, "-m", "oci_runtime"]
        env["PYTHONPATH"] = copied
    return run_captured([*command, *map(str, args)], timeout=timeout, user=user.pw_uid, group=user.pw_gid,
                        extra_groups=[], env=env, cwd=home)


def rootless_bundle(user, home, args, edit=None):
    bundle = os.path.join(home, "bundle")
    out = as_user(user, home, "spec", "--rootless", "--bundle", bundle)
    assert out.returncode == 0, out.stderr
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    if edit:
        edit(spec)
    with open(config_path, "w") as f:
        json.dump(spec, f)
    return bundle


def test_an_unprivileged_user_runs_a_container(user, home):
    bundle = rootless_bundle(user, home, ["sh", "-c", "id -u; cat /proc/self/uid_map; echo pid=$$; ls /dev/null"])
    out = as_user(user, home, "run", "--bundle", bundle, "rl")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "0" and lines[1].split() == ["0", str(user.pw_uid), "1"]
    assert lines[2] == "pid=1" and lines[3] == "/dev/null"
    assert os.listdir(os.path.join(home, "run", "pyrunc")) == []  # its state lived under XDG_RUNTIME_DIR


def test_rootless_lifecycle_and_state_root(user, home):
    bundle = rootless_bundle(user, home, ["sleep", "1000"])
    assert as_user(user, home, "create", "--bundle", bundle, "rlc").returncode == 0
    assert os.path.isdir(os.path.join(home, "run", "pyrunc", "rlc"))
    assert as_user(user, home, "start", "rlc").returncode == 0
    state = json.loads(as_user(user, home, "state", "rlc").stdout)
    assert state["status"] == "running"
    with open(f"/proc/{state['pid']}/status") as f:
        assert f"Uid:\t{user.pw_uid}" in f.read()  # on the host, the container's root is the user
    assert as_user(user, home, "delete", "--force", "rlc").returncode == 0
    assert not os.path.exists(f"/proc/{state['pid']}/status") or "Z" in open(f"/proc/{state['pid']}/stat").read()


def test_limits_without_a_writable_cgroup_are_refused_clearly(user, home):
    bundle = rootless_bundle(user, home, ["true"],
                             edit=lambda spec: spec["linux"].update(resources={"pids": {"limit": 10}}))
    out = as_user(user, home, "run", "--bundle", bundle, "rll")
    assert out.returncode == 1 and "rootless container" in out.stderr and out.stderr.count("\n") == 1
    assert os.listdir(os.path.join(home, "run", "pyrunc")) == []


def test_a_cgroups_path_without_a_writable_cgroup_is_refused(user, home):
    """runc skips a cgroup it may not make only when none was named; a cgroupsPath is an error."""
    bundle = rootless_bundle(user, home, ["true"],
                             edit=lambda spec: spec["linux"].update(cgroupsPath="/pyrunc-rootless-test/ctr"))
    out = as_user(user, home, "run", "--bundle", bundle, "rlp")
    assert out.returncode == 1 and "unable to apply cgroup configuration" in out.stderr, out.stderr
    assert "permission denied" in out.stderr and out.stderr.count("\n") == 1
    assert os.listdir(os.path.join(home, "run", "pyrunc")) == []


@pytest.fixture
def subordinate_ids(user):
    """Subordinate ids for the user in /etc/subuid and /etc/subgid (put back as they were afterwards)."""
    if shutil.which("newuidmap") is None or shutil.which("newgidmap") is None:
        pytest.skip("newuidmap/newgidmap (Debian's uidmap) not installed")
    saved = {}
    for path in ("/etc/subuid", "/etc/subgid"):
        saved[path] = Path(path).read_text() if os.path.exists(path) else None
        kept = [line for line in (saved[path] or "").splitlines() if not line.startswith(f"{USER}:")]
        Path(path).write_text("".join(f"{line}\n" for line in kept) + f"{USER}:300000:65536\n")
    yield 300000
    for path, text in saved.items():
        if text is None:
            os.unlink(path)
        else:
            Path(path).write_text(text)


def test_more_than_the_users_own_ids_are_mapped_with_newuidmap(user, home, subordinate_ids):
    """As runc: a map the kernel refuses to an unprivileged writer goes through the setuid helpers."""
    def edit(spec):
        spec["linux"]["uidMappings"].append({"containerID": 1, "hostID": subordinate_ids, "size": 1000})
        spec["linux"]["gidMappings"].append({"containerID": 1, "hostID": subordinate_ids, "size": 1000})
    bundle = rootless_bundle(user, home, ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map"], edit=edit)
    out = as_user(user, home, "run", "--bundle", bundle, "rlm")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows == [["0", str(user.pw_uid), "1"], ["1", str(subordinate_ids), "1000"],
                    ["0", str(user.pw_gid), "1"], ["1", str(subordinate_ids), "1000"]]


def test_kill_all_after_the_container_stopped_is_not_an_error(user, home):
    """Without a cgroup, init is all `kill --all` knows of; once it is gone nothing is left to signal (runc: 0)."""
    bundle = rootless_bundle(user, home, ["sleep", "1000"])
    assert as_user(user, home, "run", "-d", "--bundle", bundle, "rlk").returncode == 0
    assert as_user(user, home, "kill", "rlk", "KILL").returncode == 0
    assert wait_for(lambda: json.loads(as_user(user, home, "state", "rlk").stdout)["status"] == "stopped")
    out = as_user(user, home, "kill", "--all", "rlk", "0")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    out = as_user(user, home, "kill", "rlk", "0")  # without --all: init alone was asked for, and it is gone
    assert out.returncode != 0 and "container not running" in out.stderr
    assert as_user(user, home, "delete", "rlk").returncode == 0


class ListenerCatcher:
    """A seccomp agent that takes the listener and closes it at once: a notified call then fails with ENOSYS."""

    def __init__(self, path: str):
        import socket
        import threading

        self.state = None
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        os.chmod(path, 0o666)  # the runtime connecting is the unprivileged user
        self._server.listen(1)
        self._server.settimeout(60)
        self._thread = threading.Thread(target=self._take_one, daemon=True)
        self._thread.start()

    def _take_one(self) -> None:
        import socket

        conn, _ = self._server.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        for fd in fds:
            os.close(fd)
        self.state = json.loads(data)

    def join(self) -> None:
        self._thread.join(60)
        self._server.close()


@pytest.mark.parametrize("nnp", [False, True])
def test_the_seccomp_listener_reaches_the_agent(user, home, nnp):
    """init is not dumpable, so an unprivileged runtime cannot take the listener from it (pidfd_getfd needs
    ptrace access): init sends it over its socket to the runtime."""
    agent = ListenerCatcher(os.path.join(home, "agent.sock"))

    def edit(spec):
        spec["process"]["noNewPrivileges"] = nnp
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                    "listenerPath": os.path.join(home, "agent.sock"),
                                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    bundle = rootless_bundle(user, home, ["sh", "-c", "mkdir /tmp/x 2>&1; echo status=$?"], edit=edit)
    out = as_user(user, home, "run", "--bundle", bundle, "rls")
    assert out.returncode == 0, out.stderr  # (before join: without a connection the agent waits in vain)
    agent.join()
    assert "Function not implemented" in out.stdout and "status=1" in out.stdout  # the agent had it, and let go
    assert agent.state["state"]["id"] == "rls" and agent.state["fds"] == ["seccompFd"]


def test_exec_into_a_created_container(user, home):
    """exec opens init's /proc/PID/ns files, which takes ptrace access: init waits for start dumpable (runc's
    rule without joined namespaces), and so holds no fd of the host's /proc (it reached exec.fifo through it)."""
    bundle = rootless_bundle(user, home, ["sleep", "1000"])
    assert as_user(user, home, "create", "--bundle", bundle, "rlx").returncode == 0
    try:
        pid = json.loads(as_user(user, home, "state", "rlx").stdout)["pid"]
        host_proc = os.stat("/proc")
        for name in os.listdir(f"/proc/{pid}/fd"):
            held = os.stat(f"/proc/{pid}/fd/{name}")
            assert (held.st_dev, held.st_ino) != (host_proc.st_dev, host_proc.st_ino), name
        out = as_user(user, home, "exec", "rlx", "echo", "in-created")
        assert out.returncode == 0 and out.stdout == "in-created\n", out.stderr
        assert as_user(user, home, "start", "rlx").returncode == 0
        assert json.loads(as_user(user, home, "state", "rlx").stdout)["status"] == "running"
    finally:
        as_user(user, home, "delete", "--force", "rlx")


def test_a_configured_dev_ptmx_is_the_devpts_one(user, home):
    """A device entry for /dev/ptmx (docker adds one) gives way to the pts/ptmx symlink as in runc: in a user
    namespace it used to be bound from the host first, and that mount then could not be replaced (EBUSY)."""
    def edit(spec):
        spec["linux"]["devices"] = [{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2}]
    bundle = rootless_bundle(user, home, ["sh", "-c", "readlink /dev/ptmx; ls -lLn /dev/ptmx"], edit=edit)
    out = as_user(user, home, "run", "--bundle", bundle, "rlt")
    assert out.returncode == 0, out.stderr
    link, node = out.stdout.splitlines()
    assert link == "pts/ptmx" and node.startswith("crw-rw-rw-") and node.split()[4:6] == ["5,", "2"]


def test_a_mount_on_dev_ptmx_is_refused_in_one_line(user, home):
    def edit(spec):
        spec["mounts"].append({"destination": "/dev/ptmx", "type": "bind", "source": "/dev/null", "options": ["bind"]})
    bundle = rootless_bundle(user, home, ["true"], edit=edit)
    out = as_user(user, home, "run", "--bundle", bundle, "rlb")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and '"/dev/ptmx"' in out.stderr, out.stderr
    assert "Device or resource busy" in out.stderr and "Errno" not in out.stderr
    assert os.listdir(os.path.join(home, "run", "pyrunc")) == []


def test_someone_elses_cgroup_of_the_same_name_is_left_alone(user, home):
    """A root container's cgroup at the path ours would have (the same id): an unprivileged runtime may not join
    it, so it neither warns about its processes nor touches it, and runs without a cgroup as when it may not
    make one."""
    from oci_runtime.cgroups import open_manager

    mgr = open_manager(None, "rlg")  # where the user's runtime, our child, looks for it
    mgr.create()
    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        mgr.apply(sleeper.pid)
        bundle = rootless_bundle(user, home, ["true"])
        out = as_user(user, home, "run", "--bundle", bundle, "rlg")
        assert out.returncode == 0 and out.stderr == "", out.stderr
        assert mgr.pids() == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()
        mgr.destroy()
