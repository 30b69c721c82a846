"""File copying for COPY and ADD, into a rootfs seen from the host (an overlayfs merged dir).

Paths inside the rootfs are resolved the way a chroot would see them (absolute symlinks and ".." stay
inside the root). Copies keep modes (setuid bits included), times, symlinks, hard links (within one
COPY), device nodes and xattrs; file data moves with copy_file_range/sendfile, never through Python.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from builder.errors import BuildError

_MAX_SYMLINKS = 255
_SKIP_XATTR_PREFIXES = ("trusted.overlay.", "security.selinux")


@dataclass
class CopyOptions:
    uid: int | None = None          # owner for every copied entry; None: keep the source's (or 0 below)
    gid: int | None = None
    keep_owner: bool = False        # True for COPY --from (a stage's files keep their owners)
    mode: int | None = None         # --chmod: permission bits for every copied file and directory
    dir_owner: tuple[int, int] = (0, 0)   # owner of destination directories that COPY creates
    links: dict = field(default_factory=dict)  # (dev, ino) of sources -> first destination (hard links)


@dataclass
class SourceTree:
    """One source to copy: an entry on the host and, for a directory, what lies below it (sorted,
    parents first, paths relative to `path`)."""

    path: Path
    st: os.stat_result
    name: str
    children: Iterable[tuple[str, os.stat_result]] = ()

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def walk_host_tree(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below `root` (not following symlinks), sorted, parents before children."""

    def walk(abspath: str, rel: str):
        with os.scandir(abspath) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            child = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                yield from walk(e.path, child)

    yield from walk(str(root), "")


# -- paths inside a rootfs ---------------------------------------------------------------------------

def resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """The host path of `path` inside `root`, following symlinks as if `root` were "/"."""
    pending = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if (pending or follow_last) and candidate.is_symlink():
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise BuildError(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        done.append(part)
    return root.joinpath(*done)


def mkdir_in_root(root: Path, path: str, owner: tuple[int, int] = (0, 0), mode: int = 0o755) -> Path:
    """mkdir -p inside the rootfs; created directories get `owner` and `mode`. Returns the host path."""
    return _mkdir_in_root(root, path, owner, mode)[0]


def _mkdir_in_root(root: Path, path: str, owner: tuple[int, int], mode: int) -> tuple[Path, bool]:
    """mkdir_in_root, also telling whether the directory itself was made now (so it is new and empty)."""
    target = resolve_in_root(root, path)
    missing = []
    p = target
    while not p.exists() and not p.is_symlink() and p != root:
        missing.append(p)
        p = p.parent
    if p != root and not p.is_dir():
        raise BuildError(f"cannot create directory {path}: {_inside(root, p)} is not a directory")
    made = False
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            if not d.is_dir():
                raise BuildError(f"cannot create directory {path}: {_inside(root, d)} is not a directory") from None
            made = False
            continue
        os.chown(d, *owner)
        os.chmod(d, mode)
        made = True
    if not target.is_dir():
        raise BuildError(f"cannot create directory {path}: {_inside(root, target)} is not a directory")
    return target, made and d == target


def _inside(root: Path, p: Path) -> str:
    try:
        return "/" + str(p.relative_to(root))
    except ValueError:
        return str(p)


# -- copying one entry -----------------------------------------------------------------------------

def _copy_data(src_fd: int, dst_fd: int, size: int) -> None:
    left = size
    use_cfr = hasattr(os, "copy_file_range")
    while left > 0:
        n = 0
        if use_cfr:
            try:
                n = os.copy_file_range(src_fd, dst_fd, min(left, 1 << 30))
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EIO):
                    raise
                use_cfr = False
                continue
        else:
            n = os.sendfile(dst_fd, src_fd, None, min(left, 1 << 30))
        if n == 0:
            break  # the file shrank while we copied it
        left -= n


def copy_xattrs(src, dst, *, follow: bool = False) -> None:
    """Copy extended attributes; src and dst may be paths or open fds."""
    try:
        names = os.listxattr(src, follow_symlinks=follow) if not isinstance(src, int) else os.listxattr(src)
    except OSError:
        return
    for name in names:
        if name.startswith(_SKIP_XATTR_PREFIXES):
            continue
        try:
            if isinstance(src, int):
                value = os.getxattr(src, name)
            else:
                value = os.getxattr(src, name, follow_symlinks=follow)
            if isinstance(dst, int):
                os.setxattr(dst, name, value)
            else:
                os.setxattr(dst, name, value, follow_symlinks=follow)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EPERM, errno.EACCES) and not name.startswith(("user.", "security.capability")):
                continue
            raise BuildError(f"cannot copy xattr {name} to {dst}: {e.strerror}") from None


