"""The image store: blobs verified on read, crash-safe writes, locked index updates, names, rmi, gc."""

from __future__ import annotations

import json
import fcntl
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder.image import mediatypes as mt
from builder.image.digest import sha256_digest
from builder.errors import BuildError
from builder.image.layers import write_layer_from_dir
from builder.image.store import ImageStore


def make_image(store: ImageStore, tmp_path: Path, files: dict[str, str], *, cmd=("sh",)):
    """A one-layer image holding `files`."""
    tree = tmp_path / f"tree-{len(list(tmp_path.iterdir()))}"
    tree.mkdir()
    for name, content in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(content)
    layer, diff_id = write_layer_from_dir(tree, store)
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": list(cmd)},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created_by": "test"}]}
    return store.commit_image(config, [layer])


def test_layout_files_and_blob_round_trip(store):
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store.root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    desc = store.put_blob(b"hello", "text/plain")
    assert desc.digest == sha256_digest(b"hello") and desc.size == 5
    assert store.blob_path(desc.digest).read_bytes() == b"hello"
    assert store.read_blob(desc.digest) == b"hello"
    assert store.has_blob(desc.digest)
    assert list(store.tmp_dir.iterdir()) == []
    with pytest.raises(BuildError, match="invalid digest"):
        store.blob_path("sha256:../../etc/passwd")
    with pytest.raises(BuildError, match="missing"):
        store.read_blob(sha256_digest(b"never stored"))
    with pytest.raises(BuildError, match="does not match"):
        store.put_blob(b"abc", "text/plain", expected_digest=sha256_digest(b"abd"))
    assert list(store.tmp_dir.iterdir()) == []


def test_corrupted_blobs_are_detected_when_read(store, tmp_path):
    image = make_image(store, tmp_path, {"a.txt": "content"})
    layer = image.layers[0]
    path = store.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one bit pattern different
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(BuildError, match="corrupted"):
        store.read_blob(layer.digest, layer.size)
    from builder.image.layers import apply_layers

    with pytest.raises(BuildError):
        apply_layers(store, image.layers, tmp_path / "out", image.diff_ids)

    # a truncated config is caught too, by a fresh store that has nothing cached
    config_path = store.blob_path(image.id)
    config_path.write_bytes(config_path.read_bytes()[:-3])
    fresh = ImageStore(store.root)
    with pytest.raises(BuildError, match="corrupted|bytes"):
        fresh.resolve(image.id)


CRASHING_WRITER = textwrap.dedent("""
    import sys
    from builder.image.store import ImageStore
    store = ImageStore(sys.argv[1])
    store.put_blob(sys.stdin.buffer, "application/octet-stream")
""")


def test_crash_mid_write_leaves_store_intact(store, tmp_path):
    image = make_image(store, tmp_path, {"a.txt": "kept"})
    store.tag(image, "kept:1")
    index_before = (store.root / "index.json").read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(store.root)], stdin=subprocess.PIPE)
    try:
        proc.stdin.write(os.urandom(4 * 1024 * 1024))
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in store.tmp_dir.iterdir()):
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.05)
        # while the writer lives, its temp file is locked and survives a cleanup
        assert ImageStore(store.root).clean_tmp() == 0
        assert any(store.tmp_dir.iterdir())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdin.close()
    assert any(store.tmp_dir.iterdir()), "the killed writer left its temp file"
    reopened = ImageStore(store.root)  # opening cleans what the crash left
    assert list(reopened.tmp_dir.iterdir()) == []
    assert (reopened.root / "index.json").read_bytes() == index_before
    assert reopened.resolve("kept:1").id == image.id
    blobs = {p.name for p in (reopened.root / "blobs" / "sha256").iterdir()}
    assert blobs == {image.digest[7:], image.id[7:], image.layers[0].digest[7:]}


def test_live_blob_writer_survives_cleanup(store):
    writer = store.new_blob()
    writer.write(b"half")
    other = ImageStore(store.root)
    assert other.clean_tmp() == 0
    desc = writer.commit("text/plain")
    assert store.read_blob(desc.digest) == b"half"


TAGGER = textwrap.dedent("""
    import sys
    from builder.image.store import ImageStore
    store = ImageStore(sys.argv[1])
    image = store.resolve(sys.argv[2])
    for i in range(15):
        store.tag(image, f"{sys.argv[3]}:{i}")
""")


