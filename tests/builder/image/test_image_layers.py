"""Layer tars: deterministic output, every file type kept, overlayfs whiteouts both ways, safe extraction,
and flat memory for big files. Runs as root against the real filesystem and a real overlayfs mount."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from builder_support import CAP_NET_RAW, make_sample_tree, raw_names, tree_state

from builder.errors import BuildError
from builder.image.layers import apply_layer, write_layer_from_dir, write_tar
from builder.bundle.rootfs import mount_overlay, unmount
from builder.image.store import ImageStore

# A file capability set: version 2, cap_net_raw (bit 13) permitted + effective.
def layer_bytes(store: ImageStore, desc) -> bytes:
    with store.open_blob(desc.digest, desc.size) as f:
        return f.read()


@pytest.mark.root
def test_same_tree_gives_same_digest_and_sorted_normalised_entries(store, tmp_path):
    tree = make_sample_tree(tmp_path / "tree")
    first = write_layer_from_dir(tree, store)
    second = write_layer_from_dir(tree, store)
    assert first == second
    desc, diff_id = first
    assert desc.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    compressed = layer_bytes(store, desc)
    assert compressed[:2] == b"\x1f\x8b"
    assert compressed[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    assert not compressed[3] & 0x08, "gzip header must not carry a file name"

    plain, plain_diff = write_layer_from_dir(tree, store, compression=None)
    assert plain_diff == diff_id == plain.digest
    data = layer_bytes(store, plain)
    names = raw_names(data)
    # depth-first, children in byte order, parents first, directories with a trailing slash, no root entry
    assert names[:3] == ["-dash", "bin/", "bin/ping"]
    assert names.index("usr/") < names.index("usr/lib/") < names.index("usr/lib/abs-link")
    assert "tmp/" in names and "lib" in names and "./" not in names and "" not in names
    assert names == sorted(names, key=lambda n: [p.encode() for p in n.rstrip("/").split("/")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar}
    assert all(m.uname == "" and m.gname == "" for m in members.values())
    assert members["home/user/notes.txt"].uid == 1234 and members["home/user/notes.txt"].gid == 5678
    assert members["bin/ping-hardlink"].islnk() and members["bin/ping-hardlink"].linkname == "bin/ping"
    assert members["bin/ping"].pax_headers["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == CAP_NET_RAW
    assert members["etc/hostname"].mtime == 1_600_000_000


@pytest.mark.root
def test_source_date_epoch_clamps_mtimes(store, tmp_path):
    a = make_sample_tree(tmp_path / "a")
    b = make_sample_tree(tmp_path / "b")
    epoch = 1_500_000_000
    for path in [b, *b.rglob("*")]:
        os.utime(path, (epoch + 12345, epoch + 12345), follow_symlinks=False)
    unclamped_a, _ = write_layer_from_dir(a, store)
    unclamped_b, _ = write_layer_from_dir(b, store)
    assert unclamped_a != unclamped_b
    clamped_a, diff_a = write_layer_from_dir(a, store, source_date_epoch=epoch)
    clamped_b, diff_b = write_layer_from_dir(b, store, source_date_epoch=epoch)
    assert (clamped_a, diff_a) == (clamped_b, diff_b)
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(store, clamped_a))) as tar:
        assert {m.mtime for m in tar} == {epoch}


@pytest.mark.root
def test_round_trip_keeps_links_devices_modes_owners_xattrs(store, tmp_path):
    tree = make_sample_tree(tmp_path / "tree")
    desc, diff_id = write_layer_from_dir(tree, store)
    out = tmp_path / "out"
    with store.open_blob(desc.digest, desc.size) as blob:
        assert apply_layer(blob, out) == diff_id
    assert tree_state(out, dir_mtimes=True) == tree_state(tree, dir_mtimes=True)
    ping, hard = os.stat(out / "bin" / "ping"), os.stat(out / "bin" / "ping-hardlink")
    assert ping.st_ino == hard.st_ino and stat.S_IMODE(ping.st_mode) == 0o4755
    assert os.getxattr(out / "bin" / "ping", "security.capability") == CAP_NET_RAW
    assert stat.S_IMODE(os.stat(out / "tmp").st_mode) == 0o1777


@pytest.mark.root
def test_zstd_and_plain_layers_hold_the_same_tar(store, tmp_path):
    tree = make_sample_tree(tmp_path / "tree")
    gz, gz_diff = write_layer_from_dir(tree, store, compression="gzip")
    zst, zst_diff = write_layer_from_dir(tree, store, compression="zstd")
    again, _ = write_layer_from_dir(tree, store, compression="zstd")
    assert zst.media_type == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert layer_bytes(store, zst)[:4] == b"\x28\xb5\x2f\xfd"
    assert zst == again and zst_diff == gz_diff
    out = tmp_path / "out"
    with store.open_blob(zst.digest, zst.size) as blob:
        assert apply_layer(blob, out) == gz_diff
    assert tree_state(out) == tree_state(tree)


def test_sockets_are_skipped(store, tmp_path):
    import socket

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file").write_text("x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "sock"))
    sock.close()
    desc, _ = write_layer_from_dir(tree, store, compression=None)
    assert raw_names(layer_bytes(store, desc)) == ["file"]


def _mutate_through_overlay(merged: Path) -> None:
    (merged / "deleted.txt").unlink()
    subprocess.run(["rm", "-rf", str(merged / "replaced")], check=True)
    (merged / "replaced").mkdir()
    (merged / "replaced" / "fresh.txt").write_text("new content")
    (merged / "kept" / "changed.txt").write_text("changed")
    (merged / "kept" / "gone").unlink()
    (merged / "dir-to-file").rmdir()
    (merged / "dir-to-file").write_text("was a dir")
    (merged / "added").mkdir()
    (merged / "added" / "new.bin").write_bytes(os.urandom(3000))
    os.chmod(merged / "kept" / "mode.txt", 0o4750)


def _make_lower(lower: Path) -> None:
    (lower / "kept").mkdir(parents=True)
    (lower / "deleted.txt").write_text("bye")
    (lower / "replaced" / "sub").mkdir(parents=True)
    (lower / "replaced" / "old.txt").write_text("old")
    (lower / "replaced" / "sub" / "deep.txt").write_text("deep")
    (lower / "kept" / "changed.txt").write_text("original")
    (lower / "kept" / "gone").write_text("x")
    (lower / "kept" / "mode.txt").write_text("m")
    (lower / "kept" / "untouched.txt").write_text("same")
    (lower / "dir-to-file").mkdir()


@pytest.mark.root
def test_overlay_whiteouts_round_trip(store, tmp_path):
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    _make_lower(lower)
    mount_overlay([lower], upper, work, merged)
    try:
        _mutate_through_overlay(merged)
        expected = tree_state(merged)
    finally:
        unmount(merged)
    # overlayfs recorded the deletion and the replacement its own way
    assert stat.S_ISCHR(os.lstat(upper / "deleted.txt").st_mode) and os.lstat(upper / "deleted.txt").st_rdev == 0
    assert os.getxattr(upper / "replaced", "trusted.overlay.opaque") == b"y"

    desc, diff_id = write_layer_from_dir(upper, store, compression=None)
    names = raw_names(layer_bytes(store, desc))
    assert ".wh.deleted.txt" in names and "kept/.wh.gone" in names
    assert names[names.index("replaced/") + 1] == "replaced/.wh..wh..opq"
    assert "replaced/old.txt" not in names and "deleted.txt" not in names

    # apply on a copy of the lower dir: the result is what the overlay showed
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(lower), str(copy)], check=True)
    with store.open_blob(desc.digest, desc.size) as blob:
        assert apply_layer(blob, copy) == diff_id
    assert tree_state(copy) == expected

    # and in "overlay" form the layer stacks over the lower dir as an overlayfs lowerdir again
    unpacked = tmp_path / "unpacked"
    with store.open_blob(desc.digest, desc.size) as blob:
        apply_layer(blob, unpacked, whiteouts="overlay")
    assert os.lstat(unpacked / "deleted.txt").st_rdev == 0
    assert os.getxattr(unpacked / "replaced", "trusted.overlay.opaque") == b"y"
    upper2, work2, merged2 = tmp_path / "upper2", tmp_path / "work2", tmp_path / "merged2"
    mount_overlay([lower, unpacked], upper2, work2, merged2)
    try:
        assert tree_state(merged2) == expected
    finally:
        unmount(merged2)


def _tar_with(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _entry(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def test_apply_layer_refuses_escapes_and_keeps_symlinks_inside(tmp_path):
    dest = tmp_path / "rootfs"
    with pytest.raises(BuildError, match=r"\.\./evil"):
        apply_layer(_tar_with((_entry("../evil"), b"x")), dest)
    assert not (tmp_path / "evil").exists()
    with pytest.raises(BuildError, match="hard link"):
        apply_layer(_tar_with((_entry("h", tarfile.LNKTYPE, "../../etc/passwd"), None)), dest)

    # absolute symlinks in a layer are resolved inside the rootfs, as the layer's author meant
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    layer = _tar_with((_entry("link", tarfile.SYMTYPE, str(host_dir)), None),
                      (_entry("link/planted"), b"x"),
                      (_entry("up", tarfile.SYMTYPE, "../../../.."), None),
                      (_entry("up/climbed"), b"y"))
    apply_layer(layer, dest)
    assert list(host_dir.iterdir()) == []
    assert (dest / str(host_dir).lstrip("/") / "planted").read_bytes() == b"x"
    assert (dest / "climbed").read_bytes() == b"y"
    assert not (tmp_path / "climbed").exists()

    # a whiteout removes a symlink, never what it points to
    target = tmp_path / "precious"
    target.write_text("keep")
    (dest / "victim").symlink_to(target)
    apply_layer(_tar_with((_entry(".wh.victim"), b"")), dest)
    assert not (dest / "victim").is_symlink() and target.read_text() == "keep"
    with pytest.raises(BuildError, match="names no file"):
        apply_layer(_tar_with((_entry("sub/.wh.."), b"")), dest)


@pytest.mark.root
def test_write_tar_matches_layer_diff_id(store, tmp_path):
    tree = make_sample_tree(tmp_path / "tree")
    _, diff_id = write_layer_from_dir(tree, store, overlay_whiteouts=False)
    buf = io.BytesIO()
    write_tar(tree, buf)
    assert "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest() == diff_id


MEMORY_PROBE = textwrap.dedent("""
    import os, resource, sys
    from pathlib import Path
    from builder.image.store import ImageStore
    from builder.image.layers import apply_layer, write_layer_from_dir
    tree, store_dir, out = map(Path, sys.argv[1:4])
    store = ImageStore(store_dir)
    desc, diff_id = write_layer_from_dir(tree, store, progress=False)
    with store.open_blob(desc.digest, desc.size) as blob:
        assert apply_layer(blob, out) == diff_id
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _peak_rss_kb(tree: Path, tmp_path: Path, tag: str) -> int:
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tree), str(tmp_path / f"store-{tag}"),
                           str(tmp_path / f"out-{tag}")], capture_output=True, text=True, check=True)
    return int(proc.stdout.strip())


