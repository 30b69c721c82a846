"""Hostile builds: whatever the Dockerfile, the context or the base image hold, a refused build is one error
line naming the file and the problem; the Dockerfile and .dockerignore never lead out of the context;
what BuildKit refuses is refused; output paths are written through when they are not regular files."""

from __future__ import annotations

import os
import random
import stat
import subprocess
from pathlib import Path

import pytest

from builder.dockerfile.parser import parse
from builder.dockerfile.stages import make_plan
from builder.errors import BuildError
from support import PYDOCK

SECRET = "top-secret-first-line"


def pydock(root: Path, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*PYDOCK, "--root", str(root), *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def assert_one_error(proc, *mentions: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith("pydock: error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stdout, proc.stderr
    for m in mentions:
        assert m in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "outside" / "shadow"
    path.parent.mkdir()
    path.write_text(f"{SECRET}\nroot:x:0:0\n")
    return path


# -- 11. the Dockerfile and .dockerignore are read inside the context ----------------------------------------
@pytest.mark.parametrize("how", ["absolute", "relative", "through-dir", "chain"])
def test_a_dockerfile_symlink_out_of_the_context_is_refused_without_reading_it(root, tmp_path, secret, how):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    if how == "absolute":
        (ctx / "Dockerfile").symlink_to(secret)
        args = []
    elif how == "relative":
        (ctx / "Dockerfile").symlink_to("../outside/shadow")
        args = []
    elif how == "through-dir":
        (ctx / "d").symlink_to(secret.parent)
        args = ["-f", ctx / "d" / "shadow"]
    else:
        (ctx / "a").symlink_to("b")
        (ctx / "b").symlink_to("c/../../outside/shadow")
        (ctx / "c").mkdir()
        args = ["-f", "a"]
    proc = pydock(root, "build", *args, ctx)
    assert_one_error(proc, "outside the build context")
    assert SECRET not in proc.stderr + proc.stdout


def test_a_dockerignore_symlink_out_of_the_context_is_refused(root, tmp_path, secret):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / ".dockerignore").symlink_to(secret)
    proc = pydock(root, "build", ctx)
    assert_one_error(proc, ".dockerignore", "outside the build context")
    (ctx / ".dockerignore").unlink()
    (ctx / "Dockerfile.dockerignore").symlink_to("../outside/shadow")
    assert_one_error(pydock(root, "build", ctx), "outside the build context")


def test_a_dockerfile_named_outside_the_context_is_read(root, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    outside = tmp_path / "elsewhere" / "build.Dockerfile"
    outside.parent.mkdir()
    outside.write_text("FROM scratch\nLABEL a=b\n")
    link = tmp_path / "link.Dockerfile"
    link.symlink_to(outside)  # named explicitly, outside the context: followed, as docker does
    for f in (outside, link):
        proc = pydock(root, "build", "-q", "-f", f, ctx)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "fifo", "dir"])
def test_a_dockerfile_that_is_not_a_regular_file_is_refused(root, tmp_path, special):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    if special == "fifo":
        os.mkfifo(ctx / "Dockerfile")
        special = ctx / "Dockerfile"
    elif special == "dir":
        (ctx / "Dockerfile").mkdir()
        special = ctx / "Dockerfile"
    assert_one_error(pydock(root, "build", "-f", special, ctx), str(special), "Dockerfile")


# -- 8. generated hostile Dockerfiles: one error line, never a traceback -------------------------------------
def test_deeply_nested_substitutions_are_an_error(root, tmp_path):
    rnd = random.Random(11)
    for depth in (70, 500, 5000):
        for op in (":-", "-", ":+", "+", ":?"):
            word = "x"
            for _ in range(depth):
                word = f"${{A{op}{word}}}" if rnd.random() < 0.8 else f'"${{A{op}{word}}}"'
            for text in (f"FROM scratch\nENV X={word}\n", f"ARG A\nFROM scratch\nLABEL l={word}\n"):
                try:
                    make_plan(parse(text), {}, None)
                except BuildError as e:
                    assert "nested" in str(e) or depth < 64
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nENV X=" + "${A:-" * 3000 + "x" + "}" * 3000 + "\n")
    assert_one_error(pydock(root, "build", ctx), "nested")


@pytest.mark.parametrize("plat", ["notanos/arch", "linux/notanarch", "windows/amd64x", "x", "linux//",
                                  "/amd64", "linux/amd64/v8/extra"])
def test_from_platform_that_buildkit_refuses_is_refused(plat):
    with pytest.raises(BuildError, match="platform"):
        make_plan(parse(f"FROM --platform={plat} scratch\n"), {}, None)


def test_from_platform_that_buildkit_accepts_is_accepted():
    for plat in ("linux/amd64", "linux/arm64/v8", "linux", "$BUILDPLATFORM", "windows/amd64", "linux/x86_64"):
        make_plan(parse(f"FROM --platform={plat} scratch\n"), {}, None)


# -- builds over a busybox base ----------------------------------------------------------------------------
@pytest.fixture
def bb(root, busybox_tar) -> Path:
    assert pydock(root, "import", busybox_tar, "busybox:latest").returncode == 0
    return root


@pytest.mark.root
def test_copy_patterns_matching_nothing_and_out_of_range_owners_are_refused(bb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "real.txt").write_text("x")
    rnd = random.Random(14)
    for pattern in ("nomatch*", "*.none", "d[0-9]", "real.tx?x", "sub/*"):
        (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {pattern} /dst/\n")
        assert_one_error(pydock(bb, "build", ctx), pattern, "Dockerfile:2")
    for _ in range(3):
        big = rnd.choice([2**32, 2**63, 10**14, 99999999999999]) + rnd.randrange(100)
        spec = rnd.choice([f"{big}:1", f"1:{big}", f"{big}", f"-{big}:1"])
        (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY --chown={spec} real.txt /\n")
        assert_one_error(pydock(bb, "build", ctx), "Dockerfile:2")


@pytest.mark.root
def test_layers_with_fractional_mtimes_run_and_bundle(bb, tmp_path):
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("x")
    for i, p in enumerate((tree / "d" / "f", tree / "d", tree)):
        os.utime(p, ns=(1_600_000_000_123_456_789 + i, 1_600_000_000_987_654_321 + i))
    layer = tmp_path / "posix.tar"
    subprocess.run(["tar", "--format=posix", "-C", str(tree), "-cf", str(layer), "."], check=True)
    assert pydock(bb, "import", layer, "posix:1").returncode == 0
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY --from=posix:1 /d /d\nRUN test -f /d/f\n"
                                    "FROM posix:1\nCOPY --from=0 /bin /bin\nRUN ls /d\nCMD [\"ls\"]\n")
    proc = pydock(bb, "build", "-t", "out:1", ctx)
    assert proc.returncode == 0, proc.stderr
    proc = pydock(bb, "bundle", "out:1", tmp_path / "bundle")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.root
def test_iidfile_and_outputs_follow_the_output_rule(bb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nLABEL a=b\n")
    assert_one_error(pydock(bb, "build", "--iidfile", "/dev/full", ctx), "/dev/full", "No space left")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)
    assert_one_error(pydock(bb, "build", "-o", "type=docker,dest=/dev/full", ctx), "/dev/full")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)
    link = tmp_path / "iid-link"
    link.symlink_to(tmp_path / "iid-target")
    proc = pydock(bb, "build", "--iidfile", link, ctx)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and (tmp_path / "iid-target").read_text().startswith("sha256:")


@pytest.mark.root
def test_rmi_of_a_base_image_during_a_run_step_is_refused(bb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN sleep 4 && test -x /bin/sh\n")
    build = subprocess.Popen([*PYDOCK, "--root", str(bb), "build", "--no-cache", str(ctx)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import time
        deadline = time.time() + 60
        while time.time() < deadline:
            if any(os.scandir(bb / "holds")):
                break
            time.sleep(0.1)
        time.sleep(1)
        assert_one_error(pydock(bb, "rmi", "-f", "busybox"), "being used")
    finally:
        out, err = build.communicate(timeout=120)
    assert build.returncode == 0, err
    assert pydock(bb, "rmi", "busybox").returncode == 0
