"""save/load in docker-archive and oci-archive form, layouts made by skopeo, rootfs imports, and safe
extraction of local archives for ADD (malicious ones refused)."""

from __future__ import annotations

import bz2
import functools
import gzip
import http.server
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from builder.image.archive import import_rootfs, load, save
from builder.errors import BuildError
from builder.image.layers import write_layer_from_dir
from builder.image.layout import import_layout, write_layout
from builder.bundle.rootfs import materialize
from builder.dockerfile.instructions import config_from_changes
from builder.image.store import ImageStore
from builder.image.tarsafe import extract_archive, is_archive
from builder_support import CAP_NET_RAW, make_sample_tree, tree_state

SKOPEO = shutil.which("skopeo")


@pytest.fixture
def two_layer_image(store, tmp_path):
    """An image of two layers (the second deletes a file of the first), tagged sample:1 and sample:2."""
    base = make_sample_tree(tmp_path / "base")
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / ".wh.hostname").write_text("")
    (top / "etc" / "motd").write_text("hello\n")
    layer1, diff1 = write_layer_from_dir(base, store)
    layer2, diff2 = write_layer_from_dir(top, store, compression="zstd")
    config = {"created": "2024-05-01T00:00:00Z", "architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["sh"], "Env": ["A=1"]},
              "rootfs": {"type": "layers", "diff_ids": [diff1, diff2]},
              "history": [{"created_by": "one"}, {"created_by": "two"}]}
    image = store.commit_image(config, [layer1, layer2])
    store.tag(image, "sample:1")
    store.tag(image, "sample:2")
    return image


def rootfs_state(store: ImageStore, image, dest: Path) -> dict:
    return tree_state(materialize(store, image, dest))


@pytest.mark.root
@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_load_round_trip(fmt, store, two_layer_image, tmp_path):
    archive = tmp_path / f"out-{fmt}.tar"
    save(store, ["sample:1", "sample:2"], archive, format=fmt)
    other = ImageStore(tmp_path / "other")
    assert load(other, archive) == ["Loaded image: sample:1", "Loaded image: sample:2"]
    loaded = other.resolve("sample:2")
    assert loaded.id == two_layer_image.id, "the config bytes, hence the image ID, survive"
    assert loaded.diff_ids == two_layer_image.diff_ids
    expected = rootfs_state(store, two_layer_image, tmp_path / "want")
    assert rootfs_state(other, loaded, tmp_path / "got") == expected
    assert "etc/hostname" not in expected and "etc/motd" in expected
    # saving again gives the same bytes
    again = tmp_path / f"again-{fmt}.tar"
    save(store, ["sample:1", "sample:2"], again, format=fmt)
    assert again.read_bytes() == archive.read_bytes()


@pytest.mark.root
def test_docker_archive_layout(store, two_layer_image, tmp_path):
    archive = tmp_path / "docker.tar"
    save(store, ["sample:1"], archive, format="docker")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        repositories = json.load(tar.extractfile("repositories"))
        assert manifest[0]["RepoTags"] == ["sample:1"]
        assert manifest[0]["Config"] == two_layer_image.id[7:] + ".json"
        for path, diff_id in zip(manifest[0]["Layers"], two_layer_image.diff_ids):
            data = tar.extractfile(path).read()  # uncompressed, as docker load expects
            import hashlib

            assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id
    assert repositories == {"sample": {"1": manifest[0]["Layers"][-1].split("/")[0]}}


@pytest.mark.root
@pytest.mark.skipif(not SKOPEO, reason="skopeo is not installed")
def test_skopeo_reads_our_docker_archive(store, two_layer_image, tmp_path):
    archive = tmp_path / "docker.tar"
    save(store, ["sample:1"], archive, format="docker")
    out = subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{archive}"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["rootfs"]["diff_ids"] == two_layer_image.diff_ids
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{tmp_path / 'sk'}:copied"],
                   check=True, capture_output=True)
    other = ImageStore(tmp_path / "other")
    assert load(other, tmp_path / "sk") == ["Loaded image: copied:latest"]
    assert rootfs_state(other, other.resolve("copied"), tmp_path / "got") == \
        rootfs_state(store, two_layer_image, tmp_path / "want")


