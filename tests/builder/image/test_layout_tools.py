"""Our OCI layouts as other tools see them: skopeo inspect, umoci unpack, oci-image-tool validate."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from builder.image.layers import write_layer_from_dir
from builder.image.layout import import_layout, write_layout
from builder.bundle.rootfs import materialize
from builder.image.store import ImageStore
from builder_support import make_sample_tree, tree_state

pytestmark = [pytest.mark.skipif(not all(shutil.which(t) for t in ("skopeo", "umoci", "oci-image-tool")),
                                 reason="needs skopeo, umoci and oci-image-tool (Debian packages)"),
              pytest.mark.root]  # every test starts from a sample tree with devices, owners and xattrs
REF = "example.com/team/sample:1.0"


@pytest.fixture
def image_and_store(tmp_path):
    store = ImageStore(tmp_path / "store")
    base = make_sample_tree(tmp_path / "base")
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / ".wh.hostname").write_text("")
    (top / "usr").mkdir()
    (top / "usr" / ".wh..wh..opq").write_text("")
    (top / "usr" / "replaced.txt").write_text("usr is opaque now\n")
    layers, diff_ids = zip(write_layer_from_dir(base, store), write_layer_from_dir(top, store))
    config = {"created": "2024-05-01T00:00:00Z", "architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/",
                         "Labels": {"org.example": "yes"}},
              "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
              "history": [{"created": "2024-05-01T00:00:00Z", "created_by": "base"},
                          {"created": "2024-05-01T00:00:00Z", "created_by": "top"}]}
    image = store.commit_image(config, list(layers))
    store.tag(image, REF)
    return image, store


def test_layout_index_and_manifest_follow_the_spec(image_and_store, tmp_path):
    image, store = image_and_store
    layout = tmp_path / "layout"
    write_layout(store, image, layout, REF)
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": REF}
    assert entry["digest"] == image.digest and entry["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads((layout / "blobs" / "sha256" / image.digest[7:]).read_text())
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [l["mediaType"] for l in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * 2
    assert manifest["annotations"] == {"org.opencontainers.image.created": "2024-05-01T00:00:00Z"}

    # writing a second image under another name keeps the first; the same name is replaced
    write_layout(store, image, layout, "second")
    write_layout(store, image, layout, REF)
    names = [m["annotations"]["org.opencontainers.image.ref.name"]
             for m in json.loads((layout / "index.json").read_text())["manifests"]]
    assert sorted(names) == sorted([REF, "second"])


def test_skopeo_inspects_our_layout(image_and_store, tmp_path):
    image, store = image_and_store
    layout = tmp_path / "layout"
    write_layout(store, image, layout, REF)
    out = subprocess.run(["skopeo", "inspect", f"oci:{layout}:{REF}"], check=True, capture_output=True, text=True)
    info = json.loads(out.stdout)
    assert info["Digest"] == image.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Labels"] == {"org.example": "yes"}
    config = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci:{layout}:{REF}"], check=True,
                                       capture_output=True, text=True).stdout)
    assert config["rootfs"]["diff_ids"] == image.diff_ids


def test_oci_image_tool_validates_our_layout(image_and_store, tmp_path):
    image, store = image_and_store
    layout = tmp_path / "layout"
    write_layout(store, image, layout, REF)
    # Debian's oci-image-tool 1.0.0-rc1 calls the layout type "image" (it autodetects imageLayout).
    for args in (["--type", "image"], ["--type", "image", "--ref", f"name={REF}"]):
        proc = subprocess.run(["oci-image-tool", "validate", *args, str(layout)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Validation succeeded" in proc.stdout + proc.stderr


def test_umoci_unpacks_the_same_rootfs(image_and_store, tmp_path):
    image, store = image_and_store
    layout = tmp_path / "layout"
    write_layout(store, image, layout, REF)
    bundle = tmp_path / "umoci-bundle"
    proc = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{REF}", str(bundle)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours = materialize(store, image, tmp_path / "ours")
    theirs = tree_state(bundle / "rootfs")
    assert theirs == tree_state(ours)
    assert "etc/hostname" not in theirs and "usr/replaced.txt" in theirs and "usr/lib" not in theirs
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["args"] == ["/bin/sh"]


def test_import_layout_round_trip(image_and_store, tmp_path):
    image, store = image_and_store
    layout = tmp_path / "layout"
    write_layout(store, image, layout, REF)
    other = ImageStore(tmp_path / "other")
    imported = import_layout(other, layout, REF)
    assert imported.digest == image.digest and imported.id == image.id
    assert import_layout(ImageStore(tmp_path / "third"), layout).digest == image.digest