def test_big_file_layer_uses_bounded_memory(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    (small / "f").write_bytes(b"tiny")
    big = tmp_path / "big"
    big.mkdir()
    block = os.urandom(1024 * 1024)
    with open(big / "f", "wb") as f:
        for i in range(50):
            f.write(block[i:] + block[:i])  # no two MiB alike
    baseline = _peak_rss_kb(small, tmp_path, "small")
    peak = _peak_rss_kb(big, tmp_path, "big")
    # Reading the 50 MiB file (or the layer) whole would add at least 50 MiB; allow a generous 20.
    assert peak - baseline < 20 * 1024, (baseline, peak)
    assert (tmp_path / "out-big" / "f").stat().st_size == 50 * 1024 * 1024


def test_broken_layer_data_is_a_build_error(tmp_path):
    good = _tar_with((_entry("f"), b"content"))
    import gzip

    broken = gzip.compress(good.getvalue())
    broken = broken[:20] + bytes(b ^ 0x5A for b in broken[20:40]) + broken[40:]
    with pytest.raises(BuildError, match="broken layer"):
        apply_layer(io.BytesIO(broken), tmp_path / "out")
    with pytest.raises(BuildError, match="broken layer"):
        apply_layer(io.BytesIO(gzip.compress(good.getvalue())[:-30]), tmp_path / "out2")
