"""Root filesystems for RUN: overlayfs mounts over unpacked layers, and plain copies of an image's rootfs.

A RUN step mounts the image's unpacked layers (store.unpacked_layer) read-only under a fresh upper dir,
runs the command on the merged view, unmounts, and turns the upper dir into a layer with
layers.write_layer_from_dir(upper, store, overlay_whiteouts=True). The mount options keep everything the
command changes inside the upper dir as plain files and whiteouts that conversion understands:
redirect_dir=off (a renamed lower dir is copied up, not recorded as a redirect xattr), metacopy=off
(copied-up files carry their data, not just metadata), index=off.
"""

from __future__ import annotations

import os
from pathlib import Path

from builder.errors import BuildError
from builder.image.layers import apply_layers
from oci_runtime import linux

OVERLAY_OPTIONS = "redirect_dir=off,index=off,metacopy=off"
_MAX_OPTIONS = 4000  # the kernel takes one page of mount data


def _escape(path: str) -> str:
    """overlayfs splits lowerdir on ':' and options on ','; a backslash escapes them."""
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def mount_overlay(lower_dirs: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay on `target`. lower_dirs are in image order, bottom layer first (we reverse them
    for the kernel, which lists the top one first). With no lower dirs (FROM scratch), an empty dir
    beside `upper` stands in. upper and work must be empty dirs on the same filesystem."""
    upper, work, target = Path(upper), Path(work), Path(target)
    lowers = _distinct_lowers(lower_dirs)
    if not lowers:
        empty = upper.parent / f".{upper.name}.empty-lower"
        empty.mkdir(mode=0o755, exist_ok=True)
        lowers = [empty]
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    cwd = None
    lower_opt = ":".join(_escape(os.fspath(p.resolve())) for p in reversed(lowers))
    options = f"lowerdir={lower_opt},upperdir={_escape(os.fspath(upper.resolve()))}," \
              f"workdir={_escape(os.fspath(work.resolve()))},{OVERLAY_OPTIONS}"
    if len(options) > _MAX_OPTIONS:
        # Many layers: name the lower dirs relative to their common parent (the store's unpacked dir),
        # and mount from there; the kernel resolves relative lowerdirs against the caller's cwd.
        cwd = os.path.commonpath([os.fspath(p.resolve()) for p in lowers])
        lower_opt = ":".join(_escape(os.path.relpath(p.resolve(), cwd)) for p in reversed(lowers))
        options = f"lowerdir={lower_opt},upperdir={_escape(os.fspath(upper.resolve()))}," \
                  f"workdir={_escape(os.fspath(work.resolve()))},{OVERLAY_OPTIONS}"
        if len(options) > _MAX_OPTIONS:
            raise BuildError(f"too many layers ({len(lowers)}) to mount as one overlay")
    _mount_overlay_at(options, os.fspath(target.resolve()), cwd)


def _distinct_lowers(lower_dirs: list[Path]) -> list[Path]:
    """The lower dirs with each one only once, at its topmost place: two identical layers (two steps that
    changed nothing, say) share one unpacked dir, and the kernel refuses a lowerdir listed twice (ELOOP).
    Dropping the lower copy changes nothing seen: every path the layer holds (or whites out) is decided
    by its upper copy first."""
    lowers = [Path(p) for p in lower_dirs]
    seen: set[str] = set()
    kept: list[Path] = []
    for p in reversed(lowers):
        key = os.fspath(p.resolve())
        if key not in seen:
            seen.add(key)
            kept.append(p)
    kept.reverse()
    return kept


def _mount_overlay_at(options: str, target: str, cwd: str | None) -> None:
    """mount(2) directly (mount(8) costs a fork+exec, ~4 ms a workspace). Relative lowerdirs are resolved
    by the kernel against our cwd, so for those we step into `cwd` and back."""
    old_cwd = None
    if cwd is not None:
        old_cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.chdir(cwd)
    try:
        linux.mount("overlay", target, "overlay", 0, options)
    except OSError as e:
        raise BuildError(f"cannot mount overlay on {target}: {os.strerror(e.errno)} "
                         f"(options {options})") from None
    finally:
        if old_cwd is not None:
            os.fchdir(old_cwd)
            os.close(old_cwd)


def unmount(target: Path, *, lazy: bool = False) -> None:
    """Unmount `target` (lazy: detach now, clean up when no longer busy)."""
    try:
        linux.umount2(os.fspath(target), linux.MNT_DETACH if lazy else 0)
    except OSError as e:
        raise BuildError(f"cannot unmount {target}: {os.strerror(e.errno)}") from None


def is_mounted(target: Path) -> bool:
    from oci_runtime.mountinfo import mount_points

    return os.fspath(Path(target).resolve()) in mount_points()


def materialize(store, image, dest: Path) -> Path:
    """A plain directory with the image's layers applied in order (whiteouts honoured, blobs verified)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    apply_layers(store, image.layers, dest, image.diff_ids)
    return dest
