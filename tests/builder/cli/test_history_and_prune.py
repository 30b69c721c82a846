"""pydock history and image prune as docker prints and filters them (-H, --format, --filter)."""

from __future__ import annotations

import json
import re
import time

from builder_support import make_context


def _build(pydock, tmp_path, name, dockerfile):
    ctx = make_context(tmp_path / name, dockerfile)
    return pydock.build(ctx, "-q", *(["-t", name] if name != "dangling" else [])).stdout.strip()


def test_history_columns_human_and_exact(pydock, tmp_path):
    _build(pydock, tmp_path, "hist", "FROM busybox\nRUN echo hi > /f\nENV A=1\n")
    lines = pydock("history", "hist", check=True).stdout.splitlines()
    # docker's tabwriter: 3 spaces between columns, every column at least 10 wide
    assert re.fullmatch(r"IMAGE {10}CREATED {8,}CREATED BY {3,}SIZE {6}COMMENT", lines[0]), lines[0]
    assert re.match(r"[0-9a-f]{12}   \S.* ago +ENV A=1 +0B +buildkit.dockerfile.v0$", lines[1])
    assert re.match(r"<missing>      .* ago +RUN /bin/sh -c echo hi > /f # buildkit +\d+(\.\d+)?k?B ", lines[2])
    # the imported base: docker's entry has no CREATED BY, and says where it came from
    assert re.match(r"<missing> +.* ago {3,}\d.*B +Imported from ", lines[-1])
    exact = pydock("history", "-H=false", "hist", check=True).stdout.splitlines()
    assert re.fullmatch(r"IMAGE +CREATED AT +CREATED BY +SIZE +COMMENT", exact[0])
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)"
    assert re.match(rf"[0-9a-f]{{12}}   {stamp}   ENV A=1 +0 +buildkit", exact[1])
    assert re.match(rf"<missing>      {stamp}   RUN .* # buildkit +\d+ ", exact[2])


def test_history_format_table_json_and_quiet(pydock, tmp_path):
    image_id = _build(pydock, tmp_path, "hist", "FROM busybox\nLABEL a=b\n")
    plain = pydock("history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "hist", check=True)
    assert plain.stdout.splitlines()[0] == f"{image_id[7:19]}|LABEL a=b|0B|buildkit.dockerfile.v0"
    table = pydock("history", "--format", r"table {{.ID}}\t{{.CreatedBy}}", "--no-trunc", "hist", check=True)
    lines = table.stdout.splitlines()
    assert re.fullmatch(r"IMAGE +CREATED BY", lines[0]) and lines[1].split() == [image_id, "LABEL", "a=b"]
    rows = [json.loads(line) for line in pydock("history", "--format", "json", "hist", check=True).stdout.splitlines()]
    assert sorted(rows[0]) == ["Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size"]
    assert rows[0]["CreatedBy"] == "LABEL a=b" and rows[1]["ID"] == "<missing>"
    quiet = pydock("history", "-q", "hist", check=True).stdout.splitlines()
    assert quiet[0] == image_id[7:19] and set(quiet[1:]) == {"<missing>"}


def test_image_prune_dangling_all_and_filters(pydock, tmp_path):
    kept = _build(pydock, tmp_path, "dangling", "FROM busybox\nLABEL keep=yes\n")
    gone = _build(pydock, tmp_path, "dangling", "FROM busybox\nLABEL other=1\n")
    tagged = _build(pydock, tmp_path, "tagged", "FROM busybox\nLABEL t=1\n")
    # bad filters: refused before anything is removed
    for flt, message in (("bogus=1", "invalid filter 'bogus'"), ("until=soon", "invalid filter 'until=soon'"),
                         ("label", "bad format of filter")):
        proc = pydock("image", "prune", "-f", "--filter", flt)
        assert proc.returncode == 1 and message in proc.stderr
    assert all(i in pydock("images", "-q", "--no-trunc").stdout for i in (kept, gone, tagged))
    # until: only images created before the time; the built ones are newer than an hour ago
    out = pydock("image", "prune", "-f", "--filter", "until=1h", check=True).stdout
    assert out == "Total reclaimed space: 0B\n"
    out = pydock("image", "prune", "-f", "--filter", "label!=keep", check=True).stdout
    assert out.startswith(f"Deleted Images:\ndeleted: {gone}\n\nTotal reclaimed space: ")
    listed = pydock("images", "-q", "--no-trunc", check=True).stdout
    assert kept in listed and tagged in listed and gone not in listed
    # -a: tagged ones too, here only those with label t
    out = pydock("image", "prune", "-a", "-f", "--filter", "label=t=1", check=True).stdout
    assert f"untagged: tagged:latest\ndeleted: {tagged}\n" in out
    future = str(int(time.time()) + 3600)
    out = pydock("image", "prune", "-f", "--filter", f"until={future}", check=True).stdout
    assert f"deleted: {kept}" in out
    assert "busybox" in pydock("images", check=True).stdout
