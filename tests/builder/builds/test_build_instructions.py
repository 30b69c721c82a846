"""Every Dockerfile instruction's effect on the image, checked in the OCI output with umoci."""

from __future__ import annotations

import http.server
import io
import os
import stat
import tarfile
import threading
import hashlib

import pytest

from builder_support import image_config, make_context, unpack

pytestmark = pytest.mark.root


def _build(pydock, tmp_path, dockerfile, files=None, *args, name="img"):
    ctx = make_context(tmp_path / "ctx", dockerfile, files)
    proc = pydock.build(ctx, "-t", name, "-o", f"type=oci,dest={tmp_path}/layout", *args)
    rootfs, runtime = unpack(tmp_path / "layout", name, tmp_path / "unpacked")
    _, config = image_config(tmp_path / "layout", name)
    return proc, rootfs, runtime, config


def test_metadata_instructions(pydock, tmp_path):
    _, _, runtime, config = _build(pydock, tmp_path, """\
FROM busybox
MAINTAINER someone <a@b.c>
LABEL version="1.0" description="a test" multi.word="x y"
ENV A=1
ENV B=${A}2 C="$A 3"
EXPOSE 80 443/udp 8000-8001
VOLUME ["/data", "/logs"]
VOLUME /more
USER 1000:1000
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD wget -q -O- http://localhost/ || exit 1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT echo entry
ONBUILD RUN echo triggered > /onbuild.txt
""", None, "--label", "extra=yes")
    cc = config["config"]
    assert config["author"] == "someone <a@b.c>"
    assert cc["Labels"] == {"version": "1.0", "description": "a test", "multi.word": "x y", "extra": "yes"}
    assert "A=1" in cc["Env"] and "B=12" in cc["Env"] and "C=1 3" in cc["Env"]
    assert set(cc["ExposedPorts"]) == {"80/tcp", "443/udp", "8000/tcp", "8001/tcp"}
    assert set(cc["Volumes"]) == {"/data", "/logs", "/more"}
    assert cc["User"] == "1000:1000" and cc["StopSignal"] == "SIGINT"
    assert cc["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
                                 "Interval": 30 * 10**9, "Timeout": 5 * 10**9, "Retries": 2}
    assert cc["Shell"] == ["/bin/sh", "-ec"]
    assert cc["Entrypoint"] == ["/bin/sh", "-ec", "echo entry"] and "Cmd" not in cc
    assert cc["OnBuild"] == ["RUN echo triggered > /onbuild.txt"]
    assert runtime["process"]["user"]["uid"] == 1000
    history = [h["created_by"] for h in config["history"]]
    assert "EXPOSE [80/tcp 443/udp 8000/tcp 8001/tcp]" in history
    assert "VOLUME [/data /logs]" in history and "USER 1000:1000" in history
    assert all(h.get("empty_layer") for h in config["history"][1:])
    assert not any(h.startswith("ONBUILD") for h in history)


def test_cmd_entrypoint_reset_rules(pydock, tmp_path):
    _, _, _, config = _build(pydock, tmp_path, """\
FROM busybox
CMD ["echo", "hi"]
ENTRYPOINT ["/bin/sh", "-c"]
""")
    cc = config["config"]
    # CMD set in the same stage before ENTRYPOINT survives (BuildKit keeps it)
    assert cc["Cmd"] == ["echo", "hi"] and cc["Entrypoint"] == ["/bin/sh", "-c"]


def test_onbuild_triggers_run_in_child(pydock, tmp_path):
    make_context(tmp_path / "parent", "FROM busybox\nONBUILD COPY f.txt /from-trigger.txt\nONBUILD RUN echo ran > /ran\n")
    pydock.build(tmp_path / "parent", "-t", "parent:1")
    proc, rootfs, _, config = _build(pydock, tmp_path, "FROM parent:1\nRUN cat /ran\n", {"f.txt": "ctx file\n"})
    assert "Executing build trigger" in proc.stdout
    assert (rootfs / "from-trigger.txt").read_text() == "ctx file\n"
    assert (rootfs / "ran").read_text() == "ran\n"
    assert "OnBuild" not in config["config"]


