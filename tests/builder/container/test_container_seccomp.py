"""The default seccomp profile is docker's allowlist: what a container's calls get with it, with the
capabilities that give groups back, without it (unconfined, --privileged), and with a profile FILE in
docker's format. A small C probe (syscall_probe.c, built static here) makes each call and prints its errno."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

PROBE_SOURCE = Path(__file__).with_name("syscall_probe.c")


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe")
    subprocess.run(["gcc", "-static", "-O1", "-o", out / "probe", PROBE_SOURCE], check=True)
    return out


@pytest.fixture(scope="module")
def probe(dock, probe_dir):
    """probe(*run_flags, calls=[...]) -> {call: "OK" or errno name}, from inside a new container."""
    def run(*flags: str, calls: list[str]) -> dict[str, str]:
        out = dock("run", "--rm", "-v", f"{probe_dir}:/probe:ro", *flags, "busybox", "/probe/probe", *calls,
                   check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines())
    return run


REFUSED = ["keyctl", "add_key", "io_uring_setup", "unshare_user", "personality_bsd", "socket_vsock",
           "get_mempolicy", "kcmp"]


def test_default_profile_allows_ordinary_calls_and_refuses_the_rest(probe):
    got = probe(calls=["getppid", "fork", "socket_inet", "personality_linux", "clone3", "clone_newuts",
                       "mount", "swapon", *REFUSED])
    assert got["getppid"] == got["fork"] == got["socket_inet"] == got["personality_linux"] == "OK"
    assert got["clone3"] == "ENOSYS"  # libc falls back to clone, whose flags the filter can read
    for call in ["clone_newuts", "mount", "swapon", *REFUSED]:
        assert got[call] == "EPERM", (call, got)


def test_the_filter_not_the_kernel_refused(probe):
    """Without the filter the same calls pass (whatever the kernel then answers, it is not EPERM)."""
    for flags in (["--security-opt", "seccomp=unconfined"], ["--privileged"]):
        got = probe(*flags, calls=["keyctl", "add_key", "personality_bsd", "get_mempolicy", "kcmp", "unshare_user"])
        assert "EPERM" not in got.values(), (flags, got)


def test_capabilities_give_their_groups_back(probe):
    admin = probe("--cap-add", "SYS_ADMIN", calls=["mount", "clone3", "clone_newuts", "unshare_user", "keyctl"])
    assert admin == {"mount": "OK", "clone3": "OK", "clone_newuts": "OK", "unshare_user": "OK", "keyctl": "EPERM"}
    assert probe("--cap-add", "SYS_PTRACE", calls=["kcmp"]) == {"kcmp": "OK"}
    assert probe("--cap-add", "SYS_NICE", calls=["get_mempolicy"]) == {"get_mempolicy": "OK"}
    every = probe("--cap-add", "ALL", calls=["mount", "kcmp", "keyctl"])
    assert every == {"mount": "OK", "kcmp": "OK", "keyctl": "EPERM"}  # all capabilities, still filtered


def test_cap_add_all_and_privileged_capabilities_as_docker(dock):
    def cap_eff(*flags: str) -> int:
        out = dock("run", "--rm", *flags, "busybox", "grep", "CapEff", "/proc/self/status", check=True).stdout
        return int(out.split()[1], 16)
    everything = cap_eff("--privileged")
    assert cap_eff("--cap-add", "ALL") == everything
    assert cap_eff("--cap-add", "ALL", "--cap-drop", "CHOWN") == everything & ~1
    assert cap_eff("--privileged", "--cap-drop", "CHOWN") == everything  # docker ignores --cap-drop there


def test_profile_file_in_dockers_format(probe, probe_dir, dock, tmp_path):
    eacces, einval = 13, 22
    rules = [
        # refused unless the container lacks CAP_CHOWN
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": eacces, "excludes": {"caps": ["CAP_CHOWN"]}},
        # refused only with both capabilities
        {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": einval,
         "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_CHOWN"]}},
        # an architecture this machine is not: never applies
        {"name": "getgid", "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["s390x"]}},
        {"names": ["no_such_call_on_any_kernel"], "action": "SCMP_ACT_ERRNO"},
    ]
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules,
               "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                           {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    opt = ["--security-opt", f"seccomp={path}"]
    calls = ["getppid", "getuid", "getgid", "keyctl"]
    assert probe(*opt, calls=calls) == {"getppid": "OK", "getuid": "OK", "getgid": "OK", "keyctl": "OK"}
    assert probe(*opt, "--cap-drop", "CHOWN", calls=calls)["getppid"] == "EACCES"
    assert probe(*opt, "--cap-add", "SYS_ADMIN", calls=calls)["getuid"] == "EINVAL"
    # an explicit profile applies even to --privileged, as in docker
    assert probe(*opt, "--privileged", "--cap-drop", "CHOWN", calls=calls)["getuid"] == "EINVAL"
    # the profile's content is kept at create, as docker's CLI sends it: the file may go afterwards
    cid = dock("create", *opt, "-v", f"{probe_dir}:/probe:ro", "--cap-drop", "CHOWN", "busybox", "/probe/probe",
               "getppid", check=True).stdout.strip()
    path.unlink()
    assert dock("start", "-a", cid).stdout == "getppid=EACCES\n"
    kept = json.loads(dock("inspect", cid, check=True).stdout)[0]["HostConfig"]["SecurityOpt"]
    assert kept == ["seccomp=" + json.dumps(profile, separators=(",", ":"))]
    dock("rm", cid, check=True)


@pytest.mark.parametrize("profile, words", [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
      "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "both 'architectures' and 'archMap'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "getpid", "names": ["getppid"],
                                                       "action": "SCMP_ACT_ERRNO"}]}, "both 'name' and 'names'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                                                       "excludes": {"caps": ["CAP_CHOWN"]},
                                                       "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "index"),
])
def test_bad_profile_is_one_line_and_leaves_nothing(dock, tmp_path, profile, words):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(profile))
    before = dock("ps", "-aq").stdout
    proc = dock("run", "--security-opt", f"seccomp={path}", "busybox", "true")
    assert proc.returncode == 125 and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert dock("ps", "-aq").stdout == before



@pytest.mark.parametrize("path, words", [("/dev/zero", "not a regular file"), ("/tmp", "not a regular file")])
def test_a_profile_path_that_is_no_file_is_refused_without_reading_it(dock, path, words):
    before = dock("ps", "-aq").stdout
    proc = dock("run", "--security-opt", f"seccomp={path}", "busybox", "true", timeout=30)
    assert proc.returncode == 125 and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert dock("ps", "-aq").stdout == before