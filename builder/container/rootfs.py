"""A container's filesystem: the image's unpacked layers (shared, read-only lower dirs) under the
container's own upper dir, mounted at CONTAINER/rootfs while it runs. upper/ survives stop and restart;
it goes with the record."""

from __future__ import annotations

from pathlib import Path

from builder.bundle.rootfs import is_mounted, mount_overlay, unmount


def rootfs_path(container_dir: Path) -> Path:
    return Path(container_dir) / "rootfs"


def mount_rootfs(store, image, container_dir: Path) -> Path:
    """Mount the container's overlay (once; a second call finds it mounted). Returns the mount point."""
    container_dir = Path(container_dir)
    target = rootfs_path(container_dir)
    if target.is_dir() and is_mounted(target):
        return target
    lowers = [store.unpacked_layer(diff_id, layer) for layer, diff_id in zip(image.layers, image.diff_ids)]
    mount_overlay(lowers, container_dir / "upper", container_dir / "work", target)
    return target


def unmount_rootfs(container_dir: Path) -> None:
    target = rootfs_path(container_dir)
    if target.is_dir() and is_mounted(target):
        unmount(target, lazy=True)  # lazy: an exec'd process still leaving must not keep it busy


def tree_size(path: Path) -> int:
    """Bytes of the files under path (each inode once; symlinks not followed, directories not counted)."""
    import os

    total, seen = 0, set()
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def upper_size(container_dir: Path) -> int:
    """What the container wrote: the size of its upper dir (0 before its first start)."""
    return tree_size(Path(container_dir) / "upper")


def make_workdir(rootfs: Path, workdir: str | None) -> None:
    """docker makes a missing working directory at start (root's, 0755), inside the rootfs: a symlink in
    the image never leads the mkdir out of it."""
    from builder.builds.files import mkdir_in_root

    if workdir and workdir != "/":
        mkdir_in_root(Path(rootfs), workdir)