def test_workdir_created_owned_by_user_and_relative(pydock, tmp_path):
    _, rootfs, _, config = _build(pydock, tmp_path, """\
FROM busybox
USER user
WORKDIR /home/user/work
WORKDIR sub
RUN pwd > /tmp/pwd.txt && id -u >> /tmp/pwd.txt
""")
    assert config["config"]["WorkingDir"] == "/home/user/work/sub"
    st = os.stat(rootfs / "home" / "user" / "work" / "sub")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert (rootfs / "tmp" / "pwd.txt").read_text() == "/home/user/work/sub\n1000\n"


def test_copy_semantics(pydock, tmp_path):
    files = {"dir/a.txt": "a", "dir/sub/b.txt": "b", "one.txt": "1", "two.md": "2", "three.md": "3",
             "exec.sh": "#!/bin/sh\n"}
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
COPY dir /dircontents
COPY dir/ /dirslash/
COPY one.txt /newname
COPY one.txt /intodir/
COPY *.md /docs/
COPY --chown=user:wheel --chmod=640 one.txt /owned/
COPY --chown=1234 exec.sh /numeric/
COPY special/ /special/
WORKDIR /w
COPY one.txt rel/
COPY <<EOF /inline.txt
value=${HOSTNAME:-none} literal
EOF
COPY <<'EOF' /quoted.txt
keep $THIS
EOF
""", files)
    special = ctx / "special"
    special.mkdir()
    (special / "setuid").write_text("s")
    os.chmod(special / "setuid", 0o4755)
    os.symlink("setuid", special / "link")
    os.link(special / "setuid", special / "hardlink")
    os.setxattr(special / "setuid", "user.test", b"xattr-value")
    os.utime(special / "setuid", (1000000000, 1000000000))
    pydock.build(ctx, "-t", "cp", "-o", f"type=oci,dest={tmp_path}/layout")
    rootfs, _ = unpack(tmp_path / "layout", "cp", tmp_path / "u")
    assert sorted(os.listdir(rootfs / "dircontents")) == ["a.txt", "sub"]
    assert (rootfs / "dirslash" / "sub" / "b.txt").read_text() == "b"
    assert (rootfs / "newname").read_text() == "1"
    assert (rootfs / "intodir" / "one.txt").read_text() == "1"
    assert sorted(os.listdir(rootfs / "docs")) == ["three.md", "two.md"]
    st = os.stat(rootfs / "owned" / "one.txt")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 10, 0o640)
    st = os.stat(rootfs / "owned")  # BuildKit gives the directories it creates the owner and --chmod mode
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 10, 0o640)
    st = os.stat(rootfs / "numeric" / "exec.sh")
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    st = os.stat(rootfs / "dircontents" / "a.txt")
    assert (st.st_uid, st.st_gid) == (0, 0)  # context files belong to root
    sp = rootfs / "special"
    assert stat.S_IMODE(os.lstat(sp / "setuid").st_mode) == 0o4755
    assert os.readlink(sp / "link") == "setuid"
    assert os.lstat(sp / "hardlink").st_ino == os.lstat(sp / "setuid").st_ino
    assert os.getxattr(sp / "setuid", "user.test") == b"xattr-value"
    assert int(os.lstat(sp / "setuid").st_mtime) == 1000000000
    assert (rootfs / "w" / "rel" / "one.txt").read_text() == "1"
    assert (rootfs / "inline.txt").read_text() == "value=none literal\n"
    assert (rootfs / "quoted.txt").read_text() == "keep $THIS\n"


def test_add_local_archive_is_extracted(pydock, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("pkg/readme", b"readme"), ("pkg/bin/tool", b"tool")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    _, rootfs, _, _ = _build(pydock, tmp_path, "FROM busybox\nADD archive.tar.gz /opt/\nADD plain.txt /opt/\n",
                             {"archive.tar.gz": buf.getvalue(), "plain.txt": "p"})
    assert (rootfs / "opt" / "pkg" / "readme").read_text() == "readme"
    assert (rootfs / "opt" / "pkg" / "bin" / "tool").read_text() == "tool"
    assert (rootfs / "opt" / "plain.txt").read_text() == "p"


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_add_url_with_checksum(pydock, tmp_path, http_server):
    root, url = http_server
    (root / "file.bin").write_bytes(b"remote content")
    os.utime(root / "file.bin", (1600000000, 1600000000))
    digest = "sha256:" + hashlib.sha256(b"remote content").hexdigest()
    _, rootfs, _, _ = _build(pydock, tmp_path, f"FROM busybox\nADD --checksum={digest} {url}/file.bin /dl/\n")
    f = rootfs / "dl" / "file.bin"
    assert f.read_bytes() == b"remote content"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600 and int(f.stat().st_mtime) == 1600000000
    bad = make_context(tmp_path / "bad", f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url}/file.bin /dl/\n")
    proc = pydock.build(bad, check=False)
    assert proc.returncode == 1 and "Dockerfile:2: ADD failed" in proc.stderr and "mismatch" in proc.stderr


def test_run_forms_heredocs_and_shell(pydock, tmp_path):
    _, rootfs, _, config = _build(pydock, tmp_path, """\
