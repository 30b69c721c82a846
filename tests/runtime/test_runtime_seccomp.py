"""Seccomp in real containers: errno rules, a docker-like default deny profile, and SCMP_ACT_NOTIFY agents."""

from __future__ import annotations

import json
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
