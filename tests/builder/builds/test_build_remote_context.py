"""pydock build with a context that is not a directory: a tar (or a Dockerfile) on stdin, a URL to a
tarball or to a Dockerfile (served from 127.0.0.1 by the test), a git repository (a local bare repository
over file:// or by path, with #ref:subdir), ADD of a git repository, and COPY --parents. Hostile context
tars (absolute names, "..", symlinks and hard links out, devices) are refused and write nothing outside."""

from __future__ import annotations

import functools
import http.server
import io
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from builder_support import make_context
from support import PYDOCK

pytestmark = pytest.mark.root


def tar_bytes(root: Path, mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry)
    return buf.getvalue()


@pytest.fixture
def http_dir(tmp_path):
    """(directory, base URL): files put in the directory are served over HTTP on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def build_stdin(pydock, data: bytes, *args: str) -> subprocess.CompletedProcess:
    """pydock build ARGS - with `data` (bytes: a tar) on stdin."""
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    proc = subprocess.run([*PYDOCK, "--root", str(pydock.root), "build", *args, "-"], input=data,
                          capture_output=True, timeout=300, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def run_output(pydock, image: str, *cmd: str) -> str:
    proc = pydock("run", "--rm", image, *cmd, check=True)
    return proc.stdout


CAT_DOCKERFILE = "FROM busybox\nCOPY . /ctx/\nRUN cat /ctx/hello.txt > /seen\nCMD [\"cat\", \"/seen\"]\n"


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_on_stdin_is_the_context(pydock, tmp_path, mode):
    ctx = make_context(tmp_path / "ctx", CAT_DOCKERFILE, {"hello.txt": f"from a {mode} tar\n"})
    proc = build_stdin(pydock, tar_bytes(ctx, mode), "-t", "b-stdin")
    assert proc.returncode == 0, proc.stderr
    assert run_output(pydock, "b-stdin") == f"from a {mode} tar\n"


def test_tar_on_stdin_with_dockerfile_inside_it(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\n", {"hello.txt": "sub\n",
                                                            "build/Custom": CAT_DOCKERFILE})
    proc = build_stdin(pydock, tar_bytes(ctx), "-t", "b-stdin-f", "-f", "build/Custom")
    assert proc.returncode == 0, proc.stderr
    assert run_output(pydock, "b-stdin-f") == "sub\n"


def test_dockerfile_on_stdin_has_no_context(pydock):
    ok = pydock("build", "-t", "b-text", "-", input="FROM busybox\nRUN echo plain > /f\n")
    assert ok.returncode == 0, ok.stderr
    bad = pydock("build", "-", input="FROM busybox\nCOPY x /x\n")
    assert bad.returncode == 1
    assert "no build context" in bad.stderr


def test_url_to_tarball_and_to_dockerfile(pydock, tmp_path, http_dir):
    served, base = http_dir
    ctx = make_context(tmp_path / "ctx", CAT_DOCKERFILE, {"hello.txt": "over http\n"})
    (served / "ctx.tar.gz").write_bytes(tar_bytes(ctx, "w:gz"))
    (served / "Dockerfile").write_text("FROM busybox\nRUN echo from-url > /seen\nCMD [\"cat\", \"/seen\"]\n")
    pydock("build", "-t", "b-url-tar", f"{base}/ctx.tar.gz", check=True)
    assert run_output(pydock, "b-url-tar") == "over http\n"
    pydock("build", "-t", "b-url-text", f"{base}/Dockerfile", check=True)
    assert run_output(pydock, "b-url-text") == "from-url\n"
    missing = pydock("build", f"{base}/nothing.tar")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def git(*args, cwd=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> tuple[Path, str]:
    """A bare repository: tag v1 has sub/hello.txt "one"; main (HEAD) has "two"; returns (path, v1's commit)."""
    if subprocess.run(["which", "git"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    sub = make_context(work / "sub", CAT_DOCKERFILE, {"hello.txt": "one\n"})
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "one", cwd=work)
    git("tag", "v1", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (sub / "hello.txt").write_text("two\n")
    git("commit", "-q", "-am", "two", cwd=work)
    bare = tmp_path / "repo.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare, first


def test_git_context_by_ref_and_subdir(pydock, repo):
    bare, first = repo
    pydock("build", "-t", "b-git-tag", f"file://{bare}#v1:sub", check=True)
    assert run_output(pydock, "b-git-tag") == "one\n"
    pydock("build", "-t", "b-git-head", f"{bare}#:sub", check=True)
    assert run_output(pydock, "b-git-head") == "two\n"
    pydock("build", "-t", "b-git-commit", f"file://{bare}#{first}:sub", check=True)
    assert run_output(pydock, "b-git-commit") == "one\n"
    bad = pydock("build", f"file://{bare}#no-such-branch:sub")
    assert bad.returncode == 1 and "failed to fetch git repository" in bad.stderr
    out = pydock("build", f"file://{bare}#main:../..")
    assert out.returncode == 1 and "leaves the repository" in out.stderr


@pytest.fixture
def git_daemon(repo, tmp_path):
    """`git daemon` serving the repository's directory on 127.0.0.1: (git:// URL of the repo, v1's commit)."""
    import socket
    import time

    bare, first = repo
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={bare.parent}",
                             "--listen=127.0.0.1", f"--port={port}", str(bare.parent)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("git daemon did not start")
            time.sleep(0.05)
    yield f"git://127.0.0.1:{port}/{bare.name}", first
    proc.terminate()
    proc.wait(10)


def test_add_git_repository(pydock, tmp_path, git_daemon, repo):
    url, _ = git_daemon
    ctx = make_context(tmp_path / "ctx", f"FROM busybox\nADD {url}#v1 /src\n"
                                         f"ADD {url}#v1:sub /subdir\n"
                                         f"ADD --keep-git-dir=true {url}#main /kept\n"
                                         "RUN cat /src/sub/hello.txt /subdir/hello.txt /kept/sub/hello.txt; "
                                         "test ! -e /src/.git; test -f /kept/.git/HEAD && echo has-git-dir\n")
    proc = pydock.build(ctx, "-t", "b-add-git")
    assert "one\none\ntwo\nhas-git-dir" in proc.stdout
    # the git daemon's context form works too
    pydock("build", "-t", "b-git-daemon", f"{url}#v1:sub", check=True)
    assert run_output(pydock, "b-git-daemon") == "one\n"


def test_git_context_over_http(pydock, repo, http_dir):
    """An http(s) URL ending in .git is a repository (here served as static files: git's dumb protocol)."""
    import shutil

    bare, _ = repo
    served, base = http_dir
    git("update-server-info", cwd=bare)
    shutil.copytree(bare, served / "repo.git")
    pydock("build", "-t", "b-git-http", f"{base}/repo.git#v1:sub", check=True)
    assert run_output(pydock, "b-git-http") == "one\n"


def test_add_of_a_host_repository_is_not_a_git_source(pydock, tmp_path, repo):
    """A Dockerfile may not read the building host's repositories (file:// or a path): such an ADD source
    is a context path like any other, and not found there."""
    bare, _ = repo
    for src in (f"file://{bare}", f"{bare}#main"):
        ctx = make_context(tmp_path / "ctx", f"FROM busybox\nADD {src} /src\n")
        proc = pydock.build(ctx, check=False)
        assert proc.returncode == 1 and "file not found in build context" in proc.stderr, proc.stderr


def test_copy_parents_keeps_the_relative_path(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n"
                                         "COPY --parents a/b/f.txt top.txt /dst/\n"
                                         "COPY --parents x/*/g.txt /glob/\n"
                                         "COPY --parents ./a/./b/f.txt /pivot/\n"
                                         "COPY --parents x/y /dir/\n"
                                         "RUN cd / && find dst glob pivot dir -type f | sort\n",
                       {"a/b/f.txt": "f", "top.txt": "t", "x/y/g.txt": "g", "x/z/g.txt": "g2"})
    proc = pydock.build(ctx, "-t", "b-parents")
    files = [ln for ln in proc.stdout.splitlines() if ln.startswith(("dst/", "glob/", "pivot/", "dir/"))]
    assert files == ["dir/x/y/g.txt", "dst/a/b/f.txt", "dst/top.txt", "glob/x/y/g.txt", "glob/x/z/g.txt",
                     "pivot/b/f.txt"]


# -- hostile context tars -------------------------------------------------------------------------------

def _hostile(kind: str, outside: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(info: tarfile.TarInfo, data: bytes = b""):
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add(tarfile.TarInfo("Dockerfile"), b"FROM busybox\nCOPY . /ctx/\n")
        if kind == "absolute":
            add(tarfile.TarInfo(str(outside / "abs")), b"x")
        elif kind == "dotdot":
            add(tarfile.TarInfo("a/../../../../../../" + str(outside / "dotdot").lstrip("/")), b"x")
        elif kind == "symlink":
            link = tarfile.TarInfo("out")
            link.type, link.linkname = tarfile.SYMTYPE, str(outside)
            add(link)
            add(tarfile.TarInfo("out/through-link"), b"x")
        elif kind == "hardlink":
            link = tarfile.TarInfo("passwd")
            link.type, link.linkname = tarfile.LNKTYPE, str(outside / "secret")
            add(link)
        elif kind == "device":
            dev = tarfile.TarInfo("disk")
            dev.type, dev.devmajor, dev.devminor = tarfile.BLKTYPE, 7, 0
            add(dev)
    return buf.getvalue()


@pytest.mark.parametrize("kind,message", [("absolute", "absolute path"), ("dotdot", "outside the destination"),
                                          ("symlink", "out/through-link"), ("hardlink", "hard link"),
                                          ("device", "a device node")])
def test_hostile_context_tar_is_refused(pydock, tmp_path, kind, message):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    before_outside = sorted(os.listdir(outside))
    before = pydock.snapshot()
    proc = build_stdin(pydock, _hostile(kind, outside), "-t", "b-hostile")
    assert proc.returncode == 1
    assert "unable to prepare context from stdin" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(outside)) == before_outside
    assert (outside / "secret").read_text() == "host secret\n"
    assert pydock.snapshot() == before  # no image, no leftover work directory


def test_context_symlink_out_is_not_followed(pydock, tmp_path):
    """A symlink in a tar context that points out of it is kept as a link, never followed by COPY."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        df = b"FROM busybox\nCOPY out/secret /stolen\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
    proc = build_stdin(pydock, buf.getvalue())
    assert proc.returncode == 1 and "outside the build context" in proc.stderr


def test_context_tar_dockerfile_symlink_out_is_refused(pydock, tmp_path):
    """The Dockerfile of a tar context is read inside it: a Dockerfile symlink to a host file is refused."""
    outside = tmp_path / "host-Dockerfile"
    outside.write_text("FROM busybox\nRUN echo host-file-read\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("Dockerfile")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
    proc = build_stdin(pydock, buf.getvalue())
    assert proc.returncode == 1 and "outside the build context" in proc.stderr, proc.stderr
    assert "host-file-read" not in proc.stdout
