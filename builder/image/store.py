"""The local image store: an OCI image layout on disk, plus a few private directories.

    ROOT/oci-layout, ROOT/index.json, ROOT/blobs/sha256/<hex>   the layout (skopeo can read it as oci:ROOT:NAME)
    ROOT/index.lock        fcntl lock taken for every index.json update
    ROOT/tmp/              temp files and dirs being written; each is flock()ed by its writer, so whatever is
                           left unlocked there was abandoned by a crash and is removed on the next open
    ROOT/partial/<hex>     blobs partly downloaded, kept so that the next pull resumes them (removed by gc)
    ROOT/unpacked/sha256/<diff_id hex>/   layers extracted once, whiteouts kept as overlayfs whiteouts
    ROOT/cache/            the build's own caches (steps, RUN cache mounts, context stat caches): cache_dir

Callers never build paths into the store: blobs go in through BlobWriter/put_blob and out through
open_blob; scratch space comes from temp_dir/temp_file; a build wraps its work in a lease(), which takes
back out exactly what it added (blobs, unpacked layers, images) if the build fails.

index.json names each tagged image with the annotation org.opencontainers.image.ref.name = "name:tag";
an image without a name (a fresh commit, or one whose tag moved away) keeps an entry without annotations.
Every file is written to tmp/, fsync()ed, and renamed into place, so a crash never leaves a torn file.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from builder.image import mediatypes as mt
from builder.image.digest import (CHUNK, Descriptor, HashingWriter, VerifyingReader, canonical_json,
                            parse_digest)
from builder.errors import BuildError

# --- image references -----------------------------------------------------------------------------

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
# On an index.json entry of a pulled image: "repo@sha256:..." (space-separated), the digests a registry
# knows it by (a manifest list's, when the image was picked from one): docker's RepoDigests.
ANNOTATION_REPO_DIGESTS = "io.pydock.image.repo-digests"


_REPORTED: set[tuple[str, str]] = set()  # (store, malformed index.json entry) warned about in this process


def _repo_digests_by_manifest(entries: list[Descriptor]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in entries:
        for d in (e.annotations or {}).get(ANNOTATION_REPO_DIGESTS, "").split():
            if d not in found.setdefault(e.digest, []):
                found[e.digest].append(d)
    return found


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split "name[:tag][@digest]" into (name, tag, digest); a ":" before the last "/" is a registry port."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = None
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        ref, tag = ref[:colon], ref[colon + 1:]
    return ref, tag, digest


def normalize_name(name: str) -> str:
    """"name[:tag]" -> "name:tag" (":latest" by default), refusing names docker would refuse."""
    base, tag, digest = split_ref(name)
    if digest is not None or not _NAME_RE.match(base) or len(base) > 255 or (tag is not None and not _TAG_RE.match(tag)):
        raise BuildError(f"invalid reference format: {name!r} (want name[:tag], lower-case name)")
    return f"{base}:{tag or 'latest'}"


def check_config(config, layer_count: int, where: str) -> dict:
    """Refuse an image config a command could trip over: it must be an object whose rootfs.diff_ids is a
    list of digests, one per layer (and whose config section, if any, is an object). Returns it."""
    if not isinstance(config, dict):
        raise BuildError(f"{where}: the image config is not a JSON object")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict):
        raise BuildError(f"{where}: the image config's rootfs is not an object")
    diff_ids = rootfs.get("diff_ids")
    if diff_ids is None and layer_count == 0:
        diff_ids = []
    if not isinstance(diff_ids, list):
        raise BuildError(f"{where}: the image config's rootfs.diff_ids is not a list")
    for d in diff_ids:
        try:
            parse_digest(d)
        except BuildError as e:
            raise BuildError(f"{where}: the image config's rootfs.diff_ids: {e}") from None
    if len(diff_ids) != layer_count:
        raise BuildError(f"{where}: the image config lists {len(diff_ids)} diff_ids for {layer_count} layers")
    for key in ("config", "history"):
        value = config.get(key)
        if value is not None and not isinstance(value, dict if key == "config" else list):
            raise BuildError(f"{where}: the image config's {key} is not {'an object' if key == 'config' else 'a list'}")
    for key in ("os", "architecture", "variant", "created"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise BuildError(f"{where}: the image config's {key} is not a string")
    return config


def check_manifest(manifest, where: str) -> dict:
    """An image manifest's shape: an object with a config descriptor and a list of layer descriptors."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise BuildError(f"{where} is not an image manifest")
    layers = manifest.get("layers")
    if layers is not None and not isinstance(layers, list):
        raise BuildError(f"{where}: the manifest's layers is not a list")
    Descriptor.from_json(manifest["config"])
    for layer in layers or []:
        Descriptor.from_json(layer)
    return manifest


# --- records ---------------------------------------------------------------------------------------

