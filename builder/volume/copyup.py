"""docker's copy-up: a volume that is still empty when a container mounts it first gets what the image
has at the mount point (files with their owners, modes and times; the directory's own owner and mode)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def copy_up(rootfs: Path, destination: str, data_dir: Path) -> None:
    """Fill the empty data_dir from the image's directory at destination (resolved inside rootfs: a
    symlink in the image never leads out of it). Nothing to copy is no error."""
    from builder.builds.files import CopyOptions, SourceTree, copy_tree, resolve_in_root, walk_host_tree

    if any(os.scandir(data_dir)):
        return
    source = resolve_in_root(Path(rootfs), destination)
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    copy_tree(SourceTree(source, st, os.path.basename(destination), walk_host_tree(source)), data_dir,
              CopyOptions(keep_owner=True))
    os.chown(data_dir, st.st_uid, st.st_gid)
    os.chmod(data_dir, stat.S_IMODE(st.st_mode))
