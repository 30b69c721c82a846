"""Hostile archives and image records: whatever an archive holds, `load` and `import` are one error line
naming the file (no traceback) and leave the store as it was; images are verified at the door; one
damaged record never breaks commands on other images; images a build uses are held; output paths that
are not regular files are written through, never replaced."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.errors import BuildError
from builder.image import mediatypes as mt
from builder.image.archive import import_rootfs, load, save
from builder.image.store import ImageStore
from support import PYDOCK, tar_bytes


LAYER = tar_bytes({"hello": b"hi\n"})
DIFF_ID = "sha256:" + hashlib.sha256(LAYER).hexdigest()
GOOD_CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]}}


def docker_archive(config, tags=("ok:1",), layers=("l/layer.tar",)) -> bytes:
    files = {"cfg.json": json.dumps(config).encode(), "l/layer.tar": LAYER,
             "manifest.json": json.dumps([{"Config": "cfg.json", "RepoTags": tags, "Layers": list(layers)}]).encode()}
    return tar_bytes(files)


def blob(files: dict, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    files[f"blobs/sha256/{digest[7:]}"] = data
    return digest


def oci_archive(config, layer: bytes = LAYER, platform=None, name="ok:1") -> bytes:
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    cfg = json.dumps(config).encode()
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": blob(files, cfg), "size": len(cfg)},
                "layers": [{"mediaType": mt.OCI_LAYER_TAR, "digest": blob(files, layer), "size": len(layer)}]}
    raw = json.dumps(manifest).encode()
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": blob(files, raw), "size": len(raw),
             "annotations": {mt.ANNOTATION_REF_NAME: name}}
    if platform is not None:
        entry["platform"] = platform
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    return tar_bytes(files)


def state(store: ImageStore) -> tuple:
    """What a refused command must not change: index.json, the blobs, the unpacked layers."""
    return ((store.root / "index.json").read_bytes(), sorted(os.listdir(store.root / "blobs" / "sha256")),
            sorted(os.listdir(store.unpacked_dir)))


def pydock(root: Path, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*PYDOCK, "--root", str(root), *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


def assert_one_error(proc: subprocess.CompletedProcess, *mentions: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pydock: error: "), proc.stderr
    for m in mentions:
        assert m in lines[0], lines[0]


def refused_in_process(store: ImageStore, path: Path, match: str | None = None) -> BuildError:
    before = state(store)
    with pytest.raises(BuildError, match=match) as info:
        load(store, path)
    assert state(store) == before
    return info.value


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "store")


# -- 8. malformed configs, indexes, truncated or garbage archives: one error naming the file ---------------
BAD_CONFIGS = [[], "x", 1, None, {"rootfs": "x"}, {"rootfs": []}, {"rootfs": {"diff_ids": "x"}},
               {"rootfs": {"diff_ids": [1]}}, {"rootfs": {"diff_ids": ["sha256:../../etc"]}},
               {"rootfs": {"diff_ids": []}}, {"rootfs": {"diff_ids": [DIFF_ID, DIFF_ID]}},
               dict(GOOD_CONFIG, config=[]), dict(GOOD_CONFIG, history={}), dict(GOOD_CONFIG, os=7)]


@pytest.mark.parametrize("i", range(len(BAD_CONFIGS)))
def test_malformed_configs_are_refused_naming_the_file(store, tmp_path, i):
    for kind, make in (("docker", docker_archive), ("oci", oci_archive)):
        path = tmp_path / f"{kind}-{i}.tar"
        path.write_bytes(make(BAD_CONFIGS[i]))
        err = refused_in_process(store, path)
        assert str(path) in str(err)


def test_malformed_archives_through_the_cli(store, tmp_path):
    cases = {"config-list.tar": docker_archive([]), "rootfs-string.tar": docker_archive({"rootfs": "x"}),
             "platform-string.tar": oci_archive(GOOD_CONFIG, platform="linux/amd64"),
             "truncated.tar": docker_archive(GOOD_CONFIG)[:1500],
             "garbage.tar.gz": b"\x1f\x8b\x08\x00" + random.Random(1).randbytes(600),
             "not-a-tar": b"hello world\n" * 50}
    before = state(store)
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_one_error(pydock(store.root, "load", "-i", tmp_path / name), name)
    assert state(store) == before


def test_truncated_and_corrupted_archives_at_generated_points(store, tmp_path):
    rnd = random.Random(8)
    good = docker_archive(GOOD_CONFIG)
    path = tmp_path / "a.tar"
    for _ in range(60):
        data = bytearray(good[:rnd.randrange(1, len(good))] if rnd.random() < 0.5 else good)
        for _ in range(rnd.randrange(0, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        for blob_data in (bytes(data), gzip.compress(bytes(data))[:rnd.randrange(10, 200)]):
            path.write_bytes(blob_data)
            before = state(store)
            try:
                load(store, path)
            except BuildError:
                assert state(store) == before
            else:  # the damage missed everything that matters: then it loaded completely
                assert any(names == ["ok:1"] for names, _ in store.images())
                store.remove("ok:1")


# -- 9. all or nothing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("tags", ["evil:latest", ["ok:1", "BAD TAG"], ["ok:1", 7], {"a": 1}, [None], ["x@y"]])
def test_a_refused_tag_list_changes_nothing(store, tmp_path, tags):
    path = tmp_path / "a.tar"
    path.write_bytes(docker_archive(GOOD_CONFIG, tags=tags))
    refused_in_process(store, path, "RepoTags|reference")
    assert store.images() == []


def test_a_later_bad_image_takes_back_the_earlier_good_one(store, tmp_path):
    files = {"cfg.json": json.dumps(GOOD_CONFIG).encode(), "bad.json": b"[]", "l/layer.tar": LAYER,
             "manifest.json": json.dumps([{"Config": "cfg.json", "RepoTags": ["ok:1"], "Layers": ["l/layer.tar"]},
                                          {"Config": "bad.json", "RepoTags": ["bad:1"], "Layers": []}]).encode()}
    path = tmp_path / "two.tar"
    path.write_bytes(tar_bytes(files))
    refused_in_process(store, path, "bad.json")


@pytest.mark.parametrize("ref", ["UPPER", "a b", "x:", "x@sha256:00", ":tag", "a" * 300, "x-"])
def test_an_invalid_import_reference_stores_nothing(store, tmp_path, ref):
    path = tmp_path / "rootfs.tar"
    path.write_bytes(LAYER)
    before = state(store)
    with pytest.raises(BuildError, match="reference"):
        import_rootfs(store, path, ref)
    assert state(store) == before
    assert_one_error(pydock(store.root, "import", path, ref), "reference")
    assert state(store) == before


# -- 10. verified at the door; one damaged record never breaks the others ---------------------------------
def test_oci_layers_are_checked_against_the_diff_ids(store, tmp_path):
    other = "sha256:" + "ab" * 32
    for i, config in enumerate([dict(GOOD_CONFIG, rootfs={"type": "layers", "diff_ids": [other]}),
                                dict(GOOD_CONFIG, rootfs={"type": "layers", "diff_ids": []})]):
        for layer in (LAYER, gzip.compress(LAYER)):
            path = tmp_path / f"oci-{i}.tar"
            path.write_bytes(oci_archive(config, layer))
            refused_in_process(store, path, "diff_id|config says")
    path = tmp_path / "good.tar"
    path.write_bytes(oci_archive(GOOD_CONFIG, gzip.compress(LAYER)))
    assert load(store, path) == ["Loaded image: ok:1"]


def damage_config(store: ImageStore, name: str, config) -> None:
    """Give the image `name` a malformed config behind the store's back (as a crash or a bug might)."""
    index = json.loads((store.root / "index.json").read_text())
    image = store.resolve(name)
    manifest = dict(image.manifest)
    cfg = json.dumps(config).encode()
    manifest["config"] = dict(manifest["config"], digest=store.put_blob(cfg, mt.OCI_CONFIG).digest, size=len(cfg))
    desc = store.put_json(manifest, mt.OCI_MANIFEST)
    for e in index["manifests"]:
        if (e.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) == name:
            e["digest"], e["size"] = desc.digest, desc.size
    (store.root / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("bad", [[], {"rootfs": "x"}, {"rootfs": {"diff_ids": 3}}, "text"])
def test_a_damaged_record_never_breaks_commands_on_other_images(store, tmp_path, bad):
    path = tmp_path / "rootfs.tar"
    path.write_bytes(LAYER)
    import_rootfs(store, path, "damaged:1")
    import_rootfs(store, path, "other:1", {"Cmd": ["x"]})
    import_rootfs(store, path, "third:1", {"Cmd": ["y"]})
    damage_config(store, "damaged:1", bad)
    assert pydock(store.root, "images").returncode == 0
    proc = pydock(store.root, "rmi", "other:1")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "Deleted:" in proc.stdout
    assert [names for names, _ in store.images()] == [["third:1"]]
    assert_one_error(pydock(store.root, "inspect", "damaged:1"), "image config")
    assert store.resolve("third:1").config["config"] == {"Cmd": ["y"]}  # its blobs were kept
    proc = pydock(store.root, "rmi", "damaged:1")  # and the damaged record itself can go
    assert proc.returncode == 0 and "Untagged: damaged:1" in proc.stdout, proc.stderr
    assert [names for names, _ in store.images()] == [["third:1"]]
    assert store.resolve("third:1").config["config"] == {"Cmd": ["y"]}
    assert len(json.loads((store.root / "index.json").read_text())["manifests"]) == 1


# -- 13. images a build uses are held -------------------------------------------------------------------
def test_rmi_refuses_an_image_a_build_holds(store, tmp_path):
    path = tmp_path / "rootfs.tar"
    path.write_bytes(LAYER)
    image = import_rootfs(store, path, "base:1")
    layer_dir = store.unpacked_layer(image.diff_ids[0], image.layers[0])
    with store.hold() as hold:
        hold.add(image)
        proc = pydock(store.root, "rmi", "base:1")
        assert_one_error(proc, "being used")
        assert pydock(store.root, "rmi", "-f", image.id).returncode != 0
        assert [names for names, _ in store.images()] == [["base:1"]]
        assert layer_dir.is_dir()
    assert pydock(store.root, "rmi", "base:1").returncode == 0


def test_a_dead_holders_hold_is_void(store, tmp_path):
    path = tmp_path / "rootfs.tar"
    path.write_bytes(LAYER)
    import_rootfs(store, path, "base:1")
    (store.holds_dir / "12345-dead").write_text(store.resolve("base:1").digest + "\n")  # nobody locks it
    assert pydock(store.root, "rmi", "base:1").returncode == 0
    assert not (store.holds_dir / "12345-dead").exists()


# -- 12. a killed build's mounts are recovered by the next command ----------------------------------------
@pytest.mark.root
def test_the_next_command_recovers_a_killed_builds_mounted_step(store, tmp_path):
    script = f"""
import os, subprocess, sys, time
from builder.image.store import ImageStore
store = ImageStore({str(store.root)!r})
path, fd = store.temp_dir("step-")
os.mkdir(path / "merged")
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path / "merged")], check=True)
print(path, flush=True)
time.sleep(600)
"""
    proc = subprocess.Popen([os.sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    step = Path(proc.stdout.readline().strip())
    try:
        assert pydock(store.root, "images").returncode == 0
        assert (step / "merged").is_mount()  # a live build: left alone
    finally:
        proc.kill()
        proc.wait()
    assert pydock(store.root, "images").returncode == 0
    assert not step.exists()
    assert str(step) not in Path("/proc/self/mountinfo").read_text()


# -- 15. output paths that are not regular files are written through ---------------------------------------
def test_outputs_are_written_through_devices_fifos_and_symlinks(store, tmp_path):
    path = tmp_path / "rootfs.tar"
    path.write_bytes(LAYER)
    import_rootfs(store, path, "img:1")
    proc = pydock(store.root, "save", "-o", "/dev/full", "img:1")
    assert_one_error(proc, "/dev/full", "No space left on device")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)
    assert pydock(store.root, "save", "-o", "/dev/null", "img:1").returncode == 0
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    target = tmp_path / "target.tar"
    link = tmp_path / "link.tar"
    link.symlink_to(target)
    assert pydock(store.root, "save", "-o", link, "img:1").returncode == 0
    assert link.is_symlink() and tarfile.is_tarfile(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert pydock(store.root, "save", "-o", fifo, "img:1").returncode == 0
    data = reader.communicate(timeout=60)[0]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and data[257:262] == b"ustar"
    regular = tmp_path / "out.tar"
    regular.write_bytes(b"old")
    save(store, ["img:1"], regular)
    assert tarfile.is_tarfile(regular)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    (tmp_path / "adir").mkdir()
    assert_one_error(pydock(store.root, "save", "-o", tmp_path / "adir", "img:1"), "directory")
