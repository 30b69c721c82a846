"""COPY --from is cached by the content it copies, as BuildKit's is: a source stage rebuilt that still gives
the same files leaves the later stages cached; different files rebuild them."""

from __future__ import annotations

import pytest

from builder_support import make_context

pytestmark = pytest.mark.root

DOCKERFILE = """\
FROM busybox AS one
COPY input.txt /input.txt
RUN wc -c < /input.txt > /size
FROM busybox AS two
COPY --from=one /size /size
RUN cat /size /size > /twice
FROM busybox
COPY --from=two /twice /twice
"""


def _build(pydock, ctx) -> tuple[list[str], str]:
    out = pydock.build(ctx, "-t", "out").stdout
    steps = out.split("Step ")[1:]
    cached = [s.split(" :")[0] for s in steps if "Using cache" in s]
    return cached, pydock("run", "--rm", "out", "cat", "/twice", check=True).stdout


def test_copy_from_hits_when_the_copied_files_are_the_same(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, {"input.txt": "abc\n"})
    assert _build(pydock, ctx) == ([], "4\n4\n")
    (ctx / "input.txt").write_text("xyz\n")  # stage one runs again, and makes the same /size
    cached, out = _build(pydock, ctx)
    assert cached == ["5/8", "6/8", "8/8"] and out == "4\n4\n"
    (ctx / "input.txt").write_text("longer\n")  # another /size: everything after it runs again
    cached, out = _build(pydock, ctx)
    assert cached == [] and out == "7\n7\n"