def _prepare_target(dst: str, want_dir: bool) -> bool:
    """Make room for a new entry at dst; returns True if an existing directory is to be reused."""
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if want_dir:
            return True
        raise BuildError(f"cannot copy a file over the directory {os.path.basename(dst)}")
    os.unlink(dst)
    return False


def _owner(st: os.stat_result, opts: CopyOptions) -> tuple[int, int]:
    if opts.uid is not None:
        return opts.uid, opts.gid if opts.gid is not None else opts.uid
    if opts.keep_owner:
        return st.st_uid, st.st_gid
    return 0, 0


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_entry(src, st: os.stat_result, dst, opts: CopyOptions, dir_times: list | None = None,
               *, fresh: bool = False) -> bool:
    """Copy one entry (not what is below a directory). Directory times are queued in `dir_times`
    (to be set after their contents), everything else is finished here. `fresh`: dst's parent was
    just created by us, so nothing can be in the way. Returns True if a new directory was made."""
    src, dst = os.fspath(src), os.fspath(dst)
    mode = st.st_mode
    uid, gid = _owner(st, opts)
    perm = stat.S_IMODE(mode) if opts.mode is None else opts.mode
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in opts.links:
            if not fresh:
                _prepare_target(dst, False)
            os.link(opts.links[key], dst)
            return False
        if not fresh:
            _prepare_target(dst, False)
        src_fd = os.open(src, _READ)
        try:
            dst_fd = os.open(dst, _CREATE, 0o600)
            try:
                if st.st_size:
                    _copy_data(src_fd, dst_fd, st.st_size)
                os.fchown(dst_fd, uid, gid)  # always: a setgid parent would otherwise pass its group on
                os.fchmod(dst_fd, perm)  # after chown, which clears setuid bits
                copy_xattrs(src_fd, dst_fd)
                os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)
        if st.st_nlink > 1:
            opts.links[key] = dst
        return False
    if stat.S_ISDIR(mode):
        created = fresh or not _prepare_target(dst, True)
        if created:
            os.mkdir(dst, 0o700)
        os.chown(dst, uid, gid)
        os.chmod(dst, perm)
        copy_xattrs(src, dst)
        if dir_times is not None:
            dir_times.append((dst, st))
        return created
    if stat.S_ISLNK(mode):
        if not fresh:
            _prepare_target(dst, False)
        os.symlink(os.readlink(src), dst)
        os.chown(dst, uid, gid, follow_symlinks=False)
        copy_xattrs(src, dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        if not fresh:
            _prepare_target(dst, False)
        os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        os.chown(dst, uid, gid)
        os.chmod(dst, perm)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    # sockets are skipped, as docker does
    return False


def copy_tree(src: SourceTree, dst_dir: Path, opts: CopyOptions) -> None:
    """Copy what lies below a source directory into dst_dir (which exists)."""
    dir_times: list = []
    fresh_dirs: set[str] = set()
    src_root, dst_root = os.fspath(src.path), os.fspath(dst_dir)
    for rel, st in src.children:
        parent = rel.rpartition("/")[0]
        made = copy_entry(f"{src_root}/{rel}", st, f"{dst_root}/{rel}", opts, dir_times,
                          fresh=bool(parent) and parent in fresh_dirs)
        if made:
            fresh_dirs.add(rel)
    for d, st in reversed(dir_times):
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_tree_beside(src: SourceTree, target: Path, rootfs: Path, upper: Path, opts: CopyOptions) -> None:
    """copy_tree into the upper dir's copy of `target`, a directory the overlay at rootfs just made. Hard
    links made earlier in this COPY are named by their merged path: linked here by their upper one (a
    file written in this step is in the upper dir), and what this tree adds is named by its merged path."""
    merged_prefix, upper_prefix = os.fspath(rootfs) + "/", os.fspath(upper) + "/"
    in_upper = upper / target.relative_to(rootfs)
    if not in_upper.is_dir():  # not where overlayfs keeps it: take the ordinary way
        copy_tree(src, target, opts)
        return
    _swap_prefix(opts.links, merged_prefix, upper_prefix)
    try:
        copy_tree(src, in_upper, opts)
    finally:
        _swap_prefix(opts.links, upper_prefix, merged_prefix)


def tree_digest(tree: SourceTree) -> str:
    """A hash of what copying `tree` with its owners kept (COPY --from) takes: names, types, modes, owners,
    contents, link targets, device numbers, hard-link structure and xattrs; never times, as BuildKit's
    content checksums leave them out."""
    import hashlib

    h = hashlib.sha256()
    links: dict = {}
    root = os.fspath(tree.path)
    for rel, st, path in [("", tree.st, root), *((r, s, f"{root}/{r}") for r, s in tree.children)]:
        mode = st.st_mode
        head = f"{rel}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}\0{st.st_uid}\0{st.st_gid}"
        if stat.S_ISREG(mode):
            first = links.setdefault((st.st_dev, st.st_ino), rel) if st.st_nlink > 1 else rel
            if first != rel:
                body = f"link\0{first}"
            else:
                content = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        content.update(chunk)
                body = f"{st.st_size}\0{content.hexdigest()}"
        elif stat.S_ISLNK(mode):
            body = os.readlink(path)
        else:
            body = f"{st.st_rdev}" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else ""
        try:
            names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if not n.startswith(_SKIP_XATTR_PREFIXES))
            xattrs = ",".join(f"{n}={os.getxattr(path, n, follow_symlinks=False).hex()}" for n in names)
        except OSError:
            xattrs = ""
        h.update(f"{head}\0{body}\0{xattrs}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


class CopiedStat:
    """The lstat of an entry as copy_entry would make it from its source's (owner and mode rules)."""

    __slots__ = ("st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns", "st_dev", "st_ino", "st_nlink",
                 "st_rdev")

    def __init__(self, st, opts: CopyOptions):
        mode = st.st_mode
        self.st_uid, self.st_gid = _owner(st, opts)
        if stat.S_ISLNK(mode):
            perm = 0o777  # what Linux gives every symlink
        else:
            perm = stat.S_IMODE(mode) if opts.mode is None else opts.mode
        self.st_mode = stat.S_IFMT(mode) | perm
        self.st_size, self.st_mtime_ns, self.st_rdev = st.st_size, st.st_mtime_ns, st.st_rdev
        self.st_dev, self.st_ino, self.st_nlink = st.st_dev, st.st_ino, st.st_nlink  # hard links join as copied


def copied_entries(src: SourceTree, opts: CopyOptions) -> Iterator[tuple[str, str, CopiedStat]]:
    """(source path, relpath, lstat after copying) of what copy_tree(src) would write below its target, in
    the order its children come. Sockets are left out, as copy_entry leaves them."""
    root = os.fspath(src.path)
    for rel, st in src.children:
        if not stat.S_ISSOCK(st.st_mode):
            yield f"{root}/{rel}", rel, CopiedStat(st, opts)


def _swap_prefix(links: dict, old: str, new: str) -> None:
    for key, path in links.items():
        if path.startswith(old):
            links[key] = new + path[len(old):]


def _dir_mode(opts: CopyOptions) -> int:
    """Directories COPY creates on the way to dest: 0755, or the --chmod mode (as BuildKit does)."""
    return 0o755 if opts.mode is None else opts.mode


def copy_sources(rootfs: Path, sources: list[SourceTree], dest: str, opts: CopyOptions, *,
                 upper: Path | None = None, plant: dict | None = None) -> list[str]:
    """docker's COPY rules: a directory's contents go into dest; a file goes to dest, or into it when
    dest ends with "/" or is an existing directory. Returns the in-image paths written.

    `upper`: when rootfs is an overlay, its upper dir. A directory's contents then go straight into the
    upper dir when this copy made the destination directory (new, so nothing below it is merged from a
    lower layer): creating files through overlayfs costs a third more than on the filesystem below.
    `plant`: in that case (or for a file whose parent directory this copy made), copy nothing but record
    in plant[the directory's path in rootfs] what it would hold (copied_entries, for TarWriter.add_tree):
    for a layer tarred and never unpacked, the files need not be created at all. A directory's children
    must then come in layers.tar_order."""
    dest_is_dir = dest.endswith("/")
    written = []
    for src in sources:
        if src.is_dir:
            target, made = _mkdir_in_root(rootfs, dest, opts.dir_owner, _dir_mode(opts))
            if plant is not None and made:
                plant[target.relative_to(rootfs).as_posix()] = lambda src=src: copied_entries(src, opts)
            elif upper is not None and made:
                _copy_tree_beside(src, target, rootfs, Path(upper), opts)
            else:
                copy_tree(src, target, opts)
            written.append(dest)
            continue
        resolved = resolve_in_root(rootfs, dest)
        if dest_is_dir or resolved.is_dir():
            parent, made = _mkdir_in_root(rootfs, dest, opts.dir_owner, _dir_mode(opts))
            leaf = src.name
            written.append(dest.rstrip("/") + "/" + src.name)
        else:
            parent_path, _, leaf = dest.rstrip("/").rpartition("/")
            parent, made = _mkdir_in_root(rootfs, parent_path or "/", opts.dir_owner, _dir_mode(opts))
            written.append(dest)
        if plant is not None and made:  # a file alone in a new directory: planted as a tree would be
            entry = (os.fspath(src.path), leaf, CopiedStat(src.st, opts))
            plant[parent.relative_to(rootfs).as_posix()] = lambda entry=entry: iter([entry])
            continue
        copy_entry(src.path, src.st, parent / leaf, opts)  # an existing symlink at leaf is replaced, not followed
    return written
