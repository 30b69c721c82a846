"""Reading tar archives safely: compression detected by content, and extraction that never writes
outside the destination directory.

Every path is resolved one component at a time from a directory fd, with O_NOFOLLOW and our own reading of
symlinks, so neither `..`, absolute names, symlinks planted by earlier entries, nor hard links can make an
entry land outside the destination. Two policies:

- archive mode (ADD of a local tar): any escape is an error naming the entry, including an absolute
  symlink or a `..` that climbs above the destination on the way to an entry;
- layer mode (image layers): the destination is a root filesystem, so absolute symlinks and `..` are
  resolved inside it (like openat2 RESOLVE_IN_ROOT), which is what a layer's author meant.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
import zlib
from base64 import b64decode
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

from builder.errors import BuildError
from builder.image.digest import CHUNK

MAX_SYMLINKS = 40

_MAGIC = [
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]

# xattrs never taken from an archive: overlayfs internals (a layer could otherwise forge whiteouts or
# redirects in our unpacked lower dirs) and the host's SELinux labels.
SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "security.selinux")


# --- compression ----------------------------------------------------------------------------------

class PeekableReader:
    """A read-only stream that can show its first bytes before they are consumed."""

    def __init__(self, source: BinaryIO):
        self._source = source
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            chunk = self._source.read(n - len(self._head))
            if not chunk:
                break
            self._head += chunk
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._source.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._source.read(n - len(data))
            return data
        return self._source.read(n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._source.close()


def detect_compression(head: bytes) -> str | None:
    """"gzip", "bzip2", "xz", "zstd", or None (not compressed, or unknown) from the first bytes."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class ZstdReader:
    """Decompresses a zstd stream through Debian's `zstd` binary (python 3.11 has no zstd module).

    A thread feeds the compressed input to the child's stdin while read() takes its stdout, so neither
    side ever holds more than a pipe buffer."""

    def __init__(self, source: BinaryIO):
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(["zstd", "-d", "-c", "-q"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr)
        except FileNotFoundError:
            raise BuildError("a zstd-compressed layer needs the zstd program (apt-get install zstd)") from None
        self._error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, args=(source,), daemon=True)
        self._feeder.start()
        self._done = False

    def _feed(self, source: BinaryIO) -> None:
        try:
            while chunk := source.read(CHUNK):
                self._proc.stdin.write(chunk)
        except BrokenPipeError:
            pass
        except BaseException as e:  # e.g. the blob failed its digest check: re-raised in read()
            self._error = e
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def read(self, n: int = -1) -> bytes:
        data = self._proc.stdout.read(n)
        if not data and not self._done:
            self._finish()
        return data

    def readable(self) -> bool:
        return True

    def _finish(self) -> None:
        self._done = True
        self._feeder.join()
        rc = self._proc.wait()
        if self._error is not None:
            raise self._error
        if rc != 0:
            self._stderr.seek(0)
            msg = self._stderr.read().decode(errors="replace").strip()
            raise BuildError(f"cannot decompress zstd data: {msg or f'zstd exited with status {rc}'}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.stdout.close()
        self._feeder.join()
        self._proc.wait()
        self._stderr.close()


def _seconds(mtime) -> int:
    """A member's mtime as whole seconds utime() takes: PAX archives (tar --format=posix) carry fractional
    ones, and a hostile one may be nan, inf or out of range (then 0 or clamped)."""
    try:
        secs = int(mtime)
    except (ValueError, OverflowError, TypeError):
        return 0
    return max(-(2**33), min(secs, 2**33))


def open_decompressed(source: BinaryIO) -> tuple[BinaryIO, str | None]:
    """Wrap `source` so reads give the decompressed bytes; returns (stream, compression name or None)."""
    peekable = PeekableReader(source)
    kind = detect_compression(peekable.peek(6))
    if kind == "gzip":
        return gzip.GzipFile(fileobj=peekable, mode="rb"), kind
    if kind == "bzip2":
        return bz2.BZ2File(peekable, mode="rb"), kind
    if kind == "xz":
        return lzma.LZMAFile(peekable, mode="rb"), kind
    if kind == "zstd":
        return ZstdReader(peekable), kind
    return peekable, None


def looks_like_tar(head: bytes) -> bool:
    """True if `head` (the first 512 decompressed bytes) is a valid tar header block."""
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def is_archive(path: Path | str) -> bool:
    """Whether ADD should unpack this local file: a (gzip/bzip2/xz/zstd-compressed or plain) tar archive."""
    try:
        with open(path, "rb") as f:
            stream, _ = open_decompressed(f)
            try:
                head = stream.read(512)
            finally:
                if stream is not f:
                    stream.close()
    except (OSError, EOFError, lzma.LZMAError, BuildError):
        return False
    return looks_like_tar(head)


# --- names ----------------------------------------------------------------------------------------

def clean_name(name: str, *, in_root: bool, what: str = "entry") -> str:
    """A member name as a relative, normalised path ("" for the root itself), or BuildError if it escapes.

    In layer mode (in_root) a leading "/" is dropped, as docker does; in archive mode it is an error."""
    if name.startswith("/"):
        if not in_root:
            raise BuildError(f"refusing to extract {what} {name!r}: absolute path")
        name = name.lstrip("/")
    cleaned = posixpath.normpath(name) if name else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise BuildError(f"refusing to extract {what} {name!r}: it would land outside the destination")
    return "" if cleaned == "." else cleaned


def xattrs_of(member: tarfile.TarInfo) -> dict[str, bytes]:
    """Extended attributes recorded in PAX headers (SCHILY.xattr.* as GNU tar writes, LIBARCHIVE.xattr.*)."""
    out: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = unquote_to_bytes(key[len("LIBARCHIVE.xattr."):]).decode("utf-8", "surrogateescape")
            try:
                out[name] = b64decode(value + "=" * (-len(value) % 4))
            except ValueError:
                continue
    return {k: v for k, v in out.items() if not k.startswith(SKIPPED_XATTR_PREFIXES)}


# --- extraction -----------------------------------------------------------------------------------

def resolve_dir(root_fd: int, parts: list[str], *, in_root: bool, create: bool = False,
                entry: str = "") -> int:
    """An fd of the directory `parts` names below root_fd, resolving symlinks ourselves: in_root, absolute
    targets restart at root_fd and `..` stops there; otherwise either one is a BuildError naming `entry`.
    Missing directories are made (0755) when `create`, else FileNotFoundError."""
    stack = [os.dup(root_fd)]
    pending = list(parts)
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) == 1:
                    if in_root:
                        continue
                    raise BuildError(f"refusing to extract {entry!r}: its path climbs out of the destination "
                                     "through a symlink")
                os.close(stack.pop())
                continue
            try:
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=stack[-1])
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise BuildError(f"cannot extract {entry!r}: too many levels of symbolic links")
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    if not in_root:
                        raise BuildError(f"refusing to extract {entry!r}: its path goes through the symlink "
                                         f"{part!r} -> {target!r}, which points outside the destination")
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending[:0] = target.split("/")
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise BuildError(f"cannot extract {entry!r}: {part!r} on its path is not a directory")
            stack.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 dir_fd=stack[-1]))
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


