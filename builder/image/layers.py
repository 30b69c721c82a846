"""Image layers: a directory -> a deterministic tar blob (and its diff_id), and a layer -> a directory.

Written tars are normalised the way the OCI image spec describes changesets, so the same tree always gives
the same bytes: entries depth-first in byte order of names (parents before children), directory names
with a trailing "/", PAX format, numeric uid/gid with empty uname/gname, integer mtimes (clamped to
SOURCE_DATE_EPOCH when given), hard links as links, symlinks, device nodes, fifos, the full mode
(setuid/setgid/sticky) and xattrs (SCHILY.xattr.*, security.capability included). Sockets are skipped
(tar cannot hold them). Nothing is ever held in memory whole: content streams through the tar writer,
the digest of the tar (diff_id), the compressor and the digest of the blob in one pass.
"""

from __future__ import annotations

import errno
import hashlib
import lzma
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from builder.image import mediatypes as mt
from builder.image.digest import CHUNK, Descriptor, HashingWriter
from builder.errors import BuildError
from builder.image.tarsafe import (SKIPPED_XATTR_PREFIXES, Extractor, clean_name, iter_members,
                             open_decompressed)

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
GZIP_LEVEL = 6  # what docker and containerd use; fixed, because it is part of the blob's digest
ZSTD_LEVEL = 3
_ZEROS = bytes(512)


# --- compression for writing ----------------------------------------------------------------------