FROM busybox
RUN ["/bin/sh", "-c", "echo exec > /exec.txt"]
RUN <<EOF
echo line1 > /heredoc.txt
echo line2 >> /heredoc.txt
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /script.txt
EOF
RUN cat <<A > /a.txt && cat <<B > /b.txt
from a
A
from b
B
SHELL ["/bin/sh", "-xc"]
RUN echo shell > /shell.txt
""")
    assert (rootfs / "exec.txt").read_text() == "exec\n"
    assert (rootfs / "heredoc.txt").read_text() == "line1\nline2\n"
    assert (rootfs / "script.txt").read_text() == "script /dev/pipes/EOF\n"
    assert (rootfs / "a.txt").read_text() == "from a\n" and (rootfs / "b.txt").read_text() == "from b\n"
    assert (rootfs / "shell.txt").read_text() == "shell\n"
    assert not (rootfs / "dev" / "pipes").exists()
    assert "RUN /bin/sh -xc echo shell > /shell.txt # buildkit" in [h["created_by"] for h in config["history"]]


def test_run_leaves_no_mount_stubs_in_layers(pydock, tmp_path):
    _, rootfs, _, config = _build(pydock, tmp_path, "FROM busybox\nRUN true\n")
    assert not (rootfs / "etc" / "hosts").exists() and not (rootfs / "etc" / "resolv.conf").exists()


def test_run_has_the_default_seccomp_profile(pydock, tmp_path):
    """As BuildKit's sandbox: filtered, docker's default capabilities, no new user namespace or mount."""
    _, rootfs, _, _ = _build(pydock, tmp_path, """\
FROM busybox
RUN grep -E '^(Seccomp|CapEff):' /proc/self/status > /status.txt; \
    unshare -U true 2>/unshare.txt || echo refused >> /unshare.txt; echo child ok > /child.txt
""")
    status = dict(line.split(":\t") for line in (rootfs / "status.txt").read_text().splitlines())
    assert status == {"Seccomp": "2", "CapEff": "00000000a80425fb"}
    unshare = (rootfs / "unshare.txt").read_text()
    assert "Operation not permitted" in unshare and unshare.endswith("refused\n")
    assert (rootfs / "child.txt").read_text() == "child ok\n"


def test_run_security_insecure_needs_the_entitlement_and_then_runs_privileged(pydock, tmp_path):
    dockerfile = """\
FROM busybox
RUN --security=insecure grep -E '^(Seccomp|CapEff):' /proc/self/status > /status.txt; \
    mkdir /m && mount -t tmpfs none /m && echo mounted > /mount.txt
