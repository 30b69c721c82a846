"""The build context: the files COPY and ADD may read, filtered by .dockerignore, and their content hashes.

The context directory is walked once per build (lstat only); file contents are hashed at most once per
build, and a small per-context stat cache kept in the store's cache dir lets a later build skip re-reading
files whose inode, size, mtime and ctime are unchanged. Hashes cover content, type, permission bits,
symlink targets, hard-link structure and xattrs, never times: touching a file changes no cache key.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import posixpath
import stat
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.atomicfile import atomic_file
from builder.dockerfile import gomatch
from builder.errors import BuildError
from builder.image.digest import CHUNK

_MAX_SYMLINKS = 255

# What we keep of each context entry's lstat, packed into one bytes object (~120 B instead of ~630 B
# for an os.stat_result and its int objects): memory grows as slowly as we can with the context.
_FIELDS = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_dev", "st_ino", "st_rdev",
           "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
_PACKED = struct.Struct("<5q3Q3q")


def _pack(st: os.stat_result) -> bytes:
    return _PACKED.pack(st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size, st.st_dev, st.st_ino,
                        st.st_rdev, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


class StatRecord:
    """The lstat fields the builder uses (same attribute names as os.stat_result), decoded on demand."""

    __slots__ = _FIELDS

    def __init__(self, packed: bytes):
        (self.st_mode, self.st_nlink, self.st_uid, self.st_gid, self.st_size, self.st_dev, self.st_ino,
         self.st_rdev, self.st_atime_ns, self.st_mtime_ns, self.st_ctime_ns) = _PACKED.unpack(packed)

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9

    @property
    def st_atime(self) -> float:
        return self.st_atime_ns / 1e9

    def __repr__(self) -> str:
        return "StatRecord(" + ", ".join(f"{f}={getattr(self, f)}" for f in _FIELDS) + ")"


class _Entries(Mapping):
    """relpath -> StatRecord over the packed records (decoded per lookup, never all held at once)."""

    def __init__(self, packed: dict[str, bytes]):
        self._packed = packed

    def __getitem__(self, relpath: str) -> StatRecord:
        return StatRecord(self._packed[relpath])

    def __contains__(self, relpath) -> bool:
        return relpath in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)


@dataclass(frozen=True)
class Source:
    """One resolved COPY/ADD source: `relpath` in the context ("" is the root), with its lstat."""

    relpath: str
    st: "StatRecord | os.stat_result"
    written: str = ""   # the path as the Dockerfile named it (a followed symlink keeps its own name)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def name(self) -> str:
        return posixpath.basename(self.written or self.relpath)


def clean_source_path(src: str) -> str:
    """The context-relative path a COPY source names, refusing one that climbs out of the context."""
    rel = posixpath.normpath(src.lstrip("/")) if src.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise BuildError(f"forbidden path outside the build context: {src}")
    return "" if rel == "." else rel


class BuildContext:
    """A directory (or nothing, for a Dockerfile read from stdin) seen through .dockerignore."""

    def __init__(self, root: Path | None, ignore=None, hash_cache_file: Path | None = None):
        self.root = Path(root).resolve() if root is not None else None
        self.ignore = ignore
        self._entries: _Entries | None = None
        self._packed: dict[str, bytes] = {}
        self._sorted: list[str] = []
        self._hash_cache_file = hash_cache_file
        self._hash_cache: dict[str, str] | None = None
        self._hash_cache_dirty = False

    # -- walking ---------------------------------------------------------------------------------------

    @property
    def entries(self) -> Mapping[str, StatRecord]:
        """relpath -> lstat record for every entry not excluded by .dockerignore ("" is the root)."""
        if self._entries is None:
            if self.root is not None:
                self._packed[""] = _pack(os.lstat(self.root))
                self._walk(str(self.root), "")
            self._sorted = sorted(self._packed)
            self._entries = _Entries(self._packed)
        return self._entries

    def _walk(self, abspath: str, rel: str) -> None:
        try:
            it = os.scandir(abspath)
        except OSError as e:
            raise BuildError(f"cannot read build context directory {abspath}: {e.strerror}") from None
        with it:
            for entry in it:
                child = f"{rel}/{entry.name}" if rel else entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                if self.ignore is not None and self.ignore.matches(child):
                    # An excluded directory may still hold re-included ("!pattern") files. As BuildKit
                    # does, it is sent only as the parent of such a file, never as an empty directory.
                    if is_dir and self.ignore.may_match_inside(child):
                        self._packed[child] = _pack(entry.stat(follow_symlinks=False))
                        before = len(self._packed)
                        self._walk(entry.path, child)
                        if len(self._packed) == before:
                            del self._packed[child]
                    continue
                self._packed[child] = _pack(entry.stat(follow_symlinks=False))
                if is_dir:
                    self._walk(entry.path, child)

    def abspath(self, relpath: str) -> Path:
        if self.root is None:
            raise BuildError("no build context (the Dockerfile was read from stdin)")
        return self.root / relpath if relpath else self.root

    def lookup(self, relpath: str) -> StatRecord | None:
        return self.entries.get(relpath)

    def children(self, relpath: str) -> list[str]:
        """Every included path strictly below `relpath`, sorted (parents before children)."""
        self.entries
        if relpath == "":
            return self._sorted[1:]
        prefix = relpath + "/"
        start = bisect.bisect_left(self._sorted, prefix)
        end = bisect.bisect_left(self._sorted, relpath + "0")  # '0' is the character after '/'
        return self._sorted[start:end]

    # -- resolving COPY/ADD sources ----------------------------------------------------------------

    def resolve(self, src: str, *, follow: bool = True) -> str:
        """Follow symlinks in `src` (a cleaned relpath) inside the context; refuse any that leave it."""
        def lstat(rel: str):
            st = self.entries.get(rel)
            if st is None:
                raise FileNotFoundError(rel)
            return st

        return "/".join(follow_in_context(src, lstat, lambda rel: os.readlink(self.abspath(rel)), follow_last=follow))

    def sources(self, src: str) -> list[Source]:
        """The context entries one COPY/ADD source names: a path (its symlinks followed inside the
        context) or a Go filepath.Match wildcard (an empty list when it matches nothing: the caller refuses that, as BuildKit does)."""
        rel = clean_source_path(src)
        if self.root is None:
            raise BuildError(f"file not found in build context: {src} (no build context was given)")
        if not gomatch.has_wildcards(rel):
            try:
                real = self.resolve(gomatch.unescape(rel))
            except FileNotFoundError:
                raise BuildError(f"file not found in build context: {src}") from None
            return [Source(real, self.entries[real], gomatch.unescape(rel))]
        # Split into the literal directory prefix and the wildcard part, then match below the prefix.
        parts = rel.split("/")
        cut = next(i for i, p in enumerate(parts) if gomatch.has_wildcards(p))
        base = "/".join(gomatch.unescape(p) for p in parts[:cut])
        pattern = "/".join(parts[cut:])
        try:
            base_real = self.resolve(base)
        except FileNotFoundError:
            return []
        if not stat.S_ISDIR(self.entries[base_real].st_mode):
            return []
        out: list[Source] = []
        skip_prefix = None
        offset = len(base_real) + 1 if base_real else 0
        for child in self.children(base_real):
            if skip_prefix and child.startswith(skip_prefix):
                continue
            if gomatch.match(pattern, child[offset:]):
                st = self.entries[child]
                if stat.S_ISLNK(st.st_mode):
                    try:
                        target = self.resolve(child)
                    except FileNotFoundError:
                        raise BuildError(f"file not found in build context: {child} (dangling symlink)") from None
                    out.append(Source(target, self.entries[target], child))
                else:
                    out.append(Source(child, st))
                if stat.S_ISDIR(st.st_mode):
                    skip_prefix = child + "/"
        return out

    # -- content hashes --------------------------------------------------------------------------------

    def _load_hash_cache(self) -> dict[str, str]:
        if self._hash_cache is None:
            self._hash_cache = {}
            if self._hash_cache_file is not None:
                try:
                    data = json.loads(self._hash_cache_file.read_text())
                    if isinstance(data, dict) and data.get("root") == str(self.root):
                        files = data.get("files", {})
                        self._hash_cache = files if isinstance(files, dict) else {}
                except (OSError, ValueError):
                    pass
        return self._hash_cache

    def file_digest(self, relpath: str) -> str:
        """sha256 of a regular file's content, computed at most once per build (the in-memory hash
        cache holds every digest computed or confirmed in this build)."""
        return self._file_digest(relpath, self.entries[relpath])

    def _file_digest(self, relpath: str, st) -> str:
        # One string per file, "dev:ino:size:mtime_ns:ctime_ns:digest": far smaller than a list.
        key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:"
        cache = self._hash_cache if self._hash_cache is not None else self._load_hash_cache()
        cached = cache.get(relpath)
        if type(cached) is str and len(cached) == len(key) + 64 and cached.startswith(key):
            return cached[len(key):]
        h = hashlib.sha256()
        fd = os.open(self._abs(relpath), os.O_RDONLY | os.O_CLOEXEC)
        try:
            while chunk := os.read(fd, CHUNK):
                h.update(chunk)
        finally:
            os.close(fd)
        digest = h.hexdigest()
        cache[relpath] = key + digest
        self._hash_cache_dirty = True
        return digest

    def entry_record(self, relpath: str, name: str, links: dict) -> str:
        """One line describing an entry for a content hash (no times, no owners)."""
        st = self.entries[relpath]
        mode = st.st_mode
        perm = stat.S_IMODE(mode)
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                first = links.setdefault((st.st_dev, st.st_ino), name)
                if first != name:
                    return f"{name}\0hardlink\0{first}"
            body = f"file\0{perm:o}\0{st.st_size}\0{self._file_digest(relpath, st)}"
        elif stat.S_ISDIR(mode):
            body = f"dir\0{perm:o}"
        elif stat.S_ISLNK(mode):
            body = f"symlink\0{os.readlink(self._abs(relpath))}"
        else:
            body = f"special\0{stat.S_IFMT(mode):o}\0{perm:o}\0{getattr(st, 'st_rdev', 0)}"
        return f"{name}\0{body}\0{self._xattrs(relpath)}"

    def _abs(self, relpath: str) -> str:
        return f"{self.root}/{relpath}" if relpath else str(self.root)

    def _xattrs(self, relpath: str) -> str:
        path = self._abs(relpath)
        try:
            names = sorted(os.listxattr(path, follow_symlinks=False))
        except OSError:
            return ""
        out = []
        for n in names:
            try:
                out.append(f"{n}={os.getxattr(path, n, follow_symlinks=False).hex()}")
            except OSError:
                continue
        return ",".join(out)

    def source_digest(self, source: Source) -> str:
        """A hash of everything COPY would take from one source: the entry itself and, for a directory,
        the whole included tree below it."""
        h = hashlib.sha256()
        links: dict = {}
        h.update(self.entry_record(source.relpath, ".", links).encode() + b"\n")
        if source.is_dir:
            offset = len(source.relpath) + 1 if source.relpath else 0
            for child in self.children(source.relpath):
                h.update(self.entry_record(child, child[offset:], links).encode() + b"\n")
        return "sha256:" + h.hexdigest()

    def save_hash_cache(self) -> None:
        """Persist the stat -> digest cache (atomically) so the next build need not re-read files."""
        if not self._hash_cache_dirty or self._hash_cache_file is None or self._hash_cache is None:
            return
        live = {k: v for k, v in self._hash_cache.items() if k in self._packed}
        self._hash_cache_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_file(self._hash_cache_file, durable=False) as f:  # only a cache: losing it costs time
                f.write(json.dumps({"root": str(self.root), "files": live}, separators=(",", ":")).encode())
        except OSError:
            pass
        self._hash_cache_dirty = False


def hash_cache_file_for(cache_dir: Path, context_root: Path | None) -> Path | None:
    """Where the stat cache of one context directory lives in the store's cache_dir."""
    if context_root is None:
        return None
    key = hashlib.sha256(str(Path(context_root).resolve()).encode()).hexdigest()[:32]
    return Path(cache_dir) / "context" / f"{key}.json"


