"""A scratch rootfs for one build step: an overlayfs over an image's unpacked layers, with a fresh upper
dir that becomes the step's layer.

The work dirs live under the store's tmp/ (same filesystem as the unpacked layers, so the finished upper
dir can become an unpacked layer: ImageStore.keep_unpacked_layer) and are flock()ed while in use, which tells the store's
crash cleaner they are alive. Leaving the `with` block always unmounts and removes what is left.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class Workspace:
    """`with Workspace(store, lowers) as ws:` ws.merged is the mounted rootfs, ws.upper its changes.

    `lowers` are the unpacked layer dirs, bottom-most first (the image's layer order)."""

    def __init__(self, store, lowers: list[Path], *, name: str = "step"):
        self.store = store
        self.lowers = list(lowers)
        self.name = name
        self.dir: Path | None = None
        self.upper: Path | None = None
        self.merged: Path | None = None
        self._lock_fd: int | None = None
        self._mounted = False
        # {dir in the rootfs: its entries}, when the step may leave files out of the upper dir and have
        # them tarred from where they are (files.copy_sources); None when the upper dir must hold them all
        self.planted: dict | None = None

    def __enter__(self) -> "Workspace":
        self.dir, self._lock_fd = self.store.temp_dir(f"{self.name}-")
        try:
            self.upper = self.dir / "upper"
            work = self.dir / "work"
            self.merged = self.dir / "merged"
            for d in (self.upper, work, self.merged):
                d.mkdir()
            self._match_root(self.upper)
            lowers = self.lowers
            if not lowers:
                empty = self.dir / "empty"
                empty.mkdir()
                self._match_root(empty)
                lowers = [empty]
            from builder.bundle.rootfs import mount_overlay

            mount_overlay(lowers, self.upper, work, self.merged)
            self._mounted = True
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _match_root(self, d: Path) -> None:
        """Give a new upper dir the attributes of the image's "/" (overlayfs takes them from the upper)."""
        mode, uid, gid = 0o755, 0, 0
        if self.lowers:
            st = os.stat(self.lowers[-1])
            mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
        os.chown(d, uid, gid)
        os.chmod(d, mode)

    def unmount(self) -> None:
        if self._mounted:
            from builder.bundle.rootfs import unmount

            unmount(self.merged)
            self._mounted = False

    def __exit__(self, *exc) -> None:
        try:
            self.unmount()  # if this fails, leave the dir alone: never rmtree through a live mount
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
