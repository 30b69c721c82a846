"""docker build's flags beyond the Dockerfile: --add-host, --iidfile, --label, --progress, and the
filesystem outputs (-o type=local|tar, -o DIR, -o -), which store no image."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import tarfile
import termios

import pytest

from builder_support import make_context
from support import PYDOCK


def test_add_host_reaches_run_steps_and_their_cache_key(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN grep -v localhost /etc/hosts > /hosts\n")
    pydock.build(ctx, "-t", "h1", "--add-host", "db.internal:10.9.8.7", "--add-host", "v6host:fd00::17")
    assert pydock("run", "--rm", "h1", "cat", "/hosts", check=True).stdout == \
        "10.9.8.7\tdb.internal\nfd00::17\tv6host\n"
    # another host list is another step: not taken from the cache
    again = pydock.build(ctx, "-t", "h2", "--add-host", "db.internal:10.9.8.8")
    assert "Using cache" not in again.stdout
    assert pydock("run", "--rm", "h2", "cat", "/hosts", check=True).stdout == "10.9.8.8\tdb.internal\n"


@pytest.mark.parametrize("value,message", [
    ("db", "bad format for add-host: 'db'"),
    ("db:10.1.2", "invalid IP address in add-host: '10.1.2'"),
    ("db:host-gateway", "host-gateway is not supported"),
])
def test_add_host_bad_values(pydock, tmp_path, value, message):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n")
    proc = pydock.build(ctx, "--add-host", value, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_iidfile_and_labels(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nLABEL from.file=1 both=file\n")
    pydock.build(ctx, "-t", "lab", "--iidfile", tmp_path / "iid", "--label", "both=flag", "--label", "k=v=w")
    image_id = (tmp_path / "iid").read_text()
    listed = pydock("images", "--no-trunc", "lab", check=True).stdout
    assert image_id.startswith("sha256:") and image_id in listed
    labels = json.loads(pydock("inspect", "-f", "{{json .Config.Labels}}", "lab", check=True).stdout)
    assert labels == {"from.file": "1", "both": "flag", "k": "v=w"}


def test_progress_plain_and_quiet(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo from-the-step\n")
    plain = pydock.build(ctx, "--progress=plain")
    assert "Step 2/2 : RUN echo from-the-step" in plain.stdout and "from-the-step\n" in plain.stdout
    for flags in (["--progress=quiet"], ["-q"]):
        quiet = pydock.build(ctx, *flags, "--no-cache")
        assert quiet.stdout.startswith("sha256:") and quiet.stdout.count("\n") == 1, quiet.stdout
    bad = pydock.build(ctx, "--progress=fancy", check=False)
    assert bad.returncode == 1 and "invalid choice: 'fancy'" in bad.stderr


def _run_on_terminal(args: list[str]) -> tuple[str, str, int]:
    """Run with stderr on a pty (80 columns); returns (stdout, what the terminal got, exit status)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    terminal = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    os.close(master)
    stdout = proc.stdout.read().decode()
    return stdout, terminal.decode(errors="replace"), proc.wait()


@pytest.mark.parametrize("mode", ["tty", "auto"])
def test_progress_tty_view(pydock, tmp_path, mode):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo line-one; sleep 0.3; echo line-two >&2\n"
                                         "COPY Dockerfile /d\n")
    stdout, terminal, status = _run_on_terminal(
        [*PYDOCK, "--root", str(pydock.root), "build", f"--progress={mode}", "-t", "tty", str(ctx)])
    assert status == 0, terminal
    assert stdout == ""  # the view is all on the terminal (stderr), as BuildKit's
    # the step in progress on a bar ("\r" redraws it), each step kept with its time, RUN output above the bar
    assert "\r=> [2/3] RUN echo line-one" in terminal
    assert "   line-one\r\n" in terminal and "   line-two\r\n" in terminal
    finished = [line.rsplit("\r", 1)[-1] for line in terminal.split("\r\n")]
    assert [line.split("  ")[0] for line in finished if line.startswith("=> ")] == [
        "=> [1/3] FROM busybox", "=> [2/3] RUN echo line-one; sleep 0.3; echo line-two >&2",
        "=> [3/3] COPY Dockerfile /d"]
    assert "Successfully tagged tty:latest" in terminal
    cached, terminal, _ = _run_on_terminal([*PYDOCK, "--root", str(pydock.root), "build", "--progress=tty", str(ctx)])
    assert "=> [2/3] RUN echo line-one; sleep 0.3; echo line-two >&2  CACHED" in terminal
    bad = make_context(tmp_path / "bad", "FROM busybox\nRUN echo failing; exit 3\n")
    _, terminal, status = _run_on_terminal([*PYDOCK, "--root", str(pydock.root), "build", "--progress=tty", str(bad)])
    assert status == 1 and "   failing\r\n" in terminal
    assert re.search(r"=> \[2/2\] RUN echo failing; exit 3  ERROR after \d+\.\ds\r\n", terminal)
    assert "pydock: error: Dockerfile:2: process" in terminal


