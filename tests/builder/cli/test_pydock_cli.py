"""The pydock verbs around build: images, tag, rmi, inspect, save/load, import, bundle; the acceptance flow."""

from __future__ import annotations

import json
import subprocess

import pytest

from support import PYRUNC
from builder_support import UMOCI, Pydock, make_context, unpack

pytestmark = pytest.mark.root


def test_usage_errors_are_one_line_and_exit_1(tmp_path):
    p = Pydock(tmp_path / "store")
    for args in (("bogus-verb",), ("build",), ("images", "--nope"), ("build", "--output", "foo", ".")):
        proc = p(*args)
        assert proc.returncode == 1, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pydock: error: "), proc.stderr


def test_images_tag_rmi(pydock):
    out = pydock("images", check=True).stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out[1].split()[:2] == ["busybox", "latest"]
    image_id = pydock("images", "-q", check=True).stdout.strip()
    assert len(image_id) == 12
    pydock("tag", "busybox", "mybox:v1", check=True)
    rows = [line.split()[:3] for line in pydock("images", check=True).stdout.splitlines()[1:]]
    assert ["mybox", "v1", image_id] in rows and ["busybox", "latest", image_id] in rows
    proc = pydock("rmi", "mybox:v1", check=True)
    assert proc.stdout.strip() == "Untagged: mybox:v1"
    proc = pydock("rmi", "nosuch")
    assert proc.returncode == 1 and "nosuch" in proc.stderr


def test_images_format_as_docker(pydock):
    image_id = pydock("images", "-q", check=True).stdout.strip()
    assert pydock("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=True).stdout == \
        f"busybox:latest {image_id}\n"
    table = pydock("images", "--format", "table {{.Repository}}\\t{{.Size}}", check=True).stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "SIZE"] and table[1].split()[0] == "busybox"
    row = json.loads(pydock("images", "--format", "json", check=True).stdout.splitlines()[0])
    assert (row["Repository"], row["Tag"], row["ID"]) == ("busybox", "latest", image_id)
    bad = pydock("images", "--format", "{{.Repository")
    assert bad.returncode == 1 and bad.stderr.startswith("pydock: error: template parsing error")


def test_inspect_json_and_format(pydock):
    data = json.loads(pydock("inspect", "busybox", check=True).stdout)
    assert isinstance(data, list) and len(data) == 1
    assert data[0]["Id"].startswith("sha256:") and data[0]["RepoTags"] == ["busybox:latest"]
    assert data[0]["Os"] == "linux" and data[0]["RootFS"]["Type"] == "layers"
    assert "Env" in data[0]["Config"]
    out = pydock("inspect", "-f", "{{.Os}} {{json .RootFS.Type}}", "busybox", check=True).stdout
    assert out.strip() == 'linux "layers"'
    proc = pydock("inspect", "-f", "{{.Nope", "busybox")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "pydock: error: template parsing error: template: :1: unclosed action\n"
    proc = pydock("inspect", "-f", "{{.Os", "no-such-thing")  # the template is checked first, as docker does
    assert proc.returncode == 1 and "unclosed action" in proc.stderr


def test_save_load_roundtrip(pydock, tmp_path):
    for fmt in ("docker", "oci"):
        archive = tmp_path / f"bb-{fmt}.tar"
        pydock("save", "-o", archive, "--format", fmt, "busybox:latest", check=True)
        other = Pydock(tmp_path / f"store-{fmt}")
        out = other("load", "-i", archive, check=True).stdout
        assert "busybox" in out or "sha256:" in out
        assert "busybox" in other("images", check=True).stdout


def test_bundle_runs_with_pyrunc(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", 'FROM busybox\nRUN echo built > /msg\nCMD ["cat", "/msg"]\n')
    pydock.build(ctx, "-t", "runme")
    bundle = tmp_path / "bundle"
    pydock("bundle", "runme", bundle, check=True)
    assert (bundle / "config.json").exists() and (bundle / "rootfs" / "msg").exists()
    state = tmp_path / "state"
    state.mkdir()
    proc = subprocess.run([*PYRUNC, "--root", str(state), "run", "--bundle", str(bundle), "t1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "built\n"


@pytest.mark.skipif(UMOCI is None, reason="umoci is not installed")
def test_acceptance_flow_load_layout_tag_build_unpack(tmp_path, busybox_tar):
    """pydock load -i LAYOUT_DIR; pydock tag REF busybox:latest; build --no-cache --network none
    -t NAME -o type=oci,dest=LAYOUT CTX; umoci unpack."""
    # A third-party layout of busybox, made by umoci from the rootfs.
    src = tmp_path / "bb-layout"
    rootfs = tmp_path / "bbroot"
    rootfs.mkdir()
    subprocess.run(["tar", "-C", str(rootfs), "-xf", str(busybox_tar)], check=True)
    subprocess.run([UMOCI, "init", "--layout", str(src)], check=True)
    subprocess.run([UMOCI, "new", "--image", f"{src}:bb"], check=True)
    subprocess.run([UMOCI, "insert", "--image", f"{src}:bb", str(rootfs), "/"], check=True, capture_output=True)
    store = Pydock(tmp_path / "store")
    out = store("load", "-i", src, check=True).stdout
    assert out.strip()
    ref = out.strip().splitlines()[-1].split(": ", 1)[1]
    store("tag", ref, "busybox:latest", check=True)
    ctx = make_context(tmp_path / "ctx", """\
FROM busybox
ARG GREETING=hello
COPY app.txt /app/
RUN echo "$GREETING from build" > /app/out.txt
CMD ["cat", "/app/out.txt"]
""", {"app.txt": "app\n"})
    layout = tmp_path / "layout"
    store("build", "--no-cache", "--network", "none", "--build-arg", "GREETING=hi", "-t", "acceptance",
          "-o", f"type=oci,dest={layout}", ctx, check=True)
    for ref_name in ("acceptance", "acceptance:latest", "latest"):
        dest = tmp_path / f"unpacked-{ref_name.replace(':', '_')}"
        rootfs_out, runtime = unpack(layout, ref_name, dest)
        assert (rootfs_out / "app" / "out.txt").read_text() == "hi from build\n"
        assert (rootfs_out / "app" / "app.txt").read_text() == "app\n"
        assert runtime["process"]["args"] == ["cat", "/app/out.txt"]
    proc = subprocess.run([UMOCI, "unpack", "--image", str(layout), str(tmp_path / "default")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_build_docker_archive_output(pydock, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo x > /x\n")
    pydock.build(ctx, "-t", "arch:1", "-o", f"type=docker,dest={tmp_path}/out.tar")
    other = Pydock(tmp_path / "other")
    out = other("load", "-i", tmp_path / "out.tar", check=True).stdout
    assert "arch:1" in out


def test_import_from_stdin(tmp_path, busybox_tar):
    p = Pydock(tmp_path / "store")
    with open(busybox_tar, "rb") as f:
        proc = subprocess.run([*p_cmd(p), "import", "-", "piped:1"], stdin=f, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("sha256:")
    assert "piped" in p("images", check=True).stdout


def p_cmd(p: Pydock) -> list[str]:
    from support import PYDOCK

    return [*PYDOCK, "--root", str(p.root)]
