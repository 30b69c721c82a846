"""OCI hooks: when each runs, in which namespaces, with the state on stdin; failures and timeouts."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.root


def recorder(log, phase):
    """A host hook that appends the phase, the state it got on stdin and its mount namespace to `log`."""
    script = (f'read -r state; echo "{phase} $(readlink /proc/self/ns/mnt) $state" >> {log}')
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def records(log):
    out = []
    for line in log.read_text().splitlines():
        phase, ns, state = line.split(" ", 2)
        out.append((phase, ns, json.loads(state)))
    return out


def test_every_hook_in_order_with_state(make_bundle, pyrunc, tmp_path, rootfs):
    log = tmp_path / "hooks.log"
    log.touch()
    inner = "/hooklog/hooks.log"  # startContainer runs inside: it sees the log through a bind mount

    def hooks(spec):
        spec["annotations"] = {"who": "test"}
        spec["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(tmp_path),
                               "options": ["bind"]})
        spec["hooks"] = {
            "prestart": [recorder(log, "prestart")],
            "createRuntime": [recorder(log, "createRuntime")],
            "createContainer": [recorder(log, "createContainer")],
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
                                f'read -r s; echo "startContainer $(readlink /proc/self/ns/mnt) $s" >> {inner}']}],
            "poststart": [recorder(log, "poststart")],
            "poststop": [recorder(log, "poststop")],
        }

    bundle = make_bundle(["sleep", "100"], edit=hooks)
    assert pyrunc("create", "--bundle", bundle, "h1").returncode == 0
    pid = json.loads(pyrunc("state", "h1").stdout)["pid"]
    container_mnt = os.readlink(f"/proc/{pid}/ns/mnt")
    assert [r[0] for r in records(log)] == ["createRuntime", "createContainer"]
    assert pyrunc("start", "h1").returncode == 0
    assert pyrunc("kill", "h1", "KILL").returncode == 0
    for _ in range(200):
        if json.loads(pyrunc("state", "h1").stdout)["status"] == "stopped":
            break
        time.sleep(0.02)
    assert pyrunc("delete", "h1").returncode == 0

    got = records(log)
    # prestart runs when `start` is called (the timing runtime-tools checks), before the process
    assert [r[0] for r in got] == ["createRuntime", "createContainer", "prestart", "startContainer",
                                   "poststart", "poststop"]
    host_mnt = os.readlink("/proc/self/ns/mnt")
    ns = {phase: mnt for phase, mnt, _ in got}
    assert ns["prestart"] == ns["createRuntime"] == ns["poststart"] == ns["poststop"] == host_mnt
    assert ns["createContainer"] == ns["startContainer"] == container_mnt
    for phase, _, state in got:
        assert state["id"] == "h1" and state["bundle"] == str(bundle) and state["annotations"] == {"who": "test"}
        assert state["pid"] == pid or phase == "poststop"
    statuses = {p: s["status"] for p, _, s in got}
    assert statuses["createRuntime"] == "creating" and statuses["prestart"] == "created"
    assert statuses["poststart"] == "running" and statuses["poststop"] == "stopped"


@pytest.mark.parametrize("phase", ["createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_cleans_up(make_bundle, pyrunc, state_root, phase):
    def hooks(spec):
        spec["hooks"] = {phase: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}

    bundle = make_bundle(["sleep", "100"], edit=hooks)
    out = pyrunc("create", "--bundle", bundle, "hf")
    assert out.returncode != 0
    assert f"error running hook: {phase} hook /bin/sh: exit status 3" in out.stderr
    assert os.listdir(state_root) == []


def test_failing_prestart_hook_fails_start_and_deletes(make_bundle, pyrunc):
    def hooks(spec):
        spec["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}

    bundle = make_bundle(["sleep", "100"], edit=hooks)
    assert pyrunc("create", "--bundle", bundle, "hp").returncode == 0
    pid = json.loads(pyrunc("state", "hp").stdout)["pid"]
    out = pyrunc("start", "hp")
    assert out.returncode != 0 and "error running hook: prestart hook /bin/sh: exit status 3" in out.stderr
    # the spec: the container is stopped and the lifecycle goes on at delete
    assert "does not exist" in pyrunc("state", "hp").stderr
    time.sleep(0.2)  # pid 1 of the host reaps it
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"


def test_missing_hook_binary(make_bundle, pyrunc, state_root):
    def hooks(spec):
        spec["hooks"] = {"createRuntime": [{"path": "/no/such/hook"}]}

    out = pyrunc("create", "--bundle", make_bundle(["true"], edit=hooks), "hm")
    assert out.returncode != 0 and "/no/such/hook" in out.stderr
    assert os.listdir(state_root) == []


def test_hook_timeout(make_bundle, pyrunc, state_root):
    def hooks(spec):
        spec["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}

    out = pyrunc("create", "--bundle", make_bundle(["true"], edit=hooks), "ht")
    assert out.returncode != 0 and "timed out" in out.stderr
    assert os.listdir(state_root) == []


def test_hook_env(make_bundle, pyrunc, tmp_path):
    out_file = tmp_path / "env.txt"

    def hooks(spec):
        spec["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo $FOO > {out_file}"],
                                       "env": ["FOO=bar"]}]}

    assert pyrunc("run", "--bundle", make_bundle(["true"], edit=hooks), "he").returncode == 0
    assert out_file.read_text() == "bar\n"


def test_failing_start_container_hook_fails_start(make_bundle, pyrunc):
    def hooks(spec):
        spec["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]}

    bundle = make_bundle(["sleep", "100"], edit=hooks)
    assert pyrunc("create", "--bundle", bundle, "hs").returncode == 0
    out = pyrunc("start", "hs")
    assert out.returncode != 0 and "startContainer hook" in out.stderr
    for _ in range(100):
        if json.loads(pyrunc("state", "hs").stdout)["status"] == "stopped":
            break
        time.sleep(0.02)
    assert json.loads(pyrunc("state", "hs").stdout)["status"] == "stopped"


def test_failing_poststart_and_poststop_are_warnings(make_bundle, pyrunc, state_root):
    def hooks(spec):
        spec["hooks"] = {"poststart": [{"path": "/bin/false"}], "poststop": [{"path": "/bin/false"}]}

    bundle = make_bundle(["sleep", "100"], edit=hooks)
    assert pyrunc("create", "--bundle", bundle, "hw").returncode == 0
    assert pyrunc("start", "hw").returncode == 0
    assert json.loads(pyrunc("state", "hw").stdout)["status"] == "running"
    assert pyrunc("delete", "--force", "hw").returncode == 0
    assert os.listdir(state_root) == []


def test_hooks_run_where_runc_runs_them(make_bundle, pyrunc, tmp_path):
    """Runtime-side hooks in the bundle directory, createContainer in the container's rootfs (before
    pivot_root), startContainer in the container's /."""
    log = tmp_path / "cwd.log"
    log.touch()

    def pwd_hook(phase, target):
        return {"path": "/bin/sh", "args": ["sh", "-c", f'echo "{phase} $(pwd)" >> {target}']}

    def hooks(spec):
        spec["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(tmp_path),
                               "options": ["bind"]})
        spec["hooks"] = {"createRuntime": [pwd_hook("createRuntime", log)],
                         "createContainer": [pwd_hook("createContainer", log)],
                         "startContainer": [pwd_hook("startContainer", "/hooklog/cwd.log")],
                         "prestart": [pwd_hook("prestart", log)], "poststop": [pwd_hook("poststop", log)]}

    bundle = make_bundle(["true"], edit=hooks)
    out = pyrunc("run", "--bundle", bundle, "cwd", cwd="/")
    assert out.returncode == 0, out.stderr
    where = dict(line.split(" ", 1) for line in log.read_text().splitlines())
    assert where == {"createRuntime": str(bundle), "createContainer": str(bundle / "rootfs"),
                     "prestart": str(bundle), "startContainer": "/", "poststop": str(bundle)}