@dataclass
class Image:
    """An image in the store: its manifest (and the descriptor naming it) and its config."""

    manifest_desc: Descriptor
    manifest: dict
    config: dict

    @property
    def id(self) -> str:
        """The image ID as docker shows it: the digest of the config blob."""
        return self.manifest["config"]["digest"]

    @property
    def digest(self) -> str:
        """The manifest digest (what `name@sha256:...` refers to)."""
        return self.manifest_desc.digest

    @property
    def config_desc(self) -> Descriptor:
        return Descriptor.from_json(self.manifest["config"])

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(layer) for layer in self.manifest.get("layers") or []]

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def size(self) -> int:
        """Bytes of the blobs this image is made of (config + layers, as stored)."""
        return self.config_desc.size + sum(layer.size for layer in self.layers)

    @property
    def platform(self) -> dict:
        plat = {"architecture": self.config.get("architecture") or "amd64", "os": self.config.get("os") or "linux"}
        if self.config.get("variant"):
            plat["variant"] = self.config["variant"]
        return plat


class _TempPath:
    """A file or directory under ROOT/tmp that its writer holds an flock on until it is renamed or dropped.

    The lock tells the crash cleaner "someone is still writing this"; unlocked leftovers are garbage."""

    def __init__(self, tmp_dir: Path, directory: bool, suffix: str = ""):
        while True:
            self.path = tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}{suffix}"
            if directory:
                os.mkdir(self.path, 0o700)
                self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            # A cleaner in another process may have removed it between create and lock: then start again.
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(self.fd)
        self.directory = directory
        self.done = False

    def rename_to(self, dest: Path, *, replace: bool = True) -> bool:
        """fsync and rename into place; returns False if dest existed and replace was False (self dropped)."""
        if self.directory:
            _syncfs(self.fd)  # a directory tree: flush all of it, not just the directory inode
        else:
            os.fsync(self.fd)
        try:
            if replace:
                os.rename(self.path, dest)
            else:
                _rename_noreplace(self.path, dest)
        except FileExistsError:
            self.drop()
            return False
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
            self.drop()
            return False
        _fsync_dir(dest.parent)
        self.done = True
        os.close(self.fd)
        return True

    def drop(self) -> None:
        if self.done:
            return
        self.done = True
        if self.directory:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)


def _rename_noreplace(src: Path, dest: Path) -> None:
    """rename(2) that refuses to replace an existing destination (dirs: ENOTEMPTY/EEXIST; files: link+unlink)."""
    if src.is_dir():
        if dest.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(dest))
        os.rename(src, dest)
    else:
        os.link(src, dest)
        os.unlink(src)