"""
    ctx = make_context(tmp_path / "refused", dockerfile)
    before = pydock.snapshot()
    proc = pydock.build(ctx, check=False)
    assert proc.returncode == 1 and "needs the security.insecure entitlement" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and pydock.snapshot() == before
    _, rootfs, _, _ = _build(pydock, tmp_path, dockerfile, None, "--allow", "security.insecure")
    status = dict(line.split(":\t") for line in (rootfs / "status.txt").read_text().splitlines())
    assert status["Seccomp"] == "0" and int(status["CapEff"], 16) & (1 << 21)  # unfiltered, CAP_SYS_ADMIN
    assert (rootfs / "mount.txt").read_text() == "mounted\n"


def test_from_oci_layout_and_stage_index(pydock, tmp_path):
    make_context(tmp_path / "base", "FROM busybox\nRUN echo from-layout > /marker\n")
    pydock.build(tmp_path / "base", "-t", "b", "-o", f"type=oci,dest={tmp_path}/baselayout")
    _, rootfs, _, _ = _build(pydock, tmp_path, f"""\
FROM oci:{tmp_path}/baselayout:b AS first
RUN cat /marker > /copied
FROM 0
RUN cat /copied
""")
    assert (rootfs / "copied").read_text() == "from-layout\n"


def test_stdin_dockerfile_without_context(pydock, tmp_path):
    proc = pydock("build", "-t", "stdin", "-", input="FROM busybox\nRUN echo from-stdin\n", check=True)
    assert "from-stdin" in proc.stdout
    proc = pydock("build", "-", input="FROM busybox\nCOPY x /\n")
    assert proc.returncode == 1 and "file not found in build context: x" in proc.stderr


def test_run_mounts_cache_bind_tmpfs(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox AS tools
RUN echo tool-data > /tool.txt

FROM busybox
RUN --mount=type=cache,target=/var/cache/app echo run1 >> /var/cache/app/log && cp /var/cache/app/log /seen1
RUN --mount=type=cache,target=/var/cache/app echo run2 >> /var/cache/app/log && cp /var/cache/app/log /seen2
RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/in.txt > /from-bind.txt
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/mnt/tool.txt cat /mnt/tool.txt > /from-stage.txt
RUN --mount=type=bind,source=data,target=/mnt/rw,rw echo scribble > /mnt/rw/in.txt
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && cat /scratch/t > /from-tmpfs.txt
""", {"data/in.txt": "bound\n"})
    pydock.build(ctx, "-t", "mnt", "-o", f"type=oci,dest={tmp_path}/layout")
    rootfs, _ = unpack(tmp_path / "layout", "mnt", tmp_path / "u")
    assert (rootfs / "seen1").read_text() == "run1\n"
    assert (rootfs / "seen2").read_text() == "run1\nrun2\n"
    assert (rootfs / "from-bind.txt").read_text() == "bound\n"
    assert (rootfs / "from-stage.txt").read_text() == "tool-data\n"
    assert (rootfs / "from-tmpfs.txt").read_text() == "t\n"
    assert (ctx / "data" / "in.txt").read_text() == "bound\n"  # rw bind writes are thrown away
    for gone in ("mnt", "scratch", "var/cache/app/log"):
        assert not (rootfs / gone).exists(), gone


def test_copy_exclude_and_parents_from_another_image(pydock, tmp_path):
    files = {"app/main.py": "m", "app/debug.log": "l", "app/cache/x.bin": "c", "app/sub/keep.txt": "k",
             "app/sub/trace.log": "t", "top.log": "t", "top.txt": "t"}
    _, rootfs, _, _ = _build(pydock, tmp_path, """\
FROM busybox
COPY --exclude=**/*.log --exclude=cache app /app/
COPY --exclude=*.log top.log top.txt /top/
""", files)
    assert sorted(str(p.relative_to(rootfs / "app")) for p in (rootfs / "app").rglob("*")) == \
        ["main.py", "sub", "sub/keep.txt"]
    assert sorted(p.name for p in (rootfs / "top").iterdir()) == ["top.txt"]

    # --parents works from the context (test_build_remote_context.py); with --from it is refused, clearly
    ctx = make_context(tmp_path / "ctx2", "FROM busybox\nCOPY --parents --from=busybox /bin/sh /dest/\n", files)
    proc = pydock.build(ctx, "-t", "parents", check=False)
    assert proc.returncode != 0 and "--parents is supported for COPY from the build context only" in proc.stderr