def test_concurrent_index_updates_lose_nothing(store, tmp_path):
    image = make_image(store, tmp_path, {"a": "a"})
    procs = [subprocess.Popen([sys.executable, "-c", TAGGER, str(store.root), image.id, f"writer{n}"])
             for n in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    names = set(store.names_of(image))
    assert names == {f"writer{n}:{i}" for n in range(4) for i in range(15)}


def test_names_resolve_tag_untag(store, tmp_path):
    one = make_image(store, tmp_path, {"one": "1"})
    two = make_image(store, tmp_path, {"two": "2"})
    assert store.tag(one, "example.com:5000/team/app") == "example.com:5000/team/app:latest"
    store.tag(one, "app:v1")
    store.tag(two, "other")
    assert store.resolve("app:v1").id == one.id
    assert store.resolve("other").id == two.id
    assert store.resolve("other:latest").digest == two.digest
    assert store.resolve(one.id).id == one.id
    assert store.resolve(one.id[7:19]).id == one.id
    assert store.resolve(f"app@{one.digest}").id == one.id
    with pytest.raises(BuildError, match="image not found: nope"):
        store.resolve("nope")
    with pytest.raises(BuildError, match="invalid reference"):
        store.tag(one, "UPPER:case")

    entries = json.loads((store.root / "index.json").read_text())["manifests"]
    refs = {e["annotations"][mt.ANNOTATION_REF_NAME] for e in entries if e.get("annotations")}
    assert refs == {"example.com:5000/team/app:latest", "app:v1", "other:latest"}
    assert all(e["platform"] == {"architecture": "amd64", "os": "linux"} for e in entries)

    # moving a name leaves the old image dangling (untagged), as docker's <none>
    store.tag(one, "other")
    listing = {img.id: names for names, img in store.images()}
    assert sorted(listing[one.id]) == ["app:v1", "example.com:5000/team/app:latest", "other:latest"]
    assert listing[two.id] == []
    store.untag("app:v1")
    assert "app:v1" not in store.names_of(one)
    with pytest.raises(BuildError, match="image not found"):
        store.untag("app:v1")


def test_remove_and_gc(store, tmp_path):
    shared_tree = tmp_path / "shared"
    shared_tree.mkdir()
    (shared_tree / "base").write_text("base layer")
    base_layer, base_diff = write_layer_from_dir(shared_tree, store)
    images = []
    for n in range(2):
        tree = tmp_path / f"top{n}"
        tree.mkdir()
        (tree / "file").write_text(f"top {n}")
        top, top_diff = write_layer_from_dir(tree, store)
        config = {"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [base_diff, top_diff]}}
        images.append(store.commit_image(config, [base_layer, top]))
    a, b = images
    store.tag(a, "a:1")
    store.tag(a, "a:2")
    store.tag(b, "b")
    lower = store.unpacked_layer(a.diff_ids[1])
    assert (lower / "file").read_text() == "top 0"

    with pytest.raises(BuildError, match="must be forced"):
        store.remove(a.id)
    assert store.remove("a:1") == ["Untagged: a:1"]
    assert store.names_of(a) == ["a:2"]
    lines = store.remove("a:2")
    assert lines == ["Untagged: a:2", f"Deleted: {a.id}"]
    assert not store.has_blob(a.layers[1].digest) and not store.has_blob(a.digest) and not store.has_blob(a.id)
    assert store.has_blob(base_layer.digest), "a layer b still uses must stay"
    assert not lower.exists()
    assert store.resolve("b").id == b.id

    # gc: an unreferenced blob goes, one named in keep stays, reachable ones stay
    stray = store.put_blob(b"stray", "text/plain")
    kept = store.put_blob(b"kept by the build cache", "text/plain")
    counts = store.gc(keep=[kept.digest])
    assert counts["blobs"] == 1
    assert not store.has_blob(stray.digest) and store.has_blob(kept.digest)
    assert store.resolve("b").layers == b.layers

    # removing an untagged image by id needs no force
    store.untag("b")
    assert store.remove(b.id[7:15]) == [f"Deleted: {b.id}"]
    assert store.images() == []


def test_remove_by_name_untags_while_other_names_remain(store, tmp_path):
    image = make_image(store, tmp_path, {"x": "x"})
    store.tag(image, "x:1")
    store.tag(image, "x:2")
    assert store.remove("x:1") == ["Untagged: x:1"]
    assert store.names_of(image) == ["x:2"]
    assert store.has_blob(image.id)


@pytest.mark.root
def test_unpacked_layer_keeps_whiteouts_in_overlay_form(store, tmp_path):
    upper = tmp_path / "upper"
    (upper / "opaque").mkdir(parents=True)
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    (upper / "opaque" / "new").write_text("n")
    os.mknod(upper / "deleted", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    layer, diff_id = write_layer_from_dir(upper, store)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    store.commit_image(config, [layer])
    path = store.unpacked_layer(diff_id)
    assert path == store.unpacked_layer(diff_id)
    assert os.lstat(path / "deleted").st_rdev == 0 and stat.S_ISCHR(os.lstat(path / "deleted").st_mode)
    assert os.getxattr(path / "opaque", "trusted.overlay.opaque") == b"y"
    assert (path / "opaque" / "new").read_text() == "n"
    assert list(store.tmp_dir.iterdir()) == []


def test_inspect_data(store, tmp_path):
    image = make_image(store, tmp_path, {"f": "1"}, cmd=("echo", "hi"))
    store.tag(image, "insp:1")
    data = store.inspect("insp:1")
    assert data["Id"] == image.id and data["RepoTags"] == ["insp:1"]
    assert data["Config"]["Cmd"] == ["echo", "hi"]
    assert data["RootFS"] == {"Type": "layers", "Layers": image.diff_ids}
    assert data["Architecture"] == "amd64" and data["Os"] == "linux"
    assert data["Size"] == image.size > 0


@pytest.mark.root
def test_cleanup_unmounts_a_dead_builds_leftover_but_never_a_live_one(store, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "file").write_text("outside the store")
    leftover = store.tmp_dir / "crashed-step"
    (leftover / "merged").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(precious), str(leftover / "merged")], check=True)
    fd = os.open(leftover, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # its build is alive: left alone, mount and all
        assert ImageStore(store.root).clean_tmp() == 0
        assert (leftover / "merged" / "file").exists()
    finally:
        os.close(fd)
    try:
        assert store.clean_tmp() == 1  # its owner is gone: unmounted first, then removed
    finally:
        subprocess.run(["umount", str(leftover / "merged")], capture_output=True)
    assert not leftover.exists()
    assert (precious / "file").read_text() == "outside the store"