def _tree(root) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            out[rel] = "dir" if os.path.isdir(p) and not os.path.islink(p) else \
                ("link:" + os.readlink(p) if os.path.islink(p) else open(p).read())
    return out


def test_output_local_is_the_final_stage_and_stores_no_image(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox AS build
RUN mkdir -p /out/sub && echo artifact > /out/sub/a && echo gone > /out/gone && ln -s sub/a /out/link
RUN rm /out/gone
FROM scratch
COPY --from=build /out /
""")
    before = pydock("images", "-q", check=True).stdout
    proc = pydock.build(ctx, "-t", "notstored", "-o", f"type=local,dest={tmp_path}/out")
    assert f"Successfully exported {tmp_path}/out" in proc.stdout
    assert _tree(tmp_path / "out") == {"sub": "dir", "sub/a": "artifact\n", "link": "link:sub/a"}
    # as BuildKit: with only a filesystem output there is no image, and -t names nothing
    assert pydock("images", "-q", check=True).stdout == before
    assert pydock("inspect", "notstored").returncode != 0
    # -o DIR is type=local; the whiteout of a deleted file is honoured (the busybox stage exported)
    pydock.build(ctx, "--target", "build", "-o", tmp_path / "stage")
    assert (tmp_path / "stage" / "out" / "sub" / "a").read_text() == "artifact\n"
    assert not (tmp_path / "stage" / "out" / "gone").exists() and (tmp_path / "stage" / "bin" / "busybox").exists()


def test_output_tar_to_a_file_and_stdout(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY a /dir/a\nCOPY b /b\n", {"a": "AAA", "b": "BB"})
    proc = pydock.build(ctx, "-q", "-o", f"type=tar,dest={tmp_path}/fs.tar", "--iidfile", tmp_path / "iid")
    assert proc.stdout == "\n" and (tmp_path / "iid").read_text() == ""  # no image: an empty ID, as docker
    with tarfile.open(tmp_path / "fs.tar") as tar:
        assert sorted(tar.getnames()) == ["b", "dir", "dir/a"]
        assert tar.extractfile("dir/a").read() == b"AAA"
    # "-" (or type=tar,dest=-): the tar is stdout, the progress goes to stderr
    for flag in ("-", "type=tar,dest=-"):
        raw = subprocess.run([*PYDOCK, "--root", str(pydock.root), "build", "-o", flag, str(ctx)],
                             capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(raw.stdout)) as tar:
            assert sorted(tar.getnames()) == ["b", "dir", "dir/a"]
        assert b"Step 3/3 : COPY b /b" in raw.stderr


@pytest.mark.parametrize("flag,message", [
    ("type=bogus,dest=x", "unsupported output type 'bogus'"),
    ("type=local", "needs dest="),
    ("type=local,dest=-", "type=local needs a directory"),
])
def test_output_bad_values(pydock, tmp_path, flag, message):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n")
    proc = pydock.build(ctx, "-o", flag, check=False)
    assert proc.returncode == 1 and message in proc.stderr


def test_run_step_resource_flags(pydock, tmp_path):
    parent = f"pydock-test-{os.getpid()}"
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
ARG PARENT
RUN (ulimit -Sn; ulimit -Hn; df -k /dev/shm | tail -1; \\
     cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \\
     grep -c "/$PARENT/pydock-build-" /proc/self/cgroup) > /limits
""")
    try:
        pydock.build(ctx, "-t", "lim", "--build-arg", f"PARENT={parent}", "--ulimit", "nofile=100:200",
                     "--shm-size", "32m", "-m", "96m", "--memory-swap", "-1", "--cpu-shares", "512",
                     "--cgroup-parent", parent)
    finally:
        for d in [f"/sys/fs/cgroup/{parent}"] + [f"/sys/fs/cgroup/{c}/{parent}" for c in os.listdir("/sys/fs/cgroup")]:
            if os.path.isdir(d):
                os.rmdir(d)  # the step's own cgroup is gone; its parent stays, as with runc
    nofile_soft, nofile_hard, shm, memory, in_parent = \
        pydock("run", "--rm", "lim", "cat", "/limits", check=True).stdout.strip().split("\n")
    assert (nofile_soft, nofile_hard) == ("100", "200")
    assert shm.split()[1] == str(32 * 1024)
    assert memory == str(96 * 1024 * 1024)
    assert int(in_parent) >= 1