@pytest.mark.root
@pytest.mark.skipif(not SKOPEO, reason="skopeo is not installed")
def test_load_layout_written_by_skopeo(store, two_layer_image, tmp_path):
    write_layout(store, two_layer_image, tmp_path / "A", "x")
    subprocess.run(["skopeo", "copy", "-q", f"oci:{tmp_path / 'A'}:x", f"oci:{tmp_path / 'B'}:y"],
                   check=True, capture_output=True)
    other = ImageStore(tmp_path / "other")
    assert load(other, tmp_path / "B") == ["Loaded image: y:latest"]
    loaded = other.resolve("y")
    assert loaded.id == two_layer_image.id
    assert rootfs_state(other, loaded, tmp_path / "got") == rootfs_state(store, two_layer_image, tmp_path / "want")
    # and the oci-archive skopeo writes
    subprocess.run(["skopeo", "copy", "-q", f"oci:{tmp_path / 'A'}:x", f"oci-archive:{tmp_path / 'c.tar'}:z"],
                   check=True, capture_output=True)
    assert load(ImageStore(tmp_path / "third"), tmp_path / "c.tar") == ["Loaded image: z:latest"]
    # import_layout picks one image by ref name
    assert import_layout(ImageStore(tmp_path / "fourth"), tmp_path / "B", "y").id == two_layer_image.id


@pytest.mark.root
def test_load_untagged_and_compressed_archives(store, two_layer_image, tmp_path):
    archive = tmp_path / "byid.tar"
    save(store, [two_layer_image.id], archive, format="oci")
    gz = tmp_path / "byid.tar.gz"
    gz.write_bytes(gzip.compress(archive.read_bytes()))
    other = ImageStore(tmp_path / "other")
    assert load(other, gz) == [f"Loaded image ID: {two_layer_image.id}"]
    assert other.images()[0][0] == []
    with pytest.raises(BuildError, match="neither a docker-archive"):
        bogus = tmp_path / "bogus.tar"
        with tarfile.open(bogus, "w") as tar:
            tar.addfile(tarfile.TarInfo("hello"), io.BytesIO())
        load(other, bogus)


def _busybox_tarball(busybox_template: Path, dest: Path, compress: str = "gz") -> Path:
    flag = {"gz": "-z", "xz": "-J", "": None}[compress]
    cmd = ["tar", "--numeric-owner", "-C", str(busybox_template), "-c", *([flag] if flag else []), "-f",
           str(dest), "."]
    subprocess.run(cmd, check=True)
    return dest


