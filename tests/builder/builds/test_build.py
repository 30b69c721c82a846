"""pydock build end to end: real images from a busybox base, RUN through our runtime, checked with umoci."""

from __future__ import annotations

import json
import os
import stat

import pytest

from builder_support import Pydock, image_config, layer_names, make_context, unpack

pytestmark = pytest.mark.root


def _runs(out: str) -> int:
    return out.count(" ---> Running in ")


def test_basic_build_files_config_and_history(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
ARG WHO=world
ENV GREETING="hi there" OTHER=$WHO
WORKDIR /app
COPY hello.txt .
RUN echo "$GREETING $WHO" > out.txt && cat hello.txt
CMD ["cat", "/app/out.txt"]
""", {"hello.txt": "hello\n"})
    proc = pydock.build(ctx, "-t", "test:1", "-o", f"type=oci,dest={tmp_path}/layout")
    assert "Step 6/7 : RUN" in proc.stdout and "hello\n" in proc.stdout
    assert "Successfully tagged test:1" in proc.stdout
    rootfs, runtime = unpack(tmp_path / "layout", "test:1", tmp_path / "unpacked")
    assert (rootfs / "app" / "out.txt").read_text() == "hi there world\n"
    assert (rootfs / "app" / "hello.txt").read_text() == "hello\n"
    assert runtime["process"]["args"] == ["cat", "/app/out.txt"]
    assert runtime["process"]["cwd"] == "/app"
    manifest, config = image_config(tmp_path / "layout", "test:1")
    cc = config["config"]
    assert "GREETING=hi there" in cc["Env"] and "OTHER=world" in cc["Env"]
    assert cc["WorkingDir"] == "/app"
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == 4
    history = config["history"]
    created_by = [h["created_by"] for h in history]
    assert created_by[-1] == 'CMD ["cat" "/app/out.txt"]'
    assert created_by[-2] == 'RUN |1 WHO=world /bin/sh -c echo "$GREETING $WHO" > out.txt && cat hello.txt # buildkit'
    assert created_by[-3] == "COPY hello.txt . # buildkit"
    assert sum(1 for h in history if not h.get("empty_layer")) == 4
    # the image is in the store too, and runs with our runtime's bundle
    images = pydock("images", check=True).stdout
    assert "test" in images and "busybox" in images


def test_arg_scoping_and_build_args(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
ARG BASE=busybox
ARG VERSION=1
FROM $BASE
ARG VERSION
ARG LOCAL=default
RUN echo "v=$VERSION local=$LOCAL arch=$TARGETARCH" > /args.txt
ARG TARGETARCH
ARG TARGETPLATFORM
RUN echo "arch=$TARGETARCH plat=$TARGETPLATFORM" > /plat.txt
""")
    proc = pydock.build(ctx, "--build-arg", "VERSION=2", "--build-arg", "UNUSED=x", "-t", "args",
                        "-o", f"type=oci,dest={tmp_path}/layout")
    assert "UNUSED" in proc.stderr and "not consumed" in proc.stderr
    rootfs, _ = unpack(tmp_path / "layout", "args", tmp_path / "u")
    assert (rootfs / "args.txt").read_text() == "v=2 local=default arch=\n"
    arch = (rootfs / "plat.txt").read_text()
    assert arch.startswith("arch=") and "plat=linux/" in arch and arch != "arch= plat=\n"


