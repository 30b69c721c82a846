"""An image turned into an OCI runtime bundle: rootfs/ with its layers applied (rootfs.py) and config.json
made from its config (spec.py)."""

from __future__ import annotations

import json
from pathlib import Path

from builder.atomicfile import atomic_file
from builder.bundle.rootfs import materialize
from builder.bundle.spec import image_spec
from builder.errors import BuildError
from builder.image.store import Image, ImageStore


def make_bundle(store: ImageStore, ref: str | Image, dest: Path, *, readonly: bool | None = None,
                terminal: bool = False) -> Path:
    """Create dest/rootfs (the image's layers applied, whiteouts honoured, blobs and diff_ids verified)
    and dest/config.json. readonly None keeps default_spec's root.readonly. Returns dest."""
    image = ref if isinstance(ref, Image) else store.resolve(ref)
    dest = Path(dest)
    rootfs = dest / "rootfs"
    if rootfs.exists() and any(rootfs.iterdir()):
        raise BuildError(f"{rootfs} already exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    materialize(store, image, rootfs)
    spec = image_spec(image.config, rootfs, terminal=terminal)
    if readonly is not None:
        spec["root"]["readonly"] = readonly
    with atomic_file(dest / "config.json", durable=False) as f:
        f.write((json.dumps(spec, indent=2) + "\n").encode())
    return dest