def test_import_rootfs_from_path_stdin_and_url(store, busybox_template, tmp_path, monkeypatch):
    tarball = _busybox_tarball(busybox_template, tmp_path / "busybox.tar.gz")
    image = import_rootfs(store, tarball, "busybox",
                          config_from_changes(['CMD ["sh"]', "ENV A=1 B=\"x y\"", "WORKDIR /root"]))
    assert store.resolve("busybox").id == image.id
    config = image.config
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["rootfs"] == {"type": "layers", "diff_ids": image.diff_ids} and len(image.diff_ids) == 1
    assert config["history"][0] == {"created": config["created"], "created_by": "",
                                    "comment": f"Imported from {tarball}"}
    assert config["config"] == {"Cmd": ["sh"], "Env": ["A=1", "B=x y"], "WorkingDir": "/root"}
    assert image.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    rootfs = materialize(store, image, tmp_path / "rootfs")
    assert os.access(rootfs / "bin" / "busybox", os.X_OK) and os.readlink(rootfs / "bin" / "sh") == "/bin/busybox"

    # stdin, uncompressed
    plain = _busybox_tarball(busybox_template, tmp_path / "busybox.tar", "")
    with open(plain, "rb") as f:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(f))
        from_stdin = import_rootfs(store, "-", "busybox:stdin")
    assert from_stdin.diff_ids == image.diff_ids

    # a URL, xz-compressed, served on loopback
    _busybox_tarball(busybox_template, tmp_path / "serve.tar.xz", "xz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/serve.tar.xz"
        from_url = import_rootfs(store, url, "busybox:url")
        assert from_url.diff_ids == image.diff_ids
        with pytest.raises(BuildError, match="failed to fetch"):
            import_rootfs(store, url + ".missing", "x")
    finally:
        server.shutdown()
        server.server_close()

    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("just text\n" * 100)
    with pytest.raises(BuildError, match="not a tar archive"):
        import_rootfs(store, not_tar, "nope")


# --- ADD of local archives -------------------------------------------------------------------------

def _entry(name: str, kind=tarfile.REGTYPE, linkname: str = "", data: bytes | None = None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if data is not None:
        info.size = len(data)
    return info, data


def _write_tar(path: Path, *entries) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


MALICIOUS = {
    "dotdot": [_entry("../evil", data=b"x")],
    "nested-dotdot": [_entry("a/../../evil", data=b"x")],
    "absolute": [_entry("/tmp/evil-absolute", data=b"x")],
    "symlink-absolute": [_entry("link", tarfile.SYMTYPE, "/"), _entry("link/evil", data=b"x")],
    "symlink-relative": [_entry("link", tarfile.SYMTYPE, "../.."), _entry("link/evil", data=b"x")],
    "symlink-chain": [_entry("a", tarfile.SYMTYPE, "b"), _entry("b", tarfile.SYMTYPE, "c/../.."),
                      _entry("c/", tarfile.DIRTYPE), _entry("a/evil", data=b"x")],
    "symlink-dir-entry": [_entry("link", tarfile.SYMTYPE, ".."), _entry("link/sub/", tarfile.DIRTYPE)],
    "hardlink-dotdot": [_entry("h", tarfile.LNKTYPE, "../outside.txt")],
    "hardlink-absolute": [_entry("h", tarfile.LNKTYPE, "/etc/passwd")],
    "hardlink-via-symlink": [_entry("link", tarfile.SYMTYPE, ".."), _entry("h", tarfile.LNKTYPE, "link/outside.txt")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_refused(case, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("do not touch")
    before = sorted(p.name for p in tmp_path.iterdir())
    archive = _write_tar(tmp_path / "evil.tar", *MALICIOUS[case])
    dest = tmp_path / "dest"
    with pytest.raises(BuildError) as err:
        extract_archive(archive, dest)
    offending = MALICIOUS[case][-1][0].name.rstrip("/")
    assert repr(offending) in str(err.value) or offending in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "dest") == sorted(before + ["evil.tar"])
    assert outside.read_text() == "do not touch" and os.stat(outside).st_nlink == 1
    assert not Path("/tmp/evil-absolute").exists()


@pytest.mark.root
@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz", "zst"])
def test_extract_archive_detects_compression_and_keeps_metadata(compression, tmp_path):
    tree = make_sample_tree(tmp_path / "tree")
    plain = tmp_path / "a.tar"
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", str(tree), "-cf",
                    str(plain), "."], check=True)
    data = plain.read_bytes()
    archive = tmp_path / f"archive.{compression or 'plain'}"  # the name says nothing: content decides
    if compression == "gz":
        data = gzip.compress(data)
    elif compression == "bz2":
        data = bz2.compress(data)
    elif compression == "xz":
        data = lzma.compress(data)
    elif compression == "zst":
        data = subprocess.run(["zstd", "-q", "-c"], input=data, check=True, capture_output=True).stdout
    archive.write_bytes(data)
    assert is_archive(archive)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.chmod(dest, 0o700)
    extract_archive(archive, dest)
    assert tree_state(dest) == tree_state(tree)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700, "the archive's ./ entry must not change dest"
    assert os.getxattr(dest / "bin" / "ping", "security.capability") == CAP_NET_RAW
    assert os.stat(dest / "bin" / "ping").st_ino == os.stat(dest / "bin" / "ping-hardlink").st_ino


@pytest.mark.root
def test_extract_archive_follows_inside_symlinks_and_chown(tmp_path):
    archive = _write_tar(tmp_path / "ok.tar",
                         _entry("real/", tarfile.DIRTYPE),
                         _entry("alias", tarfile.SYMTYPE, "real"),
                         _entry("alias/file", data=b"through an inside link"),
                         _entry("escape-link", tarfile.SYMTYPE, "/etc/shadow"))
    dest = tmp_path / "dest"
    extract_archive(archive, dest, chown=(4321, 8765))
    assert (dest / "real" / "file").read_bytes() == b"through an inside link"
    assert os.readlink(dest / "escape-link") == "/etc/shadow", "a symlink pointing out is fine as a file"
    st = os.lstat(dest / "real" / "file")
    assert (st.st_uid, st.st_gid) == (4321, 8765)
    (dest / "dir").mkdir()
    with pytest.raises(BuildError, match="directory is in the way"):
        extract_archive(_write_tar(tmp_path / "clash.tar", _entry("dir", data=b"x")), dest)
    assert not is_archive(tmp_path / "ok.tar.missing")
    text = tmp_path / "text"
    text.write_text("not an archive")
    assert not is_archive(text)