def _syncfs(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(fd) != 0:
        os.sync()


def _mount_points() -> list[str]:
    from oci_runtime.mountinfo import mount_points

    try:
        return mount_points()
    except OSError:
        return []


def _unmount_abandoned(path: str, mounts: list[str]) -> bool:
    """Unmount `mounts` (all under `path`, a tmp/ entry) if the entry's writer is gone (nobody holds its
    flock); True when nothing is mounted under it any more."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its build is still running
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for mount in sorted(set(mounts), key=len, reverse=True):  # the deepest first
            libc.umount2(mount.encode(), 2)  # MNT_DETACH
        path_prefix = path + "/"
        return not any(m == path or m.startswith(path_prefix) for m in _mount_points())
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """A blob being written to the store: write() to it, then commit() (or abort()); also a context
    manager that aborts on error. The digest is computed while writing."""

    def __init__(self, store: "ImageStore"):
        self._store = store
        self._tmp = _TempPath(store.tmp_dir, directory=False, suffix=".blob")
        self._file = os.fdopen(os.dup(self._tmp.fd), "wb", buffering=CHUNK)
        self._hasher = HashingWriter(self._file)

    def write(self, data) -> int:
        return self._hasher.write(data)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._hasher.size

    def flush(self) -> None:
        self._file.flush()

    @property
    def digest(self) -> str:
        return self._hasher.digest

    @property
    def size(self) -> int:
        return self._hasher.size

    def commit(self, media_type: str, *, expected_digest: str | None = None,
               annotations: dict[str, str] | None = None) -> Descriptor:
        self._file.close()
        digest = self._hasher.digest
        if expected_digest is not None and digest != expected_digest:
            self._tmp.drop()
            raise BuildError(f"content does not match its digest: expected {expected_digest}, got {digest}")
        target = self._store.blob_path(digest)
        try:
            is_new = target.stat().st_size != self._hasher.size  # a torn copy is replaced
        except FileNotFoundError:
            is_new = True
        if is_new:
            self._tmp.rename_to(target)
            self._store._note_added("blobs", digest)
        else:  # the same content is there (its name is its digest): no second fsync and rename
            self._tmp.drop()
            for h in self._store._holds:  # but kept from rmi while the writer's build goes on
                h.add_digests([digest])
        return Descriptor(media_type, digest, self._hasher.size, annotations)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.drop()

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._tmp.done:
            self.abort()


class PartialBlob:
    """A blob downloaded in pieces that outlives the command: ROOT/partial/<hex>, flock()ed while in
    use, so that a download cut off (this time or in an earlier command) goes on from `size` (a Range
    request) instead of starting again. The content is hashed from its first byte, so commit() verifies
    the whole blob; a mismatch deletes it."""

    def __init__(self, store: "ImageStore", digest: str, fd: int, path: Path):
        self._store = store
        self.digest_wanted = digest
        self._fd = fd
        self.path = path
        self.done = False
        self._file = os.fdopen(os.dup(fd), "r+b", buffering=CHUNK)
        self._start_hash()
        while chunk := self._file.read(CHUNK):  # what an earlier try kept; writes go on at its end
            self._hash.update(chunk)
            self.size += len(chunk)

    def _start_hash(self) -> None:
        self._hash = hashlib.new(parse_digest(self.digest_wanted)[0])
        self.size = 0

    def write(self, data) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def restart(self) -> None:
        """Throw away what was kept (the server sent the whole blob after all, or too much)."""
        self._file.seek(0)
        self._file.truncate()
        self._start_hash()

    def commit(self, media_type: str) -> Descriptor:
        """Verify the whole content against the digest and move it into the store."""
        self._file.flush()
        digest = f"{parse_digest(self.digest_wanted)[0]}:{self._hash.hexdigest()}"
        if digest != self.digest_wanted:
            self.discard()
            raise BuildError(f"content does not match its digest: expected {self.digest_wanted}, got {digest}")
        os.fsync(self._fd)
        target = self._store.blob_path(digest)
        is_new = not target.exists()
        os.rename(self.path, target)
        _fsync_dir(target.parent)
        self._close()
        if is_new:
            self._store._note_added("blobs", digest)
        return Descriptor(media_type, digest, self.size)

    def keep(self) -> None:
        """Stop here, keeping what was written for the next try."""
        if not self.done:
            self._file.flush()
            self._close()

    def discard(self) -> None:
        if not self.done:
            self.path.unlink(missing_ok=True)
            self._close()

    def _close(self) -> None:
        self.done = True
        self._file.close()
        os.close(self._fd)


class Hold:
    """Images (and the diff_ids of their layers) held by a running build: see ImageStore.hold."""

    def __init__(self, store: "ImageStore"):
        self._store = store
        self.path = store.holds_dir / f"{os.getpid()}-{secrets.token_hex(8)}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.digests: set[str] = set()

    def add(self, image: "Image") -> None:
        """Hold `image`; refused if it was deleted meanwhile (checked under the index lock rmi takes)."""
        with self._store._locked():
            if not any(e.digest == image.digest for e in self._store._entries()):
                raise BuildError(f"image {image.id} was removed while the build was starting")
            self.add_digests({image.digest, image.id, *(l.digest for l in image.layers), *image.diff_ids})

    def add_digests(self, digests: Iterable[str]) -> None:
        new = set(digests) - self.digests
        if new:
            self.digests |= new
            _write_all(self.fd, "".join(f"{d}\n" for d in sorted(new)).encode())

    def release(self) -> None:
        if self.fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = -1


class Lease:
    """What was added to the store while a lease was open (digests and diff_ids)."""

    def __init__(self) -> None:
        self.blobs: set[str] = set()
        self.images: set[str] = set()
        self.unpacked: set[str] = set()


# --- the store -------------------------------------------------------------------------------------

class ImageStore:
    """An OCI image layout used as the local image store (see the module docstring)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.partial_dir = self.root / "partial"
        self.unpacked_dir = self.root / "unpacked" / "sha256"
        self.cache_dir = self.root / "cache"
        self.holds_dir = self.root / "holds"
        for d in (self.root / "blobs" / "sha256", self.tmp_dir, self.partial_dir, self.unpacked_dir, self.cache_dir,
                  self.holds_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._leases: list[Lease] = []
        self._holds: list[Hold] = []
        self._images: dict[str, Image] = {}
        self.clean_tmp()
        if not (self.root / "oci-layout").exists():
            self._write_file(self.root / "oci-layout",
                             json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode())
        if not (self.root / "index.json").exists():
            with self._locked():
                if not (self.root / "index.json").exists():
                    self._write_index([])

    # -- files and locks

    def _write_file(self, path: Path, data: bytes) -> None:
        tmp = _TempPath(self.tmp_dir, directory=False)
        try:
            _write_all(tmp.fd, data)
            tmp.rename_to(path)
        finally:
            tmp.drop()

    def clean_tmp(self) -> int:
        """Remove leftovers of crashed writers from tmp/ (those nobody holds a lock on). Returns the count.
        A dead build's step dir may still have its overlay (or anything else) mounted: those mounts are
        taken down first, and the dir is removed only once nothing is mounted under it."""
        removed = 0
        mounts = _mount_points()
        for entry in os.scandir(self.tmp_dir):
            below = [m for m in mounts if m == entry.path or m.startswith(entry.path + "/")]
            if below and not _unmount_abandoned(entry.path, below):
                continue  # a live build's mount, or one that would not go: never rmtree through it
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed += 1
            finally:
                os.close(fd)
        return removed

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive lock for index.json read-modify-write (re-entrant within this object)."""
        if self._lock_depth == 0:
            fd = os.open(self.root / "index.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def temp_dir(self, prefix: str) -> tuple[Path, int]:
        """A new directory under tmp/, flock()ed so that the crash cleaner leaves it alone: returns (path,
        fd holding the lock); the caller removes the dir and closes the fd. It is on the same filesystem as
        the unpacked layers (an overlay's upper dir made here can become one, see keep_unpacked_layer)."""
        for _ in range(10):
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp_dir))
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Another process's cleaner may have removed it between mkdtemp and flock.
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return path, fd
            except FileNotFoundError:
                pass
            os.close(fd)
        raise OSError(f"cannot create a work directory under {self.tmp_dir}")

    def temp_file(self):
        """An anonymous temp file in tmp/ (gone when closed), for spooling large data."""
        return tempfile.TemporaryFile(dir=self.tmp_dir)

    # -- leases: what a failed build takes back out

    @contextmanager
    def lease(self) -> Iterator["Lease"]:
        """Record what this process adds to the store inside the block; if the block fails, remove it
        again: images it recorded, then its blobs and unpacked layers that no image refers to. Only what
        the block added: another build may be using the store at the same time."""
        lease = Lease()
        self._leases.append(lease)
        try:
            yield lease
        except BaseException:
            self._release(lease)
            raise
        finally:
            self._leases.remove(lease)

    # -- holds: images a running build uses, which rmi must not delete under it

    @contextmanager
    def hold(self) -> Iterator["Hold"]:
        """A hold for this block: add() images to it (their layers are then kept, and rmi refuses to delete
        them) until the block ends. It is a file under holds/ flock()ed by its owner: a crashed owner's
        hold is void (and removed by the next rmi)."""
        h = Hold(self)
        self._holds.append(h)
        try:
            yield h
        finally:
            self._holds.remove(h)
            h.release()

    def _live_holds(self) -> set[str]:
        """Every digest (manifest, config, layers, diff_ids) some live process holds."""
        held: set[str] = set()
        for entry in os.scandir(self.holds_dir):
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    with os.fdopen(os.dup(fd), "rb") as f:
                        held.update(line.decode("ascii", "replace").strip() for line in f.read().splitlines())
                    continue
                os.unlink(entry.path)  # its owner is gone
            finally:
                os.close(fd)
        return held

    def _note_added(self, kind: str, item: str) -> None:
        for h in self._holds:  # what a running build adds is kept until it commits
            if kind != "images":
                h.add_digests([item])
        for lease in self._leases:
            getattr(lease, kind).add(item)

    def _release(self, lease: "Lease") -> None:
        try:
            for _, image in self.images():
                if image.digest in lease.images:
                    self.remove(image.id, force=True)
            referenced: set[str] = set()
            for _, image in self.images():
                referenced |= self._image_blobs(image)
            for digest in lease.blobs - referenced:
                self.blob_path(digest).unlink(missing_ok=True)
        except BuildError:
            pass
        for diff_id in lease.unpacked:
            shutil.rmtree(self.unpacked_dir / parse_digest(diff_id)[1], ignore_errors=True)

    # -- blobs

    def blob_path(self, digest: str) -> Path:
        algorithm, hexpart = parse_digest(digest)
        return self.root / "blobs" / algorithm / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        return self.blob_path(digest).stat().st_size

    def new_blob(self) -> BlobWriter:
        """A writer for a blob whose content is pushed in pieces (e.g. a layer being tarred)."""
        return BlobWriter(self)

    def partial_blob(self, digest: str) -> PartialBlob | None:
        """The kept start of a blob being downloaded (empty if there is none), or None if another process
        is downloading it right now (then download to new_blob())."""
        hexpart = parse_digest(digest)[1]
        path = self.partial_dir / hexpart
        for _ in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:  # gc may have removed it between open and lock: then open it again
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return PartialBlob(self, digest, fd, path)
            except FileNotFoundError:
                pass
            os.close(fd)
        return None

    def clean_partial(self) -> int:
        """Remove the kept starts of downloads nobody is going on with now (gc); returns the count."""
        removed = 0
        for entry in os.scandir(self.partial_dir):
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(entry.path)
                removed += 1
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
        return removed

    def put_blob(self, data: bytes | BinaryIO, media_type: str, *, expected_digest: str | None = None,
                 annotations: dict[str, str] | None = None) -> Descriptor:
        """Store bytes or the rest of a readable stream (read in chunks) as a blob."""
        with self.new_blob() as writer:
            if isinstance(data, (bytes, bytearray, memoryview)):
                writer.write(data)
            else:
                while chunk := data.read(CHUNK):
                    writer.write(chunk)
            return writer.commit(media_type, expected_digest=expected_digest, annotations=annotations)

    def put_json(self, obj, media_type: str) -> Descriptor:
        return self.put_blob(canonical_json(obj), media_type)

    def open_blob(self, digest: str, size: int | None = None) -> VerifyingReader:
        """A stream over a blob that raises BuildError at the end if the content does not match `digest`."""
        path = self.blob_path(digest)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise BuildError(f"blob {digest} is missing from the image store {self.root}") from None
        return VerifyingReader(f, digest, size)

    def read_blob(self, digest: str, size: int | None = None) -> bytes:
        with self.open_blob(digest, size) as r:
            return r.read()

    def read_json(self, digest: str, size: int | None = None):
        data = self.read_blob(digest, size)
        try:
            return json.loads(data)
        except ValueError as e:
            raise BuildError(f"blob {digest} is not valid JSON: {e}") from None

    # -- index.json

    def _read_index(self) -> dict:
        try:
            index = json.loads((self.root / "index.json").read_bytes())
        except (OSError, ValueError) as e:
            raise BuildError(f"cannot read {self.root / 'index.json'}: {e}") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise BuildError(f"{self.root / 'index.json'} is not an OCI image index")
        return index

    def _split_entries(self) -> tuple[list[Descriptor], list]:
        """(the entries of index.json, the malformed ones as they are). A malformed entry is reported
        once (naming the file and the entry) and left out, so that it never breaks commands on the
        other images; index.json updates keep it, for its owner to repair."""
        entries, malformed = [], []
        for i, raw in enumerate(self._read_index().get("manifests") or []):
            try:
                entries.append(Descriptor.from_json(raw))
            except BuildError as e:
                malformed.append(raw)
                key = (str(self.root), repr(raw))
                if key not in _REPORTED:
                    _REPORTED.add(key)
                    sys.stderr.write(f"pydock: warning: {self.root / 'index.json'}: manifests[{i}] is malformed "
                                     f"and left out ({e})\n")
        return entries, malformed

    def _entries(self) -> list[Descriptor]:
        return self._split_entries()[0]

    def _write_index(self, entries: list[Descriptor], malformed: list = ()) -> None:
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                 "manifests": [e.to_json() for e in entries] + list(malformed)}
        self._write_file(self.root / "index.json", json.dumps(index, indent=2).encode() + b"\n")

    @contextmanager
    def _edit_index(self) -> Iterator[list[Descriptor]]:
        with self._locked():
            entries, malformed = self._split_entries()
            before = [e.to_json() for e in entries]
            known = _repo_digests_by_manifest(entries)
            yield entries
            # an image's repo digests stay while it has an entry, whichever of its entries (names) went
            now = _repo_digests_by_manifest(entries)
            for e in entries:
                lost = [d for d in known.get(e.digest, []) if d not in now.get(e.digest, [])]
                if lost:
                    mine = (e.annotations or {}).get(ANNOTATION_REPO_DIGESTS, "").split()
                    e.annotations = {**(e.annotations or {}), ANNOTATION_REPO_DIGESTS: " ".join([*mine, *lost])}
                    now[e.digest] = [*now.get(e.digest, []), *lost]
            if [e.to_json() for e in entries] != before:  # a rebuild of a tagged image changes nothing
                self._write_index(entries, malformed)

    # -- images

    def load_image(self, manifest_desc: Descriptor) -> Image:
        """The Image a manifest descriptor names (blobs verified; cached, since they are content-addressed)."""
        cached = self._images.get(manifest_desc.digest)
        if cached is not None:  # copies: callers may edit what they get
            return Image(manifest_desc, copy.deepcopy(cached.manifest), copy.deepcopy(cached.config))
        manifest = check_manifest(self.read_json(manifest_desc.digest), f"image {manifest_desc.digest}")
        config_desc = Descriptor.from_json(manifest["config"])
        config = check_config(self.read_json(config_desc.digest, config_desc.size),
                              len(manifest.get("layers") or []), f"image {config_desc.digest}")
        self._images[manifest_desc.digest] = Image(manifest_desc, manifest, config)
        return Image(manifest_desc, copy.deepcopy(manifest), copy.deepcopy(config))

    def commit_manifest(self, config_desc: Descriptor, layers: list[Descriptor],
                        annotations: dict[str, str] | None = None) -> Image:
        """Write a manifest for an already stored config and layers; record it in the index (untagged)."""
        for desc in (config_desc, *layers):
            if not self.has_blob(desc.digest):
                raise BuildError(f"cannot commit image: blob {desc.digest} is not in the store")
        manifest: dict = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": Descriptor(mt.OCI_CONFIG, config_desc.digest, config_desc.size).to_json(),
            "layers": [Descriptor(l.media_type, l.digest, l.size, l.annotations, None, l.urls).to_json()
                       for l in layers],
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        return self.add_manifest(self.put_json(manifest, mt.OCI_MANIFEST))

    def add_manifest(self, manifest_desc: Descriptor) -> Image:
        """Record a manifest blob already in the store (with its config and layers) in index.json,
        untagged unless it is there already. Returns the Image."""
        image = self.load_image(manifest_desc)
        manifest_desc.platform = image.platform
        with self._edit_index() as entries:
            for desc in (manifest_desc, image.config_desc, *image.layers):
                # checked under the lock: a concurrent rmi may have removed a shared blob
                if not self.has_blob(desc.digest):
                    raise BuildError(f"cannot record image {image.id}: blob {desc.digest} is not in the store")
            if not any(e.digest == manifest_desc.digest for e in entries):
                entries.append(Descriptor(manifest_desc.media_type, manifest_desc.digest, manifest_desc.size,
                                          None, image.platform))
                self._note_added("images", manifest_desc.digest)
        return image

    def commit_image(self, config: dict, layers: list[Descriptor],
                     annotations: dict[str, str] | None = None) -> Image:
        """Store `config` (canonical JSON) and a manifest over it and `layers`; the image has no name yet."""
        diff_ids = (config.get("rootfs") or {}).get("diff_ids")
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise BuildError(f"image config lists {len(diff_ids or [])} diff_ids for {len(layers)} layers")
        if annotations is None and config.get("created"):
            annotations = {mt.ANNOTATION_CREATED: config["created"]}
        return self.commit_manifest(self.put_json(config, mt.OCI_CONFIG), layers, annotations)

    def add_pulled(self, manifest: bytes, media_type: str, digest: str, name: str | None,
                   repo_digest: str, index: tuple[bytes, str] | None = None) -> Image:
        """Record an image pulled from a registry whose config and layers are stored (and verified)
        already: its manifest as the registry's exact bytes (checked against `digest`), tagged `name` if
        given, with `repo_digest` ("repo@sha256:...") noted so that resolve() finds it by that digest too.
        `index` is (bytes, media type) of the manifest list / OCI index the image was picked from (the
        repo digest's content): kept as a blob, so that the image can be pushed as the same list."""
        if index is not None:
            self.put_blob(index[0], index[1], expected_digest=repo_digest.rpartition("@")[2])
        stored = self.put_blob(manifest, media_type, expected_digest=digest)
        image = self.add_manifest(Descriptor(media_type, digest, stored.size))
        if name is not None:
            self.tag(image, name)
        with self._edit_index() as entries:
            for e in entries:
                known = (e.annotations or {}).get(ANNOTATION_REPO_DIGESTS, "").split()
                if e.digest == digest and repo_digest not in known:
                    e.annotations = {**(e.annotations or {}), ANNOTATION_REPO_DIGESTS: " ".join([*known, repo_digest])}
        return image

    def pulled_index(self, image: Image) -> tuple[bytes, str, str] | None:
        """(bytes, media type, digest) of a manifest list / OCI index the image was pulled from, if the
        store has one (see add_pulled), else None."""
        for repo_digest in self.repo_digests(image):
            digest = repo_digest.rpartition("@")[2]
            if digest == image.digest or not self.has_blob(digest):
                continue
            try:
                data = self.read_blob(digest)
                doc = json.loads(data)
            except (BuildError, ValueError):
                continue
            kind = doc.get("mediaType") if isinstance(doc, dict) else None
            if kind in mt.INDEX_TYPES and any(isinstance(m, dict) and m.get("digest") == image.digest
                                              for m in doc.get("manifests") or []):
                return data, kind, digest
        return None

    @staticmethod
    def _repo_digest_blobs(entry: Descriptor) -> set[str]:
        """The digests an entry's repo digests name (a pulled list's, or the manifest's own)."""
        return {d.rpartition("@")[2] for d in (entry.annotations or {}).get(ANNOTATION_REPO_DIGESTS, "").split()}

    def repo_digests(self, image: Image) -> list[str]:
        found: dict[str, None] = {}
        for e in self._entries():
            if e.digest == image.digest:
                found.update(dict.fromkeys((e.annotations or {}).get(ANNOTATION_REPO_DIGESTS, "").split()))
        return list(found)

    def tag(self, image: Image, name: str) -> str:
        """Point `name` (":latest" added when no tag) at `image`; returns the normalised name."""
        name = normalize_name(name)
        with self._edit_index() as entries:
            moved = [e for e in entries if e.ref_name == name]
            entries[:] = [e for e in entries
                          if e.ref_name != name and not (e.digest == image.digest and e.ref_name is None)]
            kind = image.manifest_desc.media_type  # a pulled docker manifest keeps its own type
            entries.append(Descriptor(kind if kind in mt.MANIFEST_TYPES else mt.OCI_MANIFEST, image.digest,
                                      image.manifest_desc.size,
                                      {mt.ANNOTATION_REF_NAME: name}, image.platform))
            for old in moved:  # the image the name left keeps an (untagged) entry, as docker's <none>
                if old.digest != image.digest and not any(e.digest == old.digest for e in entries):
                    entries.append(Descriptor(old.media_type, old.digest, old.size, None, old.platform))
        return name

    def untag(self, name: str) -> Image:
        """Remove a name; the image stays (untagged if that was its last name)."""
        name = normalize_name(name)
        with self._edit_index() as entries:
            found = [e for e in entries if e.ref_name == name]
            if not found:
                raise BuildError(f"image not found: {name}")
            entries[:] = [e for e in entries if e.ref_name != name]
            old = found[0]
            if not any(e.digest == old.digest for e in entries):
                entries.append(Descriptor(old.media_type, old.digest, old.size, None, old.platform))
        return self.load_image(old)

    def names_of(self, image: Image) -> list[str]:
        return [e.ref_name for e in self._entries() if e.digest == image.digest and e.ref_name]

    def images(self) -> list[tuple[list[str], Image]]:
        """Every image once, with its names (an empty list for an untagged one), in index order."""
        grouped: dict[str, tuple[list[str], Descriptor]] = {}
        for e in self._entries():
            if e.media_type not in mt.MANIFEST_TYPES:
                continue
            names, _ = grouped.setdefault(e.digest, ([], e))
            if e.ref_name:
                names.append(e.ref_name)
        out = []
        for names, desc in grouped.values():
            try:
                out.append((names, self.load_image(desc)))
            except BuildError:
                continue  # a damaged record: left out here, so that it never breaks commands on the others
        return out

    def resolve(self, ref: str) -> Image:
        """An image by "name[:tag]", "name@sha256:<manifest digest>", "sha256:<id>" or a unique ID prefix."""
        entries = [e for e in self._entries() if e.media_type in mt.MANIFEST_TYPES]
        _, _, at_digest = split_ref(ref)
        if at_digest is not None:
            for e in entries:
                if e.digest == at_digest:
                    return self.load_image(e)
            for e in entries:  # the digest a registry knows a pulled image by (a manifest list's)
                repo_digests = (e.annotations or {}).get(ANNOTATION_REPO_DIGESTS, "").split()
                if any(d.rpartition("@")[2] == at_digest for d in repo_digests):
                    return self.load_image(e)
            raise BuildError(f"image not found: {ref}")
        try:
            name = normalize_name(ref)
        except BuildError:
            name = None
        if name is not None:
            for e in entries:
                if e.ref_name == name:
                    return self.load_image(e)
        prefix = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
        if re.fullmatch(r"[0-9a-f]{1,64}", prefix):
            matches: dict[str, Image] = {}
            for e in entries:
                try:
                    image = self.load_image(e)
                except BuildError:
                    # a damaged record: its own error when the prefix names it, never in the way of others
                    if any(d[len("sha256:"):].startswith(prefix) for d in {e.digest, *self._listed_blobs(e.digest)}):
                        raise
                    continue
                for digest in (image.id, image.digest if len(prefix) == 64 else None):
                    if digest and digest[len("sha256:"):].startswith(prefix):
                        matches.setdefault(image.id, image)
            if len(matches) == 1:
                return next(iter(matches.values()))
            if len(matches) > 1:
                raise BuildError(f"image ID prefix {ref!r} is ambiguous: it matches {len(matches)} images")
        raise BuildError(f"image not found: {ref}")

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """rmi: untag a name, deleting the image when that was its last name; by ID only if it has no names
        (or force). Returns docker's lines ("Untagged: NAME", "Deleted: sha256:...")."""
        lines: list[str] = []
        with self._locked():
            try:
                image = self.resolve(ref)
            except BuildError:
                damaged = self._remove_damaged(ref)
                if damaged is None:
                    raise
                return damaged
            names = self.names_of(image)
            by_name = False
            try:
                by_name = normalize_name(ref) in names
            except BuildError:
                pass
            deletes = len(names) <= 1 if by_name else (not names or force)
            if deletes and {image.digest, image.id} & self._live_holds():
                raise BuildError(f"conflict: unable to delete {image.id[7:19]} - image is being used by a "
                                 "running build")
            if by_name:
                name = normalize_name(ref)
                self.untag(name)
                lines.append(f"Untagged: {name}")
                if len(names) > 1:
                    return lines
            elif names and not force:
                raise BuildError(f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is "
                                 f"tagged as {', '.join(names)}; remove it by name or use --force")
            else:
                lines.extend(f"Untagged: {n}" for n in names)
            with self._edit_index() as entries:
                doomed = {e.digest for e in entries if self._entry_image_id(e) == image.id}
                lists = {d for e in entries if e.digest in doomed for d in self._repo_digest_blobs(e)}
                entries[:] = [e for e in entries if e.digest not in doomed]
            self._delete_unreferenced(self._image_blobs(image) | doomed | lists)
            lines.append(f"Deleted: {image.id}")
        return lines

    def _remove_damaged(self, ref: str) -> list[str] | None:
        """rmi NAME of an image whose record cannot be read: the name goes, and the record with it when
        that was its last name (its blobs too, unless another image shares them). None if NAME names none."""
        try:
            name = normalize_name(ref)
        except BuildError:
            return None
        with self._edit_index() as entries:
            found = [e for e in entries if e.ref_name == name]
            if not found:
                return None
            digest = found[0].digest
            entries[:] = [e for e in entries if e.ref_name != name]
            last = not any(e.digest == digest for e in entries if e.ref_name)
            if last:
                entries[:] = [e for e in entries if e.digest != digest]
        lines = [f"Untagged: {name}"]
        if last:
            self._images.pop(digest, None)
            self._delete_unreferenced({digest, *self._listed_blobs(digest)})
            lines.append(f"Deleted: {digest}")
        return lines

    def _entry_image_id(self, entry: Descriptor) -> str | None:
        if entry.media_type not in mt.MANIFEST_TYPES:
            return None
        try:
            return self.load_image(entry).id
        except BuildError:
            return None

    # -- garbage collection

    def _image_blobs(self, image: Image) -> set[str]:
        return {image.digest, image.id, *(layer.digest for layer in image.layers)}

    def _referenced(self, keep: Iterable[str] = ()) -> tuple[set[str], set[str]]:
        """(blob digests, diff_ids) reachable from index.json and from `keep` (manifest or blob digests)."""
        blobs: set[str] = set()
        diff_ids: set[str] = set()

        def walk(desc: Descriptor) -> None:
            if desc.digest in blobs:
                return
            blobs.add(desc.digest)
            if not self.has_blob(desc.digest):
                return
            try:
                if desc.media_type in mt.MANIFEST_TYPES:
                    image = self.load_image(desc)
                    blobs.update(self._image_blobs(image))
                    diff_ids.update(image.diff_ids)
                elif desc.media_type in mt.INDEX_TYPES:
                    for child in self.read_json(desc.digest).get("manifests") or []:
                        walk(Descriptor.from_json(child))
            except BuildError:
                blobs.update(self._listed_blobs(desc.digest))  # a damaged record keeps what it names

        for e in self._entries():
            walk(e)
            blobs.update(self._repo_digest_blobs(e))  # a pulled list, kept as it is (its other children are not here)
        for digest in keep:
            parse_digest(digest)
            if digest in blobs:
                continue
            blobs.add(digest)
            if self.has_blob(digest):
                try:
                    doc = self.read_json(digest)
                except BuildError:
                    continue
                if isinstance(doc, dict) and doc.get("mediaType") in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
                    blobs.discard(digest)
                    walk(Descriptor(doc["mediaType"], digest, self.blob_path(digest).stat().st_size))
        return blobs, diff_ids

    def _listed_blobs(self, digest: str) -> set[str]:
        """Every digest a (possibly damaged) JSON blob names anywhere: what garbage collection keeps for a
        record it cannot read as an image."""
        found: set[str] = set()
        try:
            doc = self.read_json(digest)
        except BuildError:
            return found
        stack = [doc]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", item):
                found.add(item)
        return found

    def _delete_unreferenced(self, candidates: set[str] | None, keep: Iterable[str] = ()) -> dict[str, int]:
        blobs, diff_ids = self._referenced(keep)
        held = self._live_holds()
        blobs |= held
        diff_ids |= held
        if candidates is None:
            candidates = {f"sha256:{p.name}" for p in (self.root / "blobs" / "sha256").iterdir()}
        removed_blobs = 0
        for digest in candidates - blobs:
            try:
                self.blob_path(digest).unlink()
                removed_blobs += 1
            except (FileNotFoundError, BuildError):
                pass
        removed_layers = 0
        for p in self.unpacked_dir.iterdir():
            if f"sha256:{p.name}" not in diff_ids:
                shutil.rmtree(p, ignore_errors=True)
                removed_layers += 1
        for digest in candidates - blobs:
            self._images.pop(digest, None)
        return {"blobs": removed_blobs, "unpacked_layers": removed_layers}

    def gc(self, keep: Iterable[str] = ()) -> dict[str, int]:
        """Delete blobs and unpacked layers no image in index.json (nor a digest in `keep`: manifests are
        followed to their config and layers) refers to, and abandoned temp files. Returns counts."""
        with self._locked():
            counts = self._delete_unreferenced(None, keep)
            counts["tmp"] = self.clean_tmp() + self.clean_partial()
        return counts

    # -- unpacked layers (overlay lower dirs)

    def unpacked_layer(self, diff_id: str, layer: Descriptor | None = None) -> Path:
        """A directory holding the layer with this diff_id, extracted once and then shared: treat it as
        read-only (it is meant as an overlayfs lowerdir). Whiteouts are kept the way overlayfs writes them
        (char device 0:0; trusted.overlay.opaque=y on opaque dirs). `layer` saves a search of the index."""
        _, hexpart = parse_digest(diff_id)
        dest = self.unpacked_dir / hexpart
        if dest.is_dir():
            return dest
        if layer is None:
            layer = self._find_layer(diff_id)
        from builder.image.layers import apply_layer

        tmp = _TempPath(self.tmp_dir, directory=True, suffix=".layer")
        try:
            os.chmod(tmp.path, 0o755)
            with self.open_blob(layer.digest, layer.size) as blob:
                got = apply_layer(blob, tmp.path, whiteouts="overlay")
            if got != diff_id:
                raise BuildError(f"layer {layer.digest} unpacks to {got}, but the image says {diff_id}")
            if tmp.rename_to(dest, replace=False):
                self._note_added("unpacked", diff_id)
        finally:
            tmp.drop()
        return dest

    def keep_unpacked_layer(self, diff_id: str, tree: Path) -> bool:
        """Adopt `tree` (a directory made under temp_dir, e.g. an overlay's upper dir, with overlayfs
        whiteouts) as the unpacked form of the layer `diff_id`; False (tree left alone) if there is one."""
        dest = self.unpacked_dir / parse_digest(diff_id)[1]
        if dest.exists():
            return False
        try:
            os.rename(tree, dest)
        except OSError:
            return False
        self._note_added("unpacked", diff_id)
        return True

    def _find_layer(self, diff_id: str) -> Descriptor:
        for _, image in self.images():
            for layer, layer_diff_id in zip(image.layers, image.diff_ids):
                if layer_diff_id == diff_id:
                    return layer
        raise BuildError(f"no image in the store has a layer with diff_id {diff_id}")

    # -- docker-style views

    def inspect(self, ref: str) -> dict:
        """`docker image inspect` data for one image."""
        image = self.resolve(ref)
        cfg = image.config
        return {
            "Id": image.id,
            "RepoTags": self.names_of(image),
            "RepoDigests": self.repo_digests(image),
            "Parent": "",
            "Comment": (cfg.get("history") or [{}])[-1].get("comment", "") if cfg.get("history") else "",
            "Created": cfg.get("created", ""),
            "Author": cfg.get("author", ""),
            "Config": cfg.get("config") or {},
            "Architecture": cfg.get("architecture", ""),
            "Variant": cfg.get("variant", ""),
            "Os": cfg.get("os", ""),
            "Size": image.size,
            "RootFS": {"Type": "layers", "Layers": image.diff_ids},
            "Descriptor": image.manifest_desc.to_json(),
            "Manifest": image.manifest,
            "History": cfg.get("history") or [],
        }


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