def test_start_container_hooks_run_under_the_seccomp_filter(make_bundle, pyrunc, tmp_path):
    """runc loads the filter (no_new_privs case) before the startContainer hooks: they run under it."""
    def edit(spec):
        spec["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(tmp_path),
                               "options": ["bind"]})
        spec["process"]["noNewPrivileges"] = True
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}]}  # EROFS
        spec["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "mkdir /tmp/by-hook 2>/hooklog/err; echo $? > /hooklog/status"]}]}

    out = pyrunc("run", "--bundle", make_bundle(["true"], edit=edit), "hookfilter")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "status").read_text().strip() != "0" and "Read-only file system" in (tmp_path / "err").read_text()


def test_a_start_container_hook_killed_by_the_filter_is_runcs_words(make_bundle, pyrunc):
    def edit(spec):
        spec["process"]["noNewPrivileges"] = True
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
        spec["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/x"]}]}

    out = pyrunc("run", "--bundle", make_bundle(["true"], edit=edit), "hookkill")
    assert out.returncode != 0 and "error running hook: startContainer hook" in out.stderr
    assert "bad system call" in out.stderr


@pytest.mark.parametrize("pid_ns", ["new", "joined"])
def test_runtime_hooks_run_in_the_hosts_pid_namespace(make_bundle, pyrunc, tmp_path, pid_ns):
    """The runtime sets the container's pid namespace for the one fork of init and must set its own back:
    the hooks it starts afterwards (createRuntime, prestart, poststart, poststop) live on the host."""
    log = tmp_path / "pidns.log"
    log.touch()
    holder = None
    if pid_ns == "joined":  # a process in a pid namespace of its own, which the container joins
        import subprocess

        holder = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "sleep", "60"])
        time.sleep(0.3)
        inner = [int(p) for p in open(f"/proc/{holder.pid}/task/{holder.pid}/children").read().split()][0]

    def hooks(spec):
        hook = {"path": "/bin/sh", "args": ["sh", "-c", f'echo "$(readlink /proc/self/ns/pid)" >> {log}']}
        spec["hooks"] = {phase: [hook] for phase in ("createRuntime", "prestart", "poststart", "poststop")}
        if holder is not None:
            for ns in spec["linux"]["namespaces"]:
                if ns["type"] == "pid":
                    ns["path"] = f"/proc/{inner}/ns/pid"

    try:
        out = pyrunc("run", "--bundle", make_bundle(["sh", "-c", "readlink /proc/self/ns/pid"], edit=hooks), "pidns")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() != os.readlink("/proc/self/ns/pid")  # the container's own
        assert log.read_text().splitlines() == [os.readlink("/proc/self/ns/pid")] * 4
        if holder is not None:
            assert out.stdout.strip() == os.readlink(f"/proc/{inner}/ns/pid")
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
