"""pydock version, info, container prune, image prune, history and cp, against real containers: docker's
output formats and exit statuses. One image store per module."""

from __future__ import annotations

import json
import os
import re

import pytest

from builder_support import Pydock
from support import wait_for

pytestmark = pytest.mark.root


def full_id(dock: Pydock, ref: str) -> str:
    return json.loads(dock("inspect", ref, check=True).stdout)[0]["Id"]


def test_version_and_dash_dash_version(dock):
    proc = dock("version", check=True)
    assert proc.stdout.startswith("Client:\n Version:")
    assert "Server: pydock (daemonless)" in proc.stdout
    assert re.search(r"^ pyrunc:\n  Version: +\d+\.\d+\.\d+$", proc.stdout, re.M)
    assert "API version:       none (daemonless)" in proc.stdout
    short = dock("--version", check=True).stdout
    assert re.fullmatch(r"pydock version \d+\.\d+\.\d+\n", short)
    assert short.split()[-1] in proc.stdout


def info_fields(dock: Pydock) -> dict[str, str]:
    out = dock("info", check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def test_info_counts_containers_and_images(dock):
    before = info_fields(dock)
    running = dock("run", "-d", "busybox", "sleep", "60", check=True).stdout.strip()
    stopped = dock("create", "busybox", "true", check=True).stdout.strip()
    try:
        after = info_fields(dock)
        assert int(after["Containers"]) == int(before["Containers"]) + 2
        assert int(after["Running"]) == int(before["Running"]) + 1
        assert int(after["Stopped"]) == int(before["Stopped"]) + 1
        assert after["Paused"] == before["Paused"]
        assert int(after["Images"]) >= 1
        assert after["Pydock Root Dir"] == os.path.abspath(dock.root)
        assert after["Default Runtime"] == "pyrunc"
        assert after["Cgroup Version"] in ("1", "2")
        assert after["Kernel Version"] == os.uname().release
        assert after["Operating System"]
    finally:
        dock("rm", "-f", running, stopped)


def test_errors_of_the_new_verbs_are_one_line(dock):
    proc = dock("info", "--bogus")
    assert proc.returncode == 1 and proc.stderr.startswith("pydock: error: ") and proc.stderr.count("\n") == 1
    proc = dock("container", "prune", "--bogus")
    assert proc.returncode == 125 and proc.stderr.startswith("pydock: error: ") and proc.stderr.count("\n") == 1


def test_container_prune_removes_only_stopped_containers(dock):
    running = dock("run", "-d", "busybox", "sleep", "60", check=True).stdout.strip()
    exited = full_id(dock, dock("run", "-d", "busybox", "sh", "-c", "echo x > /big", check=True).stdout.strip())
    created = dock("create", "busybox", "true", check=True).stdout.strip()
    dock("wait", exited, check=True)
    try:
        proc = dock("container", "prune", input="n\n", check=True)  # declined: nothing goes
        assert "Are you sure you want to continue? [y/N]" in proc.stdout
        assert len(dock("ps", "-aq").stdout.split()) == 3
        proc = dock("container", "prune", "-f", check=True)
        lines = proc.stdout.splitlines()
        assert lines[0] == "Deleted Containers:"
        assert sorted(lines[1:3]) == sorted([exited, created])
        assert lines[3] == "" and re.fullmatch(r"Total reclaimed space: [\d.]+k?B", lines[4])
        assert lines[4] != "Total reclaimed space: 0B"  # /big lived in the exited one's upper dir
        assert dock("ps", "-aq", "--no-trunc").stdout.split() == [running]
        assert not os.path.exists(dock.root / "containers" / exited)
        assert dock("container", "prune", "-f", check=True).stdout == "Total reclaimed space: 0B\n"
    finally:
        dock("rm", "-f", running)


def test_image_prune_dangling_then_all(dock):
    ctr = dock("create", "busybox", "true", check=True).stdout.strip()
    dangling = dock("commit", ctr, check=True).stdout.strip()
    named = dock("commit", ctr, "kept:1", check=True).stdout.strip()
    try:
        proc = dock("image", "prune", "-f", check=True)
        assert proc.stdout.splitlines()[:2] == ["Deleted Images:", f"deleted: {dangling}"]
        assert proc.stdout.splitlines()[-1].startswith("Total reclaimed space: ")
        images = dock("images", "-q", "--no-trunc", check=True).stdout.split()
        assert dangling not in images and named in images
        proc = dock("image", "prune", "-a", "-f", check=True)  # busybox stays: the container uses it
        assert proc.stdout.splitlines()[:3] == ["Deleted Images:", "untagged: kept:1", f"deleted: {named}"]
        assert dock("images", "busybox", "-q", check=True).stdout.strip()
        assert dock("image", "prune", "-f", check=True).stdout == "Total reclaimed space: 0B\n"
    finally:
        dock("rm", "-f", ctr)


def test_history_lists_the_config_history_newest_first(dock, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nENV A=1\nRUN echo hello > /f && "
                                         "echo a-long-command-line-that-docker-cuts-at-45-characters\n")
    dock.build(tmp_path, "-t", "hist:1")
    ctr = dock("create", "hist:1", "true", check=True).stdout.strip()
    committed = dock("commit", "-m", "my comment", ctr, "hist:2", check=True).stdout.strip()
    dock("rm", ctr, check=True)
    try:
        proc = dock("history", "hist:2", check=True)
        lines = proc.stdout.splitlines()
        assert re.match(r"IMAGE +CREATED +CREATED BY +SIZE +COMMENT$", lines[0])
        assert len(lines) >= 1 + 4  # the import, ENV, RUN and the commit
        assert lines[1].startswith(committed.split(":")[1][:12] + " ")
        assert lines[1].rstrip().endswith("my comment") and " ago " in lines[1]
        assert all(line.startswith("<missing> ") for line in lines[2:])
        run_line = next(line for line in lines if "RUN" in line or "echo hello" in line)
        assert "…" in run_line and "characters" not in run_line
        assert not re.search(r"\s0B\s", run_line)  # the RUN made a layer
        env_line = next(line for line in lines if "A=1" in line)
        assert re.search(r"\s0B(\s|$)", env_line)
        full = dock("history", "--no-trunc", "hist:2", check=True).stdout
        assert "a-long-command-line-that-docker-cuts-at-45-characters" in full and committed in full
        quiet = dock("history", "-q", "hist:2", check=True).stdout.splitlines()
        assert quiet[0] == committed.split(":")[1][:12] and set(quiet[1:]) == {"<missing>"}
        assert len(quiet) == len(lines) - 1
        assert dock("history", "-q", "--no-trunc", "hist:2", check=True).stdout.splitlines()[0] == committed
    finally:
        dock("rmi", "hist:2", "hist:1")


def test_history_of_an_unknown_image_is_one_line_exit_1(dock):
    proc = dock("history", "nosuchimage")
    assert proc.returncode == 1 and proc.stderr.startswith("pydock: error: ") and proc.stderr.count("\n") == 1
    assert proc.stdout == ""


def mounts_under(path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(os.fspath(path))]


def test_cp_both_ways_on_a_stopped_container(dock, tmp_path):
    ctr = dock("create", "--name", "cpstopped", "busybox", "cat", "/in/a.txt", "/in/sub/b.txt", "/one",
               check=True).stdout.strip()
    try:
        src = tmp_path / "in"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("A\n")
        (src / "sub" / "b.txt").write_text("B\n")
        (tmp_path / "one").write_text("1\n")
        assert dock("cp", src, "cpstopped:/", check=True).stdout == ""
        dock("cp", tmp_path / "one", "cpstopped:/one", check=True)
        assert mounts_under(dock.root) == []  # unmounted again: the container is not running
        assert dock("start", "-a", "cpstopped", check=True).stdout == "A\nB\n1\n"
        out = tmp_path / "out"
        out.mkdir()
        dock("cp", "cpstopped:/in", out, check=True)  # into an existing directory
        assert (out / "in" / "sub" / "b.txt").read_text() == "B\n"
        dock("cp", "cpstopped:/etc/passwd", out / "pw", check=True)  # to a new name
        assert (out / "pw").read_text().startswith("root:")
        proc = dock("cp", "cpstopped:/nonexistent", out)
        assert proc.returncode == 125 and proc.stderr.count("\n") == 1
        assert "Could not find the file /nonexistent in container cpstopped" in proc.stderr
        assert mounts_under(dock.root) == []
    finally:
        dock("rm", "-f", ctr)


def test_cp_with_a_running_container_and_tar_streams(dock, tmp_path):
    import io
    import tarfile

    ctr = dock("run", "-d", "busybox", "sh", "-c", "echo inside > /made; sleep 60", check=True).stdout.strip()
    try:
        assert wait_for(lambda: dock("exec", ctr, "cat", "/made").stdout == "inside\n")
        dock("cp", f"{ctr[:12]}:/made", tmp_path / "made", check=True)
        assert (tmp_path / "made").read_text() == "inside\n"
        stream = dock_bytes(dock, "cp", f"{ctr}:/made", "-")
        with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
            assert tar.getnames() == ["made"] and tar.extractfile("made").read() == b"inside\n"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("streamed")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"hi\n"))
        dock_bytes(dock, "cp", "-", f"{ctr}:/tmp", input=buf.getvalue())
        assert dock("exec", ctr, "cat", "/tmp/streamed", check=True).stdout == "hi\n"
        # frozen while copying (docker's answer to CVE-2018-15664), running again afterwards
        assert dock("inspect", "-f", "{{.State.Status}}", ctr, check=True).stdout.strip() == "running"
        (tmp_path / "host").write_text("h\n")
        dock("cp", tmp_path / "host", f"{ctr}:/tmp/", check=True)
        assert dock("exec", ctr, "cat", "/tmp/host", check=True).stdout == "h\n"
    finally:
        dock("rm", "-f", ctr)


