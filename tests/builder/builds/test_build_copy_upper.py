"""COPY of a directory into a directory the step makes writes the files beside the overlay (into its
upper dir), and the target's last COPY into a new directory tars them from the context without writing
them at all: what the image holds, and what a later RUN sees, must be as if written through the overlay."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from builder_support import make_context, unpack

pytestmark = pytest.mark.root


def test_copy_into_new_and_existing_directories(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
COPY one two /new/deep/
COPY one /etc/
RUN cat /new/deep/a /new/deep/b /etc/a > /seen && ls /etc/passwd
""", {"one/a": "from one\n", "one/sub/c": "c\n", "two/x": "x\n"})
    os.link(ctx / "one" / "a", ctx / "two" / "b")  # one hard link across the two sources
    pydock.build(ctx, "-t", "up", "-o", f"type=oci,dest={tmp_path}/layout")
    rootfs, _ = unpack(tmp_path / "layout", "up", tmp_path / "u")
    deep = rootfs / "new" / "deep"
    assert sorted(os.listdir(deep)) == ["a", "b", "sub", "x"]
    assert os.lstat(deep / "a").st_ino == os.lstat(deep / "b").st_ino
    assert (deep / "sub" / "c").read_text() == "c\n"
    assert (rootfs / "etc" / "a").read_text() == "from one\n"
    assert (rootfs / "etc" / "passwd").exists()  # the base image's /etc stays
    assert (rootfs / "seen").read_text() == "from one\nfrom one\nfrom one\n"


def _layers(pydock, ref):
    return json.loads(pydock("inspect", ref, check=True).stdout)[0]["RootFS"]["Layers"]


def test_a_last_copy_tarred_from_the_context_is_the_layer_a_copy_makes(pydock, tmp_path):
    """The target's last COPY of a directory is tarred straight from the context (its files are never
    written out): its layer must be byte for byte the one the same COPY makes when a later step needs it
    unpacked, and a later build FROM the image must see its files."""
    files = {"tree/a.b": "dot\n", "tree/a/x": "x\n", "tree/a/y/z": "z\n", "tree/b": "b\n", "tree/e/.keep": ""}
    copy = "COPY --chown=1234:99 tree /new/"
    ctx = make_context(tmp_path / "ctx", f"FROM busybox\n{copy}\nCMD [\"sh\"]\n", files)
    (ctx / "Dockerfile.middle").write_text(f"FROM busybox\n{copy}\nRUN true\n")
    tree = ctx / "tree"
    os.chmod(tree / "b", 0o4755)
    os.symlink("a/x", tree / "link")
    os.link(tree / "a" / "x", tree / "a.hard")
    os.setxattr(tree / "a.b", "user.note", b"kept")
    os.mkfifo(tree / "fifo")
    for path in sorted(tree.rglob("*"), reverse=True):
        os.utime(path, ns=(1_600_000_000_999_999_999, 1_600_000_000_999_999_999), follow_symlinks=False)
    epoch = ("--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    pydock.build(ctx, "-f", str(ctx / "Dockerfile.middle"), "-t", "middle", *epoch)
    pydock.build(ctx, "-t", "last", *epoch, "--no-cache")
    assert _layers(pydock, "last")[1] == _layers(pydock, "middle")[1]

    after = make_context(tmp_path / "after", "FROM last\nRUN ls -ln /new/b /new/a/y/z && cat /new/link /new/a.b > /seen\n")
    pydock.build(after, "-t", "after", "-o", f"type=oci,dest={tmp_path}/layout")
    rootfs, _ = unpack(tmp_path / "layout", "after", tmp_path / "u")
    assert (rootfs / "seen").read_text() == "x\ndot\n"
    st = os.lstat(rootfs / "new" / "b")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 99, 0o4755)
    assert os.lstat(rootfs / "new" / "a.hard").st_ino == os.lstat(rootfs / "new" / "a" / "x").st_ino
    assert os.getxattr(rootfs / "new" / "a.b", "user.note") == b"kept"


def test_a_last_copy_of_one_file_tarred_from_the_context_is_the_same_layer(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY --chmod=600 big.bin /data/renamed.bin\n",
                       {"big.bin": os.urandom(3 << 20)})
    (ctx / "Dockerfile.middle").write_text("FROM busybox\nCOPY --chmod=600 big.bin /data/renamed.bin\nRUN true\n")
    epoch = ("--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    pydock.build(ctx, "-f", str(ctx / "Dockerfile.middle"), "-t", "middle", *epoch)
    pydock.build(ctx, "-t", "last", *epoch, "--no-cache")
    assert _layers(pydock, "last")[1] == _layers(pydock, "middle")[1]
    out = pydock("run", "--rm", "last", "sh", "-c", "stat -c %a /data/renamed.bin; md5sum < /data/renamed.bin",
                 check=True).stdout.split()
    assert out[:2] == ["600", hashlib.md5((ctx / "big.bin").read_bytes()).hexdigest()]
