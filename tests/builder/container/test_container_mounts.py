"""pydock run --mount (bind, volume, tmpfs) and --tmpfs against real containers: docker's fields, its
refusals (a --mount bind source must exist), and what the container sees."""

from __future__ import annotations

import json

import pytest


pytestmark = pytest.mark.root


def mount_line(output: str, path: str) -> list[str]:
    return next(f for f in (line.split() for line in output.splitlines()) if len(f) > 3 and f[1] == path)


def test_mount_bind_volume_and_tmpfs(dock, tmp_path):
    (tmp_path / "in").write_text("host file\n")
    cid = dock("run", "-d", "--mount", f"type=bind,source={tmp_path},target=/hostdir,readonly",
               "--mount", "source=mvol,target=/vol", "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
               "busybox", "sh", "-c", "cat /hostdir/in; touch /hostdir/x 2>/dev/null || echo ro; echo v > /vol/f; "
               "stat -c %a /scratch; cat /proc/mounts", check=True).stdout.strip()
    assert dock("wait", cid, check=True).stdout == "0\n"
    out = dock("logs", cid, check=True).stdout
    assert out.splitlines()[:3] == ["host file", "ro", "1770"]
    scratch = mount_line(out, "/scratch")
    assert scratch[2] == "tmpfs" and "size=1024k" in scratch[3] and {"nosuid", "nodev", "noexec"} <= set(scratch[3].split(","))
    doc = json.loads(dock("inspect", cid, check=True).stdout)[0]
    kinds = {m["Destination"]: (m["Type"], m["RW"]) for m in doc["Mounts"]}
    assert kinds == {"/hostdir": ("bind", False), "/vol": ("volume", True), "/scratch": ("tmpfs", True)}
    assert [m["Type"] for m in doc["HostConfig"]["Mounts"]] == ["bind", "volume", "tmpfs"]
    assert dock("run", "--rm", "-v", "mvol:/v", "busybox", "cat", "/v/f", check=True).stdout == "v\n"


def test_tmpfs_flag(dock):
    cid = dock("run", "-d", "--tmpfs", "/run:rw,size=2m,exec", "busybox", "sh", "-c",
               "echo 'echo ran' > /run/s; chmod +x /run/s; /run/s; cat /proc/mounts", check=True).stdout.strip()
    dock("wait", cid, check=True)
    out = dock("logs", cid, check=True).stdout
    assert out.splitlines()[0] == "ran"  # exec given: it wins over the noexec default
    run = mount_line(out, "/run")
    assert run[2] == "tmpfs" and "size=2048k" in run[3] and "noexec" not in run[3].split(",")
    doc = json.loads(dock("inspect", cid, check=True).stdout)[0]
    assert doc["HostConfig"]["Tmpfs"] == {"/run": "rw,size=2m,exec"}
    assert doc["Mounts"] == []  # docker lists --tmpfs only in HostConfig


def test_bad_mounts_are_refused_and_leave_nothing(dock, tmp_path):
    before = (dock("ps", "-aq").stdout, dock("volume", "ls", "-q").stdout)
    for spec, words in ((f"type=bind,source={tmp_path}/missing,target=/x", "bind source path does not exist"),
                        ("type=bind,source=rel,target=/x", "must be absolute"),
                        ("type=volume,source=v1", "Target must not be empty"),
                        ("type=nfs,target=/x", "mount type unknown"),
                        ("type=tmpfs,source=x,target=/x", "source must not be specified"),
                        ("target=/x,colour=red", "invalid field 'colour'")):
        proc = dock("run", "--mount", spec, "busybox", "true")
        assert proc.returncode == 125 and words in proc.stderr and proc.stderr.count("\n") == 1, (spec, proc.stderr)
    proc = dock("run", "--tmpfs", "run", "busybox", "true")
    assert proc.returncode == 125 and "must be absolute" in proc.stderr
    proc = dock("run", "--tmpfs", "/x", "-v", "/x", "busybox", "true")
    assert proc.returncode == 125 and "duplicate mount point" in proc.stderr
    assert (dock("ps", "-aq").stdout, dock("volume", "ls", "-q").stdout) == before