class Extractor:
    """Creates tar members under `dest`, refusing anything that would land outside it (see module doc).

    Call extract() per member, then finish() (sets directory times) and close()."""

    def __init__(self, dest: Path, *, in_root: bool, replace_dirs: bool,
                 chown: tuple[int, int] | None = None):
        self.dest = Path(dest)
        self.dest.mkdir(parents=True, exist_ok=True)
        self.in_root = in_root
        self.replace_dirs = replace_dirs
        self.chown = chown
        self.is_root = os.geteuid() == 0
        self.root_fd = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.created: set[str] = set()  # paths this extractor wrote (an opaque whiteout keeps them)
        self._dir_times: list[tuple[str, int]] = []
        self._cached: tuple[str, int] | None = None

    # -- path resolution

    def _walk(self, parts: list[str], *, create: bool, entry: str) -> int:
        return resolve_dir(self.root_fd, parts, in_root=self.in_root, create=create, entry=entry)

    def _parent_fd(self, path: str, entry: str, *, create: bool = True) -> tuple[int, str]:
        """(fd of the parent directory, final name) for a cleaned path; the fd belongs to a one-slot cache."""
        parent, _, name = path.rpartition("/")
        if self._cached is not None and self._cached[0] == parent:
            return self._cached[1], name
        fd = self._walk(parent.split("/") if parent else [], create=create, entry=entry)
        self._forget()
        self._cached = (parent, fd)
        return fd, name

    def _forget(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _lstat(self, dir_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _remove_at(self, dir_fd: int, name: str, st: os.stat_result) -> None:
        self._forget_if_inside(dir_fd)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)

    def _forget_if_inside(self, dir_fd: int) -> None:
        # Removing a directory may remove the cached parent; the cache is cheap to rebuild.
        if self._cached is not None and self._cached[1] != dir_fd:
            self._forget()

    # -- operations

    def extract(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> str:
        """Create one member; returns its cleaned path ("" for the root entry)."""
        path = clean_name(member.name, in_root=self.in_root)
        if path == "":
            if self.in_root and member.isdir():
                self._set_metadata(self.root_fd, None, member)
                self._dir_times.append(("", _seconds(member.mtime)))
            return path
        dir_fd, name = self._parent_fd(path, member.name)
        existing = self._lstat(dir_fd, name)
        if member.isdir():
            if existing is not None and stat.S_ISLNK(existing.st_mode) and not self.replace_dirs:
                # ADD onto an existing symlink to a directory: keep the link, but only if it stays inside.
                try:
                    os.close(self._walk(path.split("/"), create=False, entry=member.name))
                except FileNotFoundError:
                    raise BuildError(f"cannot extract {member.name!r}: it is a dangling symlink in the "
                                     "destination") from None
                self.created.add(path)
                return path
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                self._remove_at(dir_fd, name, existing)
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            self._set_metadata(dir_fd, name, member)
            self._dir_times.append((path, _seconds(member.mtime)))
        else:
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode) and not self.replace_dirs:
                    raise BuildError(f"cannot extract {member.name!r}: a directory is in the way "
                                     "(refusing to replace a directory with a non-directory)")
                self._remove_at(dir_fd, name, existing)
            self._create_nondir(dir_fd, name, member, tar)
        self.created.add(path)
        return path

    def _create_nondir(self, dir_fd: int, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if member.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            try:
                source = tar.extractfile(member)
                with os.fdopen(os.dup(fd), "wb", buffering=0) as out:
                    if source is not None:
                        while chunk := source.read(CHUNK):
                            out.write(chunk)
                self._set_metadata(fd, None, member)
            finally:
                os.close(fd)
            return
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=dir_fd)
        elif member.islnk():
            self._hardlink(dir_fd, name, member)
            return  # a hard link shares the target's inode and metadata
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=dir_fd)
        elif member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
        else:
            raise BuildError(f"cannot extract {member.name!r}: unsupported tar entry type {member.type!r}")
        self._set_metadata(dir_fd, name, member)

    def _hardlink(self, dir_fd: int, name: str, member: tarfile.TarInfo) -> None:
        target = clean_name(member.linkname, in_root=self.in_root, what="hard link target")
        if target == "":
            raise BuildError(f"refusing to extract {member.name!r}: hard link to the destination directory")
        tparent, _, tname = target.rpartition("/")
        try:
            tfd = self._walk(tparent.split("/") if tparent else [], create=False, entry=member.name)
        except FileNotFoundError:
            raise BuildError(f"cannot extract {member.name!r}: its hard link target {member.linkname!r} "
                             "does not exist") from None
        try:
            st = self._lstat(tfd, tname)
            if st is None:
                raise BuildError(f"cannot extract {member.name!r}: its hard link target {member.linkname!r} "
                                 "does not exist")
            if stat.S_ISDIR(st.st_mode):
                raise BuildError(f"cannot extract {member.name!r}: hard link to a directory")
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _set_metadata(self, fd_or_dir: int, name: str | None, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears setuid bits), then xattrs (chown clears security.capability),
        then times. With name None, fd_or_dir is the file itself."""
        symlink = member.issym()
        uid, gid = self.chown if self.chown is not None else (member.uid, member.gid)
        if self.is_root or self.chown is not None:
            try:
                if name is None:
                    os.fchown(fd_or_dir, uid, gid)
                else:
                    os.chown(name, uid, gid, dir_fd=fd_or_dir, follow_symlinks=False)
            except PermissionError:
                pass
        if not symlink:
            if name is None:
                os.fchmod(fd_or_dir, member.mode & 0o7777)
            else:
                os.chmod(name, member.mode & 0o7777, dir_fd=fd_or_dir)
        for key, value in xattrs_of(member).items():
            try:
                if name is None:
                    os.setxattr(fd_or_dir, key, value)
                else:
                    os.setxattr(f"/proc/self/fd/{fd_or_dir}/{name}", key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL, errno.ENOTSUP):
                    raise
        if not member.isdir():
            times = (_seconds(member.mtime) * 10**9,) * 2
            if name is None:
                os.utime(fd_or_dir, ns=times)
            else:
                os.utime(name, ns=times, dir_fd=fd_or_dir, follow_symlinks=False)

    def remove(self, path: str, entry: str) -> None:
        """Delete `path` (a whiteout): missing is fine; a symlink is removed, never followed."""
        try:
            dir_fd, name = self._parent_fd(path, entry, create=False)
        except (FileNotFoundError, BuildError):
            return
        st = self._lstat(dir_fd, name)
        if st is not None:
            self._remove_at(dir_fd, name, st)
        self.created.discard(path)

    def clear_dir(self, path: str, entry: str) -> None:
        """An opaque whiteout: remove what the directory held before this extraction (keep what it wrote)."""
        try:
            fd = self._walk(path.split("/") if path else [], create=True, entry=entry)
        except FileNotFoundError:
            return
        try:
            for name in os.listdir(fd):
                child = f"{path}/{name}" if path else name
                if child in self.created:
                    continue
                st = self._lstat(fd, name)
                if st is not None:
                    self._remove_at(fd, name, st)
        finally:
            os.close(fd)
        self._forget()

    def make_overlay_whiteout(self, path: str, entry: str) -> None:
        """Record a deletion the way overlayfs does in an upper dir: a char device 0:0."""
        dir_fd, name = self._parent_fd(path, entry)
        st = self._lstat(dir_fd, name)
        if st is not None:
            self._remove_at(dir_fd, name, st)
        os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dir_fd)
        self.created.add(path)

    def mark_overlay_opaque(self, path: str, entry: str) -> None:
        """Record an opaque directory the way overlayfs does: trusted.overlay.opaque=y."""
        fd = self._walk(path.split("/") if path else [], create=True, entry=entry)
        try:
            os.setxattr(fd, "trusted.overlay.opaque", b"y")
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Set directory mtimes, deepest first (creating children changed them)."""
        self._forget()
        for path, mtime in reversed(self._dir_times):
            try:
                fd = self._walk(path.split("/") if path else [], create=False, entry=path)
            except (FileNotFoundError, BuildError):
                continue
            try:
                os.utime(fd, ns=(mtime * 10**9, mtime * 10**9))
            finally:
                os.close(fd)
        self._dir_times.clear()

    def close(self) -> None:
        self._forget()
        os.close(self.root_fd)

    def __enter__(self) -> "Extractor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_members(tar: tarfile.TarFile):
    """Members of a stream-mode TarFile, one at a time, without tarfile's list of every member so far."""
    while True:
        member = tar.next()
        if member is None:
            return
        yield member
        tar.members.clear()  # stream mode never looks back; the list would grow with the entry count


