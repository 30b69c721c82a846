"""Helpers the builder tests share (their fixtures are in conftest.py beside this file): a runner for the
pydock CLI, build contexts, reading and unpacking an `-o type=oci` output, and sample trees for layers
with a way to compare trees."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from support import PYDOCK

UMOCI = shutil.which("umoci")


class Pydock:
    """Runs `pydock --root ROOT ...` for one test's store."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args, input=None, check=False, timeout=300, env=None, cwd=None):
        full_env = dict(os.environ)
        full_env.pop("SOURCE_DATE_EPOCH", None)
        if env:
            full_env.update(env)
        proc = subprocess.run([*PYDOCK, "--root", str(self.root), *map(str, args)], input=input,
                              capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"pydock {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def build(self, ctx: Path, *args, check=True, **kw):
        return self(*args_with_defaults(args), str(ctx), check=check, **kw)

    def snapshot(self) -> dict[str, tuple]:
        """Every path under the store with its size (to check a failed build changed nothing)."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in filenames:
                p = os.path.join(dirpath, name)
                if name == "index.lock":
                    continue
                out[os.path.relpath(p, self.root)] = (os.path.getsize(p),)
            for name in dirnames:
                out[os.path.relpath(os.path.join(dirpath, name), self.root) + "/"] = ()
        return out


def args_with_defaults(args) -> list[str]:
    return ["build", *map(str, args)]


def make_context(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def unpack(layout: Path, ref: str, dest: Path) -> tuple[Path, dict]:
    """umoci unpack the layout's image `ref`; returns (rootfs, runtime config.json)."""
    if UMOCI is None:
        pytest.skip("umoci is not installed")
    subprocess.run([UMOCI, "unpack", "--image", f"{layout}:{ref}", str(dest)], check=True,
                   capture_output=True, text=True)
    return dest / "rootfs", json.loads((dest / "config.json").read_text())


def image_config(layout: Path, ref: str | None = None) -> tuple[dict, dict]:
    """(manifest, image config) of the layout's image named ref (or its only image)."""
    index = json.loads((layout / "index.json").read_text())
    entries = index["manifests"]
    if ref is not None:
        entries = [m for m in entries if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref]
    digest = entries[0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    return manifest, config


def layer_names(layout: Path, layer_digest: str) -> list[str]:
    with tarfile.open(layout / "blobs" / "sha256" / layer_digest.split(":")[1]) as tar:
        return tar.getnames()


CAP_NET_RAW = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")
SKIP_XATTRS = ("trusted.overlay.", "security.selinux")


def tree_state(root: Path, *, dir_mtimes: bool = False) -> dict[str, tuple]:
    """Everything a layer must carry about each path under root (hard links as shared inode groups)."""
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            xattrs = {}
            for key in os.listxattr(path, follow_symlinks=False):
                if not key.startswith(SKIP_XATTRS):
                    xattrs[key] = os.getxattr(path, key, follow_symlinks=False)
            kind = stat.S_IFMT(st.st_mode)
            detail: object = None
            if stat.S_ISREG(st.st_mode):
                detail = hashlib.sha256(path.read_bytes()).hexdigest()
                if st.st_nlink > 1:
                    detail = (detail, inodes.setdefault((st.st_dev, st.st_ino), rel))
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                detail = (os.major(st.st_rdev), os.minor(st.st_rdev))
            mtime = int(st.st_mtime) if (dir_mtimes or not stat.S_ISDIR(st.st_mode)) else None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, detail, mtime,
                        tuple(sorted(xattrs.items())))
    return out


def raw_names(data: bytes) -> list[str]:
    """Member names exactly as stored (tarfile strips the trailing "/" of directories)."""
    names, offset, pax_path = [], 0, None
    while offset + 512 <= len(data):
        header = data[offset:offset + 512]
        if header == bytes(512):
            break
        size = int(header[124:136].strip(b"\0 ") or b"0", 8)
        kind = header[156:157]
        body = data[offset + 512:offset + 512 + size]
        if kind == b"x":
            for record in body.split(b"\n"):
                if b" path=" in record:
                    pax_path = record.split(b" path=", 1)[1].decode()
        else:
            name = header[0:100].rstrip(b"\0").decode()
            prefix = header[345:500].rstrip(b"\0").decode()
            names.append(pax_path or (f"{prefix}/{name}" if prefix else name))
            pax_path = None
        offset += 512 + (size + 511) // 512 * 512
    return names


def make_sample_tree(root: Path) -> Path:
    """Regular files, dirs, a hard link pair, symlinks, devices, a fifo, special mode bits, xattrs, owners."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("box\n")
    (root / "bin").mkdir()
    ping = root / "bin" / "ping"
    ping.write_bytes(b"\x7fELF-not-really" * 100)
    os.chmod(ping, 0o4755)
    os.setxattr(ping, "security.capability", CAP_NET_RAW)
    os.link(ping, root / "bin" / "ping-hardlink")
    (root / "bin" / "sgid").write_text("x")
    os.chmod(root / "bin" / "sgid", 0o2711)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "lib").symlink_to("usr/lib")
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "abs-link").symlink_to("/etc/hostname")
    (root / "dev").mkdir()
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "dev" / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.mkfifo(root / "dev" / "fifo", 0o600)
    owned = root / "home" / "user" / "notes.txt"
    owned.parent.mkdir(parents=True)
    owned.write_text("mine")
    os.chown(owned, 1234, 5678)
    os.chown(owned.parent, 1234, 5678)
    os.setxattr(owned, "user.comment", b"hello \xff binary")
    (root / "-dash").write_text("sorts before dots")
    (root / "\u00e9t\u00e9.txt").write_text("utf-8 name")
    long_dir = root / ("d" * 80) / ("e" * 80)
    long_dir.mkdir(parents=True)
    (long_dir / "f").write_text("long path")
    os.utime(root / "etc" / "hostname", (1_600_000_000, 1_600_000_000))
    return root