def test_cache_reuse_touch_and_content_change(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
RUN echo first > /first
COPY data.txt /data.txt
RUN cat /data.txt > /copy.txt
""", {"data.txt": "one\n"})
    first = pydock.build(ctx, "-t", "c").stdout
    assert _runs(first) == 2
    first_id = pydock("inspect", "-f", "{{.Id}}", "c", check=True).stdout
    again = pydock.build(ctx, "-t", "c").stdout
    assert _runs(again) == 0 and again.count("Using cache") == 3
    # as with BuildKit, a fully cached rebuild gives the very same image
    assert pydock("inspect", "-f", "{{.Id}}", "c", check=True).stdout == first_id
    os.utime(ctx / "data.txt", (1, 1))
    assert _runs(pydock.build(ctx, "-t", "c").stdout) == 0
    (ctx / "data.txt").write_text("two\n")
    changed = pydock.build(ctx, "-t", "c").stdout
    assert _runs(changed) == 1 and changed.count("Using cache") == 1
    assert _runs(pydock.build(ctx, "--no-cache", "-t", "c").stdout) == 2
    quiet = pydock.build(ctx, "-q", "-t", "c").stdout
    assert quiet.strip().startswith("sha256:") and len(quiet.strip().splitlines()) == 1


def test_multistage_target_and_copy_from(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox AS base
RUN echo base > /base.txt

FROM base AS builder
RUN mkdir -p /out && echo built > /out/artifact && chmod 4755 /out/artifact

FROM busybox AS broken
RUN echo never-built && exit 1

FROM scratch
COPY --from=builder /out/ /dist/
COPY --from=0 /base.txt /
COPY --from=busybox /bin/busybox /bin/busybox
""")
    proc = pydock.build(ctx, "-t", "final", "-o", f"type=oci,dest={tmp_path}/layout")
    assert "never-built" not in proc.stdout
    rootfs, _ = unpack(tmp_path / "layout", "final", tmp_path / "u")
    assert (rootfs / "dist" / "artifact").read_text() == "built\n"
    assert stat.S_IMODE(os.lstat(rootfs / "dist" / "artifact").st_mode) == 0o4755
    assert (rootfs / "base.txt").read_text() == "base\n"
    assert (rootfs / "bin" / "busybox").stat().st_size > 100000
    # --target stops at the named stage and skips what it does not need
    proc = pydock.build(ctx, "--target", "builder", "-t", "b", "-o", f"type=oci,dest={tmp_path}/l2")
    assert "never-built" not in proc.stdout and "COPY --from" not in proc.stdout
    rootfs, _ = unpack(tmp_path / "l2", "b", tmp_path / "u2")
    assert (rootfs / "base.txt").exists() and (rootfs / "out" / "artifact").exists()
    bad = pydock.build(ctx, "--target", "nosuch", check=False)
    assert bad.returncode == 1 and "nosuch" in bad.stderr


def test_dockerignore(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY . /ctx/\n", {
        ".dockerignore": "*.log\n!keep.log\nsecret/\n",
        "a.txt": "a", "debug.log": "x", "keep.log": "k", "secret/key": "s", "sub/b.txt": "b",
    })
    pydock.build(ctx, "-t", "ign", "-o", f"type=oci,dest={tmp_path}/layout")
    rootfs, _ = unpack(tmp_path / "layout", "ign", tmp_path / "u")
    names = sorted(os.listdir(rootfs / "ctx"))
    assert names == [".dockerignore", "Dockerfile", "a.txt", "keep.log", "sub"]
    bad = make_context(tmp_path / "ctx2", "FROM busybox\nCOPY debug.log /\n",
                       {".dockerignore": "*.log\n", "debug.log": "x"})
    proc = pydock.build(bad, check=False)
    assert proc.returncode == 1
    assert "Dockerfile:2: COPY failed: file not found in build context: debug.log" in proc.stderr