MAX_CONTROL_FILE = 16 * 1024 * 1024  # a Dockerfile or .dockerignore bigger than this is refused


def follow_in_context(path: str, lstat, readlink, *, follow_last: bool = True) -> list[str]:
    """The real components of `path` inside a build context, its symlinks followed inside it: lstat(rel) and
    readlink(rel) read the context. A symlink (or "..") leading out of it is a BuildError; a missing
    component a FileNotFoundError."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not done:
                raise BuildError(f"forbidden path outside the build context: {path}")
            done.pop()
            continue
        cur = "/".join(done + [part])
        st = lstat(cur)
        if stat.S_ISLNK(st.st_mode) and (parts or follow_last):
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise BuildError(f"too many levels of symbolic links: {path}")
            target = readlink(cur)
            # Resolved relative to the link's directory; an absolute target, or climbing above the root, leaves it.
            depth = len(done)
            for t in target.split("/") if not target.startswith("/") else [".."] * (depth + 1):
                if t == "..":
                    depth -= 1
                    if depth < 0:
                        raise BuildError(f"forbidden path outside the build context: {path} "
                                         f"(symlink {cur} -> {target})")
                elif t not in ("", "."):
                    depth += 1
            parts = [p for p in target.split("/") if p] + parts
            continue
        if parts and not stat.S_ISDIR(st.st_mode):
            raise FileNotFoundError(cur)
        done.append(part)
    return done


def resolve_in_context(root: Path, rel: str) -> Path:
    """The real path of `rel` inside the context `root` on disk (FileNotFoundError when missing)."""
    done = follow_in_context(rel, lambda r: os.lstat(os.path.join(root, r)),
                             lambda r: os.readlink(os.path.join(root, r)))
    return Path(root).joinpath(*done)


def read_control_file(path: Path, what: str) -> str:
    """A Dockerfile or .dockerignore: a regular file (no device, FIFO, or symlink at the last step) of at
    most MAX_CONTROL_FILE bytes, as text. FileNotFoundError when missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise BuildError(f"failed to read {what} {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise BuildError(f"failed to read {what}: {path} is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise BuildError(f"failed to read {what}: {path} is not a regular file")
        data = f.read(MAX_CONTROL_FILE + 1)
    if len(data) > MAX_CONTROL_FILE:
        raise BuildError(f"failed to read {what}: {path} is larger than {MAX_CONTROL_FILE // (1024 * 1024)} MiB")
    return data.decode("utf-8", errors="replace") if what == ".dockerignore" else data.decode("utf-8")


def open_context_file(root: Path | None, path: Path, what: str) -> str:
    """read_control_file for `path`; inside the context `root` its symlinks may not lead out of it."""
    if root is not None:
        try:
            rel = Path(os.path.normpath(os.path.abspath(path))).relative_to(root)
        except ValueError:
            rel = None
        if rel is not None:
            return read_control_file(resolve_in_context(root, str(rel)), what)
    return read_control_file(Path(os.path.realpath(path)), what)


def load_ignore(context_root: Path | None, dockerfile_path: Path | None):
    """The .dockerignore matcher for a build: `<Dockerfile>.dockerignore` beside the Dockerfile wins over
    `<context>/.dockerignore`, as BuildKit does. None when there is no ignore file. Both are read inside
    the context like every context file (a symlink leading out of it is refused)."""
    from builder.dockerfile.ignore import IgnoreMatcher

    candidates = []
    if dockerfile_path is not None:
        candidates.append(Path(str(dockerfile_path) + ".dockerignore"))
    if context_root is not None:
        candidates.append(Path(context_root) / ".dockerignore")
    for path in candidates:
        try:
            text = open_context_file(context_root, path, ".dockerignore")
        except FileNotFoundError:
            continue
        except OSError as e:
            raise BuildError(f"cannot read {path}: {e.strerror}") from None
        return IgnoreMatcher.from_text(text)
    return None