def extract_archive(path: Path | str, dest: Path, *, chown: tuple[int, int] | None = None,
                    devices: bool = True) -> list[str]:
    """Unpack a local tar archive (gzip, bzip2, xz, zstd or plain, detected by content) into `dest`
    for ADD. Modes, owners, links, devices and xattrs are kept where possible. Any entry that would land
    outside `dest` (`..`, absolute names, through symlinks, hard links to outside) is refused with a
    BuildError naming it; so is a device node when `devices` is False (a build context: a device there
    would let COPY read the host's disks). Returns the cleaned paths extracted."""
    written: list[str] = []
    with open(path, "rb") as raw:
        stream, _ = open_decompressed(raw)
        try:
            try:
                tar = tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")
            except tarfile.TarError as e:
                raise BuildError(f"{path} is not a tar archive: {e}") from None
            with Extractor(dest, in_root=False, replace_dirs=False, chown=chown) as ex:
                try:
                    for member in iter_members(tar):
                        if not devices and (member.ischr() or member.isblk()):
                            raise BuildError(f"refusing to extract {member.name!r}: a device node")
                        written.append(ex.extract(member, tar))
                except tarfile.TarError as e:
                    raise BuildError(f"{path}: broken tar archive: {e}") from None
                except (EOFError, lzma.LZMAError, zlib.error, OSError) as e:
                    if isinstance(e, OSError) and e.errno is not None:
                        raise  # a real I/O error, not bad data (bad gzip/bzip2 data has no errno)
                    raise BuildError(f"{path}: broken compressed data: {e}") from None
                ex.finish()
        finally:
            if stream is not raw:
                stream.close()
    return [p for p in written if p]
