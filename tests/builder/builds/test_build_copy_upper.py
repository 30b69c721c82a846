"""COPY of a directory into a directory the step makes writes the files beside the overlay (into its
upper dir): what the image holds, and what a later RUN sees, must be as if written through it."""

from __future__ import annotations

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
