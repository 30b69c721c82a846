"""pydock cp: copy files between a container's filesystem and the host, either way, on a stopped or
a running container. The container's overlay is mounted as start mounts it (and unmounted again if the
container is not running). Paths inside the container resolve with the container's root as "/": a
symlink in the container can never lead a copy out onto the host, and copying in replaces a symlink in
the way instead of writing through it. "-" is a tar stream on stdout (copying out) or stdin (copying in)."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path, PurePosixPath

from builder.container.records import ContainerError


def split_operand(text: str) -> tuple[str | None, str]:
    """docker's rule: CONTAINER:PATH when there is a colon before any slash (and it is not ./ or /...)."""
    if text.startswith(("/", ".")) or ":" not in text:
        return None, text
    container, _, path = text.partition(":")
    if "/" in container or not container:
        return None, text
    return container, path


def cmd_cp(args) -> int:
    from builder.cli.shared import open_store
    from builder.container import control
    from builder.container.records import Records
    from builder.container.rootfs import mount_rootfs, unmount_rootfs

    src_ctr, src = split_operand(args.src)
    dst_ctr, dst = split_operand(args.dest)
    if src_ctr and dst_ctr:
        raise ContainerError("copying between containers is not supported")
    if not src_ctr and not dst_ctr:
        raise ContainerError("must specify at least one container source")
    records = Records(Path(os.path.abspath(args.root)))
    doc = records.lookup(src_ctr or dst_ctr)
    cdir = records.path(doc["Id"])
    running = control.is_running(records, doc["Id"])
    store = open_store(args)
    rootfs = mount_rootfs(store, store.resolve(doc["Image"]), cdir)
    # Paths are resolved one name at a time: a running container could swap a checked directory for a
    # symlink before the copy uses it (CVE-2018-15664). Frozen, it cannot; docker pauses it as well.
    frozen = running and control.live_state(records.load(doc["Id"]))["Status"] == "running"
    if frozen:
        control.pause(Path(os.path.abspath(args.root)), records, doc)
    try:
        if src_ctr:
            _copy_out(rootfs, src, dst, src_ctr)
        else:
            _copy_in(rootfs, src, dst, store.tmp_dir)
    finally:
        if frozen:
            control.unpause(Path(os.path.abspath(args.root)), records, records.load(doc["Id"]))
        if not running and not control.is_running(records, doc["Id"]):
            unmount_rootfs(cdir)
    return 0


def _in_container(rootfs: Path, path: str, *, follow_last: bool) -> Path:
    from builder.builds.files import resolve_in_root

    return resolve_in_root(rootfs, path if path.startswith("/") else "/" + path, follow_last=follow_last)


def _copy_host(src: Path, st: os.stat_result, dst: Path) -> None:
    """src (a file, link or a whole directory, never following links below it) to dst."""
    from builder.builds.files import CopyOptions, SourceTree, copy_entry, copy_tree, walk_host_tree

    opts = CopyOptions(keep_owner=True)
    copy_entry(src, st, dst, opts)
    if stat.S_ISDIR(st.st_mode):
        copy_tree(SourceTree(src, st, src.name, list(walk_host_tree(src))), dst, opts)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _target(dest: Path, name: str, dest_text: str, src_is_dir: bool) -> Path:
    """docker's cp destination rule: into an existing directory, else to the path itself (whose parent
    must exist)."""
    if dest.is_dir() and not dest.is_symlink():  # a link in the container is replaced, never followed
        return dest / name
    if dest_text.endswith("/") or dest_text.endswith("/."):
        raise ContainerError(f"destination directory {dest_text} does not exist")
    if not dest.parent.is_dir():
        raise ContainerError(f"no such directory: {os.path.dirname(dest_text.rstrip('/')) or '/'}")
    if src_is_dir and os.path.lexists(dest):
        raise ContainerError(f"cannot copy a directory over the file {dest_text}")
    return dest


def _copy_out(rootfs: Path, path: str, dest: str, ctr: str) -> None:
    follow = path.endswith("/") or path.endswith("/.")
    src = _in_container(rootfs, path, follow_last=follow)
    try:
        st = os.lstat(src)
    except FileNotFoundError:
        raise ContainerError(f"Could not find the file {path} in container {ctr}") from None
    name = PurePosixPath("/" + path).name or "/"
    if dest == "-":
        import tarfile  # here: every pydock command imports this module, few need tarfile

        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(src, arcname=src.name if src != rootfs else ".", recursive=True)
        return
    target = _target(Path(os.path.abspath(dest)), src.name if src != rootfs else name, dest,
                     stat.S_ISDIR(st.st_mode))
    _copy_host(src, st, target)


def _copy_in(rootfs: Path, src: str, dest: str, tmp_dir: Path) -> None:
    if src == "-":
        tmp_dir.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="cp-") as tmp:
            _extract_checked(sys.stdin.buffer, Path(tmp))
            into = _in_container(rootfs, dest, follow_last=True)
            if not into.is_dir():
                raise ContainerError(f"destination {dest} must be a directory when copying a tar stream")
            for entry in sorted(os.listdir(tmp)):
                _copy_host(Path(tmp) / entry, os.lstat(Path(tmp) / entry), into / entry)
        return
    source = Path(os.path.abspath(src))
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise ContainerError(f"could not find the file {src}: no such file or directory") from None
    if src.endswith("/") and stat.S_ISLNK(st.st_mode):
        source = source.resolve()
        st = os.lstat(source)
    parent_text, _, leaf = dest.rstrip("/").rpartition("/")
    dest_path = _in_container(rootfs, dest, follow_last=True)
    if not dest_path.is_dir() and leaf:
        dest_path = _in_container(rootfs, parent_text or "/", follow_last=True) / leaf
    _copy_host(source, st, _target(dest_path, source.name, dest, stat.S_ISDIR(st.st_mode)))


def _extract_checked(stream, into: Path) -> None:
    """A tar stream into a fresh directory: no member may name a path outside it (absolute, "..", or
    through a symbolic link the stream made)."""
    links: set[str] = set()
    import tarfile

    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            name = os.path.normpath(member.name).lstrip("/")
            if name.startswith("..") or re.search(r"(^|/)\.\.(/|$)", member.name):
                raise ContainerError(f"invalid tar member {member.name!r}: it leaves the destination")
            if _through_link(name, links):
                raise ContainerError(f"invalid tar member {member.name!r}: it goes through a symbolic link")
            if member.islnk():
                target = os.path.normpath(member.linkname).lstrip("/")
                if target.startswith("..") or target in links or _through_link(target, links):
                    raise ContainerError(f"invalid tar member {member.name!r}: its link leaves the destination")
                member.linkname = target
            if member.issym():
                links.add(name)
            if name == ".":
                continue
            member.name = name
            tar.extract(member, into, set_attrs=True, numeric_owner=True)


def _through_link(name: str, links: set[str]) -> bool:
    parts = name.split("/")
    return any("/".join(parts[:i]) in links for i in range(1, len(parts)))


def add_parsers(sub) -> None:
    p = sub.add_parser("cp", help="copy files between a container and the host")
    p.add_argument("src", metavar="SRC", help="CONTAINER:SRC_PATH, a host path, or - (a tar stream on stdin)")
    p.add_argument("dest", metavar="DEST", help="CONTAINER:DEST_PATH, a host path, or - (a tar stream on stdout)")
    p.set_defaults(func=cmd_cp)