def test_whiteouts_and_opaque_dirs(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
RUN mkdir -p /d/sub && echo x > /d/sub/f && echo y > /gone
RUN rm /gone && rm -rf /d && mkdir /d && echo new > /d/only
""")
    pydock.build(ctx, "-t", "wh", "-o", f"type=oci,dest={tmp_path}/layout")
    rootfs, _ = unpack(tmp_path / "layout", "wh", tmp_path / "u")
    assert not (rootfs / "gone").exists()
    assert os.listdir(rootfs / "d") == ["only"]
    manifest, _ = image_config(tmp_path / "layout", "wh")
    names = layer_names(tmp_path / "layout", manifest["layers"][-1]["digest"])
    assert any(n.endswith(".wh.gone") for n in names)
    assert any(n.endswith("d/.wh..wh..opq") for n in names)


def test_run_failure_names_step_and_leaves_store_unchanged(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo hi > /x\nRUN exit 3\n")
    before = pydock.snapshot()
    proc = pydock.build(ctx, "-t", "broken", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        'pydock: error: Dockerfile:3: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3')
    assert pydock.snapshot() == before
    assert "broken" not in pydock("images").stdout
    assert not [l for l in open("/proc/self/mountinfo") if str(pydock.root) in l]


@pytest.mark.parametrize("dockerfile,files,message", [
    ("FROM busybox\nCOPY missing.txt /\n", {}, "Dockerfile:2: COPY failed: file not found in build context: missing.txt"),
    ("FROM busybox\nCOPY ../outside /\n", {}, "Dockerfile:2: COPY failed: forbidden path outside the build context"),
    ("FROM busybox\nCOPY link /\n", {"link": None}, "outside the build context"),
    # on a closed loopback port: FROM of a missing image tries to pull it, and tests stay off the network
    ("FROM 127.0.0.1:1/nosuchimage:1\nRUN true\n", {}, "Dockerfile:1: FROM failed: image not found: 127.0.0.1:1/nosuchimage:1"),
    ("FROM busybox\nBOGUS x\n", {}, "Dockerfile:2:"),
    ("FROM busybox\nCOPY --chown=nobody_here a.txt /\n", {"a.txt": "a"}, "Dockerfile:2: COPY failed: unable to find user nobody_here"),
    ("FROM busybox\nCOPY --bogus=1 a.txt /\n", {"a.txt": "a"}, "Dockerfile:2:"),
    ("FROM busybox\nRUN echo a\nCOPY a.txt b.txt /dest\n", {"a.txt": "a", "b.txt": "b"}, "must be a directory and end with a /"),
])
def test_bad_input_errors_leave_store_unchanged(pydock, tmp_path, dockerfile, files, message):
    ctx = tmp_path / "ctx"
    files = dict(files)
    link = "link" in files and files.pop("link") is None
    make_context(ctx, dockerfile, files)
    if link:
        os.symlink("/etc/passwd", ctx / "link")
    before = pydock.snapshot()
    proc = pydock.build(ctx, "-t", "bad", check=False)
    assert proc.returncode == 1, proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("pydock: error: ") and message in last
    assert pydock.snapshot() == before


def test_missing_context_or_dockerfile(pydock, tmp_path):
    proc = pydock("build", tmp_path / "nope")
    assert proc.returncode == 1 and "pydock: error:" in proc.stderr and "not found" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = pydock("build", tmp_path / "empty")
    assert proc.returncode == 1 and "Dockerfile" in proc.stderr
    proc = pydock("build", "--bogus", tmp_path / "empty")
    assert proc.returncode == 1 and proc.stderr.startswith("pydock: error:")


def test_malicious_tar_in_add_is_refused(pydock, tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nADD evil.tar /x/\n", {"evil.tar": buf.getvalue()})
    before = pydock.snapshot()
    proc = pydock.build(ctx, check=False)
    assert proc.returncode == 1 and "Dockerfile:2: ADD failed" in proc.stderr
    assert pydock.snapshot() == before


def test_source_date_epoch_gives_identical_manifests(tmp_path, busybox_tar):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo hi > /hi\nCOPY f /f\nLABEL a=b\n", {"f": "f"})
    digests = []
    for i in range(2):
        p = Pydock(tmp_path / f"store{i}")
        p("import", busybox_tar, "busybox:latest", check=True, env={"SOURCE_DATE_EPOCH": "1700000000"})
        p.build(ctx, "-t", "r", "-o", f"type=oci,dest={tmp_path}/out{i}", env={"SOURCE_DATE_EPOCH": "1700000000"})
        index = json.loads((tmp_path / f"out{i}" / "index.json").read_text())
        digests.append(index["manifests"][0]["digest"])
        _, config = image_config(tmp_path / f"out{i}", "r")
        assert config["created"] == "2023-11-14T22:13:20Z"
    assert digests[0] == digests[1]


def test_network_none_has_only_loopback_and_host_sees_more(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ' && echo && hostname && cat /etc/hosts\n")
    out = pydock.build(ctx, "--no-cache").stdout
    assert "lo \n" in out and "buildkitsandbox" in out
    host_ifaces = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:])
    out = pydock.build(ctx, "--no-cache", "--network", "host").stdout
    assert " ".join(host_ifaces) + " \n" in out