def dock_bytes(dock: Pydock, *args, input: bytes | None = None) -> bytes:
    import subprocess

    from support import PYDOCK

    proc = subprocess.run([*PYDOCK, "--root", str(dock.root), *map(str, args)], input=input,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cp_never_follows_a_container_symlink_onto_the_host(dock, tmp_path):
    host_dir = tmp_path / "hostonly"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host secret\n")
    dock("run", "--name", "cplinks", "busybox", "sh", "-c",
         f"ln -s {host_dir} /escape && ln -s {host_dir}/secret /leak && mkdir -p {host_dir}", check=True)
    try:
        # out: the link resolves inside the container (where there is no secret), or is copied as a link
        proc = dock("cp", "cplinks:/escape/secret", tmp_path / "got")
        assert proc.returncode == 125 and not (tmp_path / "got").exists()
        dock("cp", "cplinks:/leak", tmp_path / "leak", check=True)
        assert (tmp_path / "leak").is_symlink()
        # in: writing through the links lands inside the container, never in the host's directory
        (tmp_path / "payload").write_text("payload\n")
        dock("cp", tmp_path / "payload", "cplinks:/escape/", check=True)
        dock("cp", tmp_path / "payload", "cplinks:/leak", check=True)
        assert sorted(os.listdir(host_dir)) == ["secret"]
        assert (host_dir / "secret").read_text() == "host secret\n"
        proc = dock("cp", "cplinks:/leak", "-")
        assert proc.returncode == 0
    finally:
        dock("rm", "-f", "cplinks")


def test_cp_usage_errors(dock, tmp_path):
    for args, message in ((["cp", tmp_path, tmp_path / "x"], "at least one container"),
                          (["cp", "a:/x", "b:/y"], "between containers"),
                          (["cp", tmp_path, "nosuchcontainer:/"], "No such container")):
        proc = dock(*args)
        assert proc.returncode == 125 and proc.stderr.startswith("pydock: error: ") and message in proc.stderr
        assert proc.stderr.count("\n") == 1
    assert mounts_under(dock.root) == []


def test_privileged_grants_everything_docker_does(dock):
    import stat

    script = "grep CapEff /proc/self/status; cat /proc/self/mountinfo; echo ---; ls /dev"

    def inside(*flags):
        out = dock("run", "--rm", *flags, "busybox", "sh", "-c", script, check=True).stdout
        head, _, devs = out.partition("---\n")
        lines = head.splitlines()
        mounts = {line.split()[4]: line.split()[5].split(",")[0] for line in lines[1:]}
        return lines[0].split()[1], mounts, set(devs.split())

    with open("/proc/self/status") as f:
        bounding = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    host_devs = {n for n in os.listdir("/dev")
                 if stat.S_ISCHR(os.lstat(f"/dev/{n}").st_mode) and n not in ("console",)}
    caps, mounts, devs = inside()
    assert caps != bounding and mounts["/sys"] == "ro" and "/proc/sys" in mounts
    assert host_devs - devs
    caps, mounts, devs = inside("--privileged")
    assert caps == bounding
    assert mounts["/sys"] == "rw"
    assert not {"/proc/sys", "/proc/kcore", "/proc/sysrq-trigger", "/sys/firmware"} & set(mounts)
    assert host_devs <= devs
    ctr = dock("create", "--privileged", "--name", "priv", "busybox", "true", check=True).stdout.strip()
    try:
        assert json.loads(dock("inspect", ctr, check=True).stdout)[0]["HostConfig"]["Privileged"] is True
    finally:
        dock("rm", ctr)
