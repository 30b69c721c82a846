"""The end of a build: history times filled in, the final config committed to the store, -o exports
(image outputs: type=oci|docker; filesystem outputs, as BuildKit's: type=local writes the final stage's
files into a directory, type=tar writes them as one tar, to a file or stdout)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from builder.dockerfile.instructions import ImageState
from builder.errors import BuildError

if TYPE_CHECKING:
    from builder.builds.engine import Builder


def commit(b: Builder, final: ImageState):
    config = final.config
    cc = config.setdefault("config", {})
    if b.opts.labels:
        labels = cc.get("Labels") or {}
        labels.update(b.opts.labels)
        cc["Labels"] = labels
    for k in [k for k, v in cc.items() if v in (None, [], {}, "") and k != "WorkingDir"]:
        cc.pop(k)
    history = config.setdefault("history", [])
    fill_history_times(history, b.base_history_len.get(id(final), 0),
                       b.now() if b.epoch is not None else None)
    config["created"] = history[-1]["created"] if history and history[-1].get("created") else b.now()
    config["rootfs"] = {"type": "layers", "diff_ids": list(final.diff_ids)}
    return b.store.commit_image(config, list(final.layers))


def export(b: Builder, image, out: dict[str, str]) -> None:
    kind = out.get("type", "")
    dest = out.get("dest", "")
    if not dest:
        raise BuildError(f"output type={kind} needs dest=")
    if kind == "oci":
        from builder.image.layout import write_layout

        names = _ref_names(b)
        for name in names or [None]:
            write_layout(b.store, image, Path(dest), name)
    elif kind == "docker":
        from builder.image.archive import save

        refs = [image.id]
        if b.opts.tags:
            for tag in b.opts.tags:
                b.store.tag(image, tag)
            refs = list(b.opts.tags)
        save(b.store, refs, Path(dest), format="docker")
    else:
        raise BuildError(f"unsupported output type {kind!r} (use type=oci or type=docker)")


FILESYSTEM_OUTPUTS = ("local", "tar")


def export_filesystem(b: Builder, final: ImageState, out: dict[str, str]) -> None:
    """The final stage's filesystem (not an image) into out["dest"]: a directory (local) or a tar."""
    import sys

    from builder.atomicfile import atomic_file
    from builder.builds.workspace import Workspace
    from builder.image.layers import apply_layers, write_tar

    dest = out["dest"]
    if out["type"] == "local":
        target = Path(dest)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BuildError(f"cannot export to {dest}: {e.strerror}") from None
        apply_layers(b.store, final.layers, target, final.diff_ids)
        return
    with Workspace(b.store, b.lowers(final), name="export") as ws:
        if dest == "-":
            write_tar(ws.merged, sys.stdout.buffer, source_date_epoch=b.epoch)
            sys.stdout.buffer.flush()
        else:
            with atomic_file(dest, durable=False) as f:
                write_tar(ws.merged, f, source_date_epoch=b.epoch)


def _ref_names(b: Builder) -> list[str]:
    """Names for the image in an OCI layout output: each -t as given, its "name:tag" form, and its bare
    tag (what `umoci unpack --image DIR[:TAG]` and `skopeo oci:DIR:REF` look up)."""
    from builder.image.store import normalize_name, split_ref

    names: list[str] = []
    for tag in b.opts.tags:
        full = normalize_name(tag)
        names += [tag, full, split_ref(full)[1] or "latest"]
    return list(dict.fromkeys(names))


def fill_history_times(history: list[dict], base_len: int, epoch: str | None) -> None:
    """Give every history entry a time as BuildKit's exporter does: an entry without one takes the time of
    the first new layer after it, or of the latest layer before it; with SOURCE_DATE_EPOCH, the entries
    this build added are clamped to it (the base image's keep theirs)."""
    created = None
    missing = False
    for h in history:
        if h.get("created"):
            created = h["created"]
            if missing:
                break
        else:
            missing = True
    missing = False
    for h in history:
        if h.get("created"):
            if missing:
                created = h["created"]
        else:
            missing = True
            if created:
                h["created"] = created
    if epoch is not None:
        for h in history[base_len:]:
            if not h.get("created") or h["created"] > epoch:
                h["created"] = epoch
