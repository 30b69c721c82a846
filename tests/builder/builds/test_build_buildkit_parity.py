"""Builds where pydock once parted from BuildKit: .dockerignore exceptions, identical layers stacked in one
overlay, and stages named before they are defined (the stage graph)."""

from __future__ import annotations

import json
import os

import pytest

from builder_support import image_config, make_context, unpack


def test_dockerignore_exceptions_leave_out_excluded_directories(pydock, tmp_path):
    # What docker 20.10's BuildKit sends for this context (checked with `docker build -o type=local`).
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY . /ctx/\n", {
        ".dockerignore": "docs\nsrc/tmp\n**/node_modules\n!docs/readme.md\n!**/*.md\n",
        "docs/api/x.html": "x", "docs/readme.md": "r", "src/tmp/t.o": "t", "src/main.c": "m",
        "a/node_modules/p/i.js": "i", "b/c/node_modules/j.js": "j",
    })
    pydock.build(ctx, "-t", "ign", "-o", f"type=oci,dest={tmp_path}/layout")
    rootfs, _ = unpack(tmp_path / "layout", "ign", tmp_path / "u")
    found = sorted(os.path.relpath(os.path.join(d, n), rootfs / "ctx")
                   for d, dirs, files in os.walk(rootfs / "ctx") for n in dirs + files)
    assert found == [".dockerignore", "Dockerfile", "a", "b", "b/c", "docs", "docs/readme.md", "src", "src/main.c"]


def test_steps_with_identical_layers_stack_in_one_overlay(pydock, tmp_path):
    # Every RUN here only writes to a cache mount: their layers are the same (empty) layer, so the same
    # unpacked dir would be listed twice as an overlay lower dir.
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
RUN --mount=type=cache,target=/cache echo one > /cache/a
RUN --mount=type=cache,target=/cache echo two > /cache/b
RUN --mount=type=cache,target=/cache cat /cache/a /cache/b > /cache/both
RUN --mount=type=cache,target=/cache cp /cache/both /both
""")
    pydock.build(ctx, "-t", "dup", "--no-cache", "-o", f"type=oci,dest={tmp_path}/layout")
    _, config = image_config(tmp_path / "layout", "dup")
    diff_ids = config["rootfs"]["diff_ids"]
    assert len(diff_ids) - len(set(diff_ids)) >= 2  # the case at hand: the same layer three times
    out = pydock("run", "--rm", "dup", "cat", "/both", check=True)
    assert out.stdout == "one\ntwo\n"


def test_identical_layers_around_a_whiteout_keep_their_order(pydock, tmp_path):
    # The same COPY layer below and above a layer that deletes its file: the file must be there at the end.
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
COPY f /f
RUN rm /f
COPY f /f
RUN cat /f > /seen
""", {"f": "content\n"})
    pydock.build(ctx, "-t", "wh", "-o", f"type=oci,dest={tmp_path}/layout",
                 env={"SOURCE_DATE_EPOCH": "1700000000"})
    _, config = image_config(tmp_path / "layout", "wh")
    diff_ids = config["rootfs"]["diff_ids"]
    assert diff_ids[-4] == diff_ids[-2]
    assert pydock("run", "--rm", "wh", "cat", "/f", "/seen", check=True).stdout == "content\ncontent\n"


def test_stages_named_before_they_are_defined(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox AS app
COPY --from=tools /made /from-copy
RUN --mount=from=assets,target=/assets cat /assets/data > /from-mount
FROM busybox AS tools
RUN echo made > /made
FROM tools AS assets
RUN echo data > /data
""")
    proc = pydock.build(ctx, "--target", "app", "-t", "fwd")
    steps = [line for line in proc.stdout.splitlines() if line.startswith("Step ")]
    # the stages the target uses are built before it, each once
    assert [s.split(" : ")[1] for s in steps] == [
        "FROM busybox AS tools", "RUN echo made > /made", "FROM tools AS assets", "RUN echo data > /data",
        "FROM busybox AS app", "COPY --from=tools /made /from-copy",
        "RUN --mount=from=assets,target=/assets cat /assets/data > /from-mount"]
    out = pydock("run", "--rm", "fwd", "cat", "/from-copy", "/from-mount", check=True)
    assert out.stdout == "made\ndata\n"


def test_stage_cycle_is_refused_before_anything_runs(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox AS a
RUN echo should-not-run
COPY --from=b /f /f
FROM busybox AS b
COPY --from=a /f /g
""")
    before = pydock.snapshot()
    proc = pydock.build(ctx, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().endswith("circular dependency detected on stage: a")
    assert "should-not-run" not in proc.stdout and "Traceback" not in proc.stderr
    assert pydock.snapshot() == before