class ZstdWriter:
    """Compresses through Debian's `zstd` binary (python 3.11 has no zstd module, and the binary avoids a
    compiled PyPI dependency). A thread copies the child's stdout into `sink` while we write its stdin."""

    def __init__(self, sink: BinaryIO, level: int = ZSTD_LEVEL):
        self._stderr = tempfile.TemporaryFile()
        try:
            # --single-thread: one fixed code path, so the output depends only on the input and level.
            self._proc = subprocess.Popen(["zstd", "-q", "-c", f"-{level}", "--single-thread"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        except FileNotFoundError:
            raise BuildError("zstd compression needs the zstd program (apt-get install zstd)") from None
        self._sink = sink
        self._error: BaseException | None = None
        self._pump = threading.Thread(target=self._copy_out, daemon=True)
        self._pump.start()

    def _copy_out(self) -> None:
        try:
            while chunk := self._proc.stdout.read(CHUNK):
                self._sink.write(chunk)
        except BaseException as e:
            self._error = e
            self._proc.kill()

    def write(self, data) -> int:
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            self.close()
            raise BuildError("zstd stopped while compressing a layer") from None
        return len(data)

    def close(self) -> None:
        if self._proc.stdin.closed:
            return
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        self._pump.join()
        rc = self._proc.wait()
        self._proc.stdout.close()
        if self._error is not None:
            raise self._error
        if rc != 0:
            self._stderr.seek(0)
            msg = self._stderr.read().decode(errors="replace").strip()
            raise BuildError(f"zstd failed compressing a layer: {msg or f'exit status {rc}'}")
        self._stderr.close()


class ThreadedGzipWriter:
    """gzip, byte for byte what gzip.GzipFile(filename="", mtime=0) writes for the same write() calls, but
    the deflate, CRC and `sink` writes run in a second thread (zlib and hashlib release the GIL), so
    compression overlaps reading and tarring the files. A bounded queue keeps memory at a few chunks."""

    _QUEUE_CHUNKS = 3  # the writes are ~256 KiB batches or CHUNK-sized (1 MiB) file reads: a few MiB queued

    def __init__(self, sink: BinaryIO, level: int = GZIP_LEVEL):
        import queue  # only layer writing needs it

        self._sink = sink
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
        self._crc = 0
        self._size = 0
        self._error: BaseException | None = None
        self._queue: "queue.Queue[bytes | None]" = queue.Queue(self._QUEUE_CHUNKS)
        xfl = b"\002" if level == 9 else b"\004" if level == 1 else b"\000"  # as gzip.GzipFile sets it
        # magic, deflate, no flags, mtime 0, extra flags, OS "unknown"
        sink.write(b"\037\213\010\000" + bytes(4) + xfl + b"\377")
        self._worker = threading.Thread(target=self._compress_loop, name="layer-gzip", daemon=True)
        self._worker.start()

    def _compress_loop(self) -> None:
        get, deflate, crc32 = self._queue.get, self._deflate.compress, zlib.crc32
        while (data := get()) is not None:
            if self._error is not None:
                continue  # keep draining so the producer never blocks on a full queue
            try:
                self._crc = crc32(data, self._crc)
                self._size += len(data)
                out = deflate(data)
                if out:
                    self._sink.write(out)
            except BaseException as e:
                self._error = e

    def write(self, data) -> int:
        if self._error is not None:
            self.close()
        n = len(data)
        if n:
            self._queue.put(bytes(data))  # a copy: callers may reuse their buffer
        return n

    def abort(self) -> None:
        """Stop the worker without finishing the stream (the caller is dropping the blob)."""
        if self._error is None:
            self._error = BuildError("layer compression was abandoned")
        if self._worker.is_alive():
            self._queue.put(None)  # the worker drains the queue without compressing, then stops
            self._worker.join()

    def close(self) -> None:
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join()
            if self._error is None:
                self._sink.write(self._deflate.flush()
                                 + self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little"))
        if self._error is not None:
            raise self._error


class _Plain:
    def __init__(self, sink: BinaryIO):
        self.write = sink.write

    def close(self) -> None:
        pass


def abandon(packer) -> None:
    """Stop a compressor whose output is being thrown away (e.g. after an error while tarring)."""
    abort = getattr(packer, "abort", None)
    if abort is not None:
        abort()


def compressor(compression: str | None, sink: BinaryIO):
    """A writable that compresses into `sink` deterministically; close() flushes it (sink stays open)."""
    if compression == "gzip":
        # No file name and mtime 0 in the gzip header: the output depends on the content only.
        return ThreadedGzipWriter(sink)
    if compression == "zstd":
        return ZstdWriter(sink)
    if compression is None:
        return _Plain(sink)
    raise BuildError(f"unknown layer compression {compression!r} (use gzip, zstd or none)")


# --- tar writing ----------------------------------------------------------------------------------

def _read_xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out: dict[str, str] = {}
    for name in sorted(names):
        if name.startswith(SKIPPED_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                continue
            raise
        # tarfile writes str PAX values; surrogateescape carries non-UTF-8 bytes through unchanged.
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _sorted_names(path: str) -> list[str]:
    return sorted(os.listdir(path), key=os.fsencode)


def tar_order(relpath: str) -> bytes:
    """A sort key putting relative paths in the order _walk (so every layer tar) lists them: depth first,
    each directory's entries in byte order. "/" becomes NUL, which no name holds and all names sort after."""
    return os.fsencode(relpath).replace(b"/", b"\0")


def _walk(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(absolute path, relative path, lstat) depth-first, children in byte order, root itself excluded."""
    stack: list[tuple[str, str, Iterator[str]]] = [(root, "", iter(_sorted_names(root)))]
    while stack:
        abs_dir, rel_dir, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        abs_path = os.path.join(abs_dir, name)
        rel_path = f"{rel_dir}/{name}" if rel_dir else name
        st = os.lstat(abs_path)
        yield abs_path, rel_path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((abs_path, rel_path, iter(_sorted_names(abs_path))))


_USTAR_ID_LIMIT = 8 ** 7    # uid, gid, device numbers: 7 octal digits in a ustar header
_USTAR_NUM_LIMIT = 8 ** 11  # size, mtime: 11 octal digits


def _ustar_header(name: str, mode: int, uid: int, gid: int, size: int, mtime: int, type_: bytes,
                  linkname: str, devices: tuple[int, int] | None) -> bytes:
    """One ustar header block, byte for byte what tarfile's PAX_FORMAT writes for an entry that needs no
    PAX record (ASCII names of at most 100 characters, numbers that fit, no xattrs, empty uname/gname),
    in a fraction of the time: TarInfo.tobuf cost ~45 us an entry, most of a small file's tar time."""
    dev = b"%07o\0%07o\0" % devices if devices is not None else bytes(16)
    block = b"".join((
        name.encode("ascii").ljust(100, b"\0"),
        b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode & 0o7777, uid, gid, size, mtime),
        b"        ",  # the checksum field counts as spaces while the checksum is summed
        type_,
        linkname.encode("ascii").ljust(100, b"\0"),
        tarfile.POSIX_MAGIC,
        bytes(64),  # uname, gname
        dev,
    )).ljust(tarfile.BLOCKSIZE, b"\0")
    return b"%b%06o\0 %b" % (block[:148], sum(block), block[156:])


class TarWriter:
    """Writes a normalised tar stream to `out` (see the module docstring)."""

    def __init__(self, out, *, source_date_epoch: int | None = None, overlay_whiteouts: bool = True,
                 progress=None):
        self.out = out
        self.source_date_epoch = source_date_epoch
        self.overlay_whiteouts = overlay_whiteouts
        self.progress = progress
        self._links: dict[tuple[int, int], str] = {}

    def _mtime(self, st: os.stat_result) -> int:
        mtime = max(st.st_mtime_ns // 1_000_000_000, 0)  # whole seconds (float st_mtime may round up)
        if self.source_date_epoch is not None:
            mtime = min(mtime, self.source_date_epoch)
        return mtime

    def _header(self, name: str, st: os.stat_result, type_: bytes, *, mode: int | None = None,
                size: int = 0, linkname: str = "", pax: dict[str, str] | None = None) -> bytes:
        mode = stat.S_IMODE(st.st_mode) if mode is None else mode
        mtime = self._mtime(st)
        if (not pax and len(name) <= 100 and len(linkname) <= 100 and name.isascii() and linkname.isascii()
                and st.st_uid < _USTAR_ID_LIMIT and st.st_gid < _USTAR_ID_LIMIT
                and size < _USTAR_NUM_LIMIT and mtime < _USTAR_NUM_LIMIT):
            devices = None
            if type_ in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                devices = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if devices is None or max(devices) < _USTAR_ID_LIMIT:
                return _ustar_header(name, mode, st.st_uid, st.st_gid, size, mtime, type_, linkname, devices)
        info = tarfile.TarInfo(name)
        info.type = type_
        info.mode = mode
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = mtime
        info.size = size
        info.linkname = linkname
        if type_ in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if pax:
            info.pax_headers = pax
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def add_tree(self, root: Path | str, planted: dict | None = None) -> None:
        """Add what is below `root`. `planted`: {relpath of a directory under root: a callable giving the
        (path, relpath below it, lstat) of entries that belong below it (in tar_order) but live elsewhere}."""
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise BuildError(f"cannot make a layer from {root}: not a directory")
        for abs_path, rel, st in _walk(root):
            self.add(abs_path, rel, st)
            if planted and rel in planted and stat.S_ISDIR(st.st_mode):
                for src_path, below, src_st in planted[rel]():
                    # never an overlay mark from outside the overlay's own upper dir
                    self.add(src_path, f"{rel}/{below}", src_st, overlay_marks=False)

    def add(self, abs_path: str, rel: str, st: os.stat_result, *, overlay_marks: bool = True) -> None:
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        if stat.S_ISCHR(mode) and st.st_rdev == 0 and self.overlay_whiteouts and overlay_marks:
            parent, _, base = rel.rpartition("/")
            name = f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
            self.out.write(self._header(name, st, tarfile.REGTYPE, mode=0o600))
            return
        pax = _read_xattrs(abs_path)
        if stat.S_ISDIR(mode):
            self.out.write(self._header(rel + "/", st, tarfile.DIRTYPE, pax=pax))
            if self.overlay_whiteouts and overlay_marks and _is_opaque(abs_path):
                # Right after its directory, before any child: the reader must clear the lower content first.
                self.out.write(self._header(f"{rel}/{OPAQUE_WHITEOUT}", st, tarfile.REGTYPE, mode=0o600))
        elif stat.S_ISLNK(mode):
            self.out.write(self._header(rel, st, tarfile.SYMTYPE, linkname=os.readlink(abs_path), pax=pax))
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                self.out.write(self._header(rel, st, tarfile.LNKTYPE, linkname=self._links[key], pax=pax))
                return
            if st.st_nlink > 1:
                self._links[key] = rel
            self.out.write(self._header(rel, st, tarfile.REGTYPE, size=st.st_size, pax=pax))
            self._copy_content(abs_path, st.st_size)
        elif stat.S_ISCHR(mode):
            self.out.write(self._header(rel, st, tarfile.CHRTYPE, pax=pax))
        elif stat.S_ISBLK(mode):
            self.out.write(self._header(rel, st, tarfile.BLKTYPE, pax=pax))
        elif stat.S_ISFIFO(mode):
            self.out.write(self._header(rel, st, tarfile.FIFOTYPE, pax=pax))

    def _copy_content(self, abs_path: str, size: int) -> None:
        remaining = size
        fd = os.open(abs_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while remaining:
                chunk = os.read(fd, min(CHUNK, remaining))
                if not chunk:
                    raise BuildError(f"{abs_path} shrank while it was being added to a layer")
                self.out.write(chunk)
                remaining -= len(chunk)
                if self.progress is not None:
                    self.progress.update(len(chunk))
        finally:
            os.close(fd)
        if size % 512:
            self.out.write(_ZEROS[: 512 - size % 512])

    def close(self) -> None:
        self.out.write(_ZEROS * 2)  # the end-of-archive marker


class _Batched:
    """Collects small writes (tar headers, padding) into larger ones for the compressor."""

    def __init__(self, sink, size: int = 256 * 1024):
        self._sink, self._size, self._buf = sink, size, bytearray()

    def write(self, data) -> int:
        if len(data) >= self._size:
            self.flush()
            self._sink.write(data)
        else:
            self._buf += data
            if len(self._buf) >= self._size:
                self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buf:
            self._sink.write(bytes(self._buf))
            self._buf.clear()


def _progress_bar(progress: bool | None, root: Path):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm  # only when a bar is wanted

    return tqdm(desc=f"layer {Path(root).name}", unit="B", unit_scale=True, leave=False, file=sys.stderr)


def write_layer_from_dir(root: Path, store, *, compression: str | None = "gzip",
                         source_date_epoch: int | None = None, overlay_whiteouts: bool = True,
                         progress: bool | None = None, planted: dict | None = None) -> tuple[Descriptor, str]:
    """Tar `root` (deterministically) into a layer blob in `store`.

    Returns (descriptor of the stored, compressed blob; diff_id = digest of the uncompressed tar).
    With overlay_whiteouts, overlayfs upper-dir whiteouts become OCI ones: a char device 0:0 becomes an
    empty ".wh.<name>" file, and a directory with trusted.overlay.opaque=y gets ".wh..wh..opq" as its
    first child. compression: "gzip", "zstd" or None. progress: a tqdm bar on stderr (None: if a tty).
    planted: entries tarred from elsewhere into directories of root (TarWriter.add_tree)."""
    if compression == "none":
        compression = None
    media_type = mt.oci_layer_type(compression)
    bar = _progress_bar(progress, root)
    try:
        with store.new_blob() as blob:
            packer = compressor(compression, blob)
            try:
                tar_digest = HashingWriter(packer)
                batched = _Batched(tar_digest)
                writer = TarWriter(batched, source_date_epoch=source_date_epoch,
                                   overlay_whiteouts=overlay_whiteouts, progress=bar)
                writer.add_tree(root, planted)
                writer.close()
                batched.flush()
                packer.close()
            except BaseException:
                abandon(packer)
                raise
            desc = blob.commit(media_type)
    finally:
        if bar is not None:
            bar.close()
    return desc, tar_digest.digest


def write_tar(root: Path, out: BinaryIO, *, source_date_epoch: int | None = None,
              overlay_whiteouts: bool = False) -> None:
    """The same normalised tar stream, uncompressed, into any writable (e.g. for ADD caching or export)."""
    batched = _Batched(out)
    writer = TarWriter(batched, source_date_epoch=source_date_epoch, overlay_whiteouts=overlay_whiteouts)
    writer.add_tree(root)
    writer.close()
    batched.flush()


# --- applying layers ------------------------------------------------------------------------------

class _HashingReader:
    def __init__(self, source: BinaryIO):
        self._source = source
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        self._hash.update(data)
        return data

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def apply_layer(fileobj: BinaryIO, dest: Path, *, whiteouts: str = "apply") -> str:
    """Extract a layer (plain, gzip, zstd, bzip2 or xz tar, detected by content) onto `dest`, safely:
    no entry lands outside `dest`; absolute symlinks and `..` are resolved inside it, as in a rootfs.

    whiteouts="apply": OCI whiteouts delete what they name (`.wh.<name>`), and an opaque whiteout
    (`.wh..wh..opq`) empties its directory of everything not written by this layer -- dest is a rootfs
    with the lower layers already applied. whiteouts="overlay": dest is an empty dir for an overlayfs
    lowerdir, and whiteouts are recorded as overlayfs does (char device 0:0; trusted.overlay.opaque=y).

    Reads `fileobj` to its end (so a VerifyingReader checks its digest) and returns the diff_id."""
    if whiteouts not in ("apply", "overlay"):
        raise ValueError(f"whiteouts must be 'apply' or 'overlay', not {whiteouts!r}")
    stream, _ = open_decompressed(fileobj)
    hashed = _HashingReader(stream)
    try:
        tar = tarfile.open(fileobj=hashed, mode="r|", encoding="utf-8", errors="surrogateescape")
        with Extractor(dest, in_root=True, replace_dirs=True) as ex:
            for member in iter_members(tar):
                _apply_member(ex, member, tar, whiteouts)
            ex.finish()
        while hashed.read(CHUNK):  # trailing zero blocks are part of the diff_id
            pass
        while fileobj.read(CHUNK):  # and the compressed stream's tail is part of the blob digest
            pass
    except tarfile.TarError as e:
        raise BuildError(f"broken layer tar: {e}") from None
    except (EOFError, lzma.LZMAError, zlib.error) as e:
        raise BuildError(f"broken layer compression: {e}") from None
    except OSError as e:
        if e.errno is not None:
            raise  # a real I/O error; bad gzip/bzip2 data raises OSError without errno
        raise BuildError(f"broken layer compression: {e}") from None
    finally:
        if stream is not fileobj and hasattr(stream, "close"):
            stream.close()
    return hashed.digest


def _apply_member(ex: Extractor, member: tarfile.TarInfo, tar: tarfile.TarFile, whiteouts: str) -> None:
    path = clean_name(member.name, in_root=True)
    parent, _, base = path.rpartition("/")
    if base == OPAQUE_WHITEOUT:
        if whiteouts == "overlay":
            ex.mark_overlay_opaque(parent, member.name)
        else:
            ex.clear_dir(parent, member.name)
        return
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return  # other aufs metadata (.wh..wh.plnk and the like): never content
    if base.startswith(WHITEOUT_PREFIX):
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise BuildError(f"refusing to apply whiteout {member.name!r}: it names no file")
        victim = f"{parent}/{target}" if parent else target
        if whiteouts == "overlay":
            ex.make_overlay_whiteout(victim, member.name)
        else:
            ex.remove(victim, member.name)
        return
    ex.extract(member, tar)


def apply_layers(store, layers: list[Descriptor], dest: Path, diff_ids: list[str] | None = None) -> None:
    """Apply image layers in order onto `dest` (blobs verified; diff_ids checked when given)."""
    for i, layer in enumerate(layers):
        with store.open_blob(layer.digest, layer.size) as blob:
            got = apply_layer(blob, dest)
        if diff_ids is not None and i < len(diff_ids) and diff_ids[i] != got:
            raise BuildError(f"layer {layer.digest} unpacks to {got}, but the image config says {diff_ids[i]}")
