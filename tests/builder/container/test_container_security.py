"""pydock run --ulimit and --security-opt (no-new-privileges, seccomp=PROFILE.json in docker's format,
seccomp=unconfined) against real containers: what the container's process gets, and refusals."""

from __future__ import annotations

import json

import pytest


pytestmark = pytest.mark.root


def status_field(output: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith(name + ":"))


def test_ulimit(dock):
    proc = dock("run", "--rm", "--ulimit", "nofile=100:200", "--ulimit", "core=-1", "busybox", "sh", "-c",
                "ulimit -n; ulimit -Hn; ulimit -c", check=True)
    assert proc.stdout.split() == ["100", "200", "unlimited"]
    cid = dock("create", "--ulimit", "nproc=50", "busybox", "true", check=True).stdout.strip()
    host = json.loads(dock("inspect", cid, check=True).stdout)[0]["HostConfig"]
    assert host["Ulimits"] == [{"Name": "nproc", "Hard": 50, "Soft": 50}]


def test_no_new_privileges(dock):
    default = dock("run", "--rm", "busybox", "cat", "/proc/self/status", check=True).stdout
    assert status_field(default, "NoNewPrivs") == "0"  # docker's default: setuid programs work
    nnp = dock("run", "--rm", "--security-opt", "no-new-privileges", "busybox", "cat", "/proc/self/status",
               check=True).stdout
    assert status_field(nnp, "NoNewPrivs") == "1"


def test_seccomp_profile_in_dockers_format(dock, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                            # only with CAP_SYS_ADMIN, which the container lacks: not applied
                            {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO",
                             "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    proc = dock("run", "--rm", "--security-opt", f"seccomp={tmp_path}/profile.json", "busybox", "sh", "-c",
                "mkdir /x 2>&1; touch /f && chmod 600 /f && echo chmod-ok; grep Seccomp: /proc/self/status")
    lines = proc.stdout.splitlines()
    assert "Operation not permitted" in lines[0] and lines[1] == "chmod-ok" and lines[2].split()[1] == "2"
    unconfined = dock("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
                      "mkdir /x && grep Seccomp: /proc/self/status", check=True).stdout
    assert unconfined.split()[1] == "0"


def test_bad_values_are_refused(dock, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    before = dock("ps", "-aq").stdout
    for args, words in ((["--ulimit", "nofile"], "invalid ulimit argument"),
                        (["--ulimit", "colour=1"], "invalid ulimit argument"),
                        (["--ulimit", "nofile=200:100"], "soft limit must be less than or equal to hard limit"),
                        (["--security-opt", "apparmor=x"], "invalid --security-opt"),
                        (["--security-opt", f"seccomp={tmp_path}/missing.json"], "opening seccomp profile"),
                        (["--security-opt", f"seccomp={tmp_path}/bad.json"], "decoding seccomp profile")):
        proc = dock("run", *args, "busybox", "true")
        assert proc.returncode == 125 and words in proc.stderr and proc.stderr.count("\n") == 1, (args, proc.stderr)
    assert dock("ps", "-aq").stdout == before


def test_default_seccomp_filter_refuses_what_docker_refuses(dock):
    proc = dock("run", "--rm", "busybox", "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true 2>&1; "
                "echo unshare=$?; sh -c 'echo child ok'", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].split()[1] == "2"  # filtered by default, as docker's containers are
    assert "Operation not permitted" in lines[1] and lines[2] == "unshare=1"  # no new user namespace
    assert lines[3] == "child ok"  # ordinary forks and execs work (clone3 answers ENOSYS, libc falls back)
    unconfined = dock("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
                      "unshare -U true && echo unshare-ok", check=True)
    assert unconfined.stdout == "unshare-ok\n"  # the filter, not a capability, refused it
    privileged = dock("run", "--rm", "--privileged", "busybox", "grep", "Seccomp:", "/proc/self/status", check=True)
    assert privileged.stdout.split()[1] == "0"