@pytest.mark.parametrize("flags,message", [
    (["--ulimit", "nofile=200:100"], "soft limit must be less than or equal to hard limit"),
    (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
    (["-m", "1m"], "minimum memory limit allowed is 6MB"),
    (["--memory-swap", "1g"], "always set the memory limit"),
    (["--shm-size", "lots"], "invalid --shm-size 'lots'"),
    (["--cpuset-cpus", "0-x"], "invalid --cpuset-cpus"),
    (["--squash"], "--squash is not supported"),
    (["--security-opt", "seccomp=unconfined"], "--security-opt is not supported for builds"),
    (["--isolation", "hyperv"], "unsupported isolation 'hyperv'"),
    (["--attest", "type=sbom"], "--attest type=sbom: attestations (SBOM, provenance) are not supported"),
    (["--provenance", "mode=max"], "provenance attestations are not supported"),
    (["--check"], "--call check: build methods other than build are not supported"),
    (["--allow", "device"], "entitlements other than network.host and security.insecure are not supported"),
    (["--build-context", "x=/tmp"], "named build contexts are not supported"),
    (["--push"], "--push needs a name to push to"),
    (["--no-cache-filter", "nosuch"], "no stage named 'nosuch'"),
])
def test_refused_build_flags(pydock, tmp_path, flags, message):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN true\n")
    before = pydock.snapshot()
    proc = pydock.build(ctx, *flags, check=False)
    assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert pydock.snapshot() == before


def test_flags_with_nothing_to_do_are_accepted(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN true\n")
    pydock.build(ctx, "--rm", "--force-rm", "--compress", "--disable-content-trust", "--isolation", "default",
                 "--provenance=false", "--sbom=false", "--allow", "network.host", "--builder", "default")


def test_metadata_file_load_and_no_cache_filter(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox AS base\nRUN echo base > /base\n"
                                         "FROM base AS app\nRUN echo app > /app\n")
    pydock.build(ctx, "-t", "meta", "--metadata-file", tmp_path / "meta.json")
    meta = json.loads((tmp_path / "meta.json").read_text())
    inspected = json.loads(pydock("inspect", "meta", check=True).stdout)[0]
    assert meta["containerimage.config.digest"] == inspected["Id"]
    assert meta["containerimage.digest"] == meta["containerimage.descriptor"]["digest"]
    assert meta["image.name"] == "docker.io/library/meta:latest"
    # --no-cache-filter: only the stages named are built again
    proc = pydock.build(ctx, "--no-cache-filter", "app")
    assert proc.stdout.count("Using cache") == 1 and "Step 2/4 : RUN echo base > /base\n ---> Using cache" in proc.stdout
    # --load: a filesystem output and the image in the store too
    pydock.build(ctx, "-t", "loaded", "--load", "-o", tmp_path / "fs")
    assert (tmp_path / "fs" / "app").read_text() == "app\n"
    assert pydock("run", "--rm", "loaded", "cat", "/app", check=True).stdout == "app\n"
