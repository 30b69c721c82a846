"""OCI image layouts outside the store: export one image to a layout directory, import images from one.

A layout written here is what skopeo (oci:DIR:REF), umoci (--image DIR:REF) and oci-image-tool
(validate --type imageLayout) read: oci-layout, index.json naming the image with
org.opencontainers.image.ref.name = REF, and blobs/sha256/<hex> for the manifest, config and layers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol

from builder.image import mediatypes as mt
from builder.image.digest import CHUNK, Descriptor, VerifyingReader, canonical_json, parse_digest
from builder.atomicfile import atomic_file
from builder.errors import BuildError
from builder.image.platform import host_platform
from builder.image.store import Image, ImageStore, check_config, check_manifest, normalize_name


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def copy_blob_out(store: ImageStore, desc: Descriptor, dest_dir: Path) -> None:
    _, hexpart = parse_digest(desc.digest)
    target = dest_dir / "blobs" / "sha256" / hexpart
    if target.is_file() and target.stat().st_size == desc.size:
        return
    with store.open_blob(desc.digest, desc.size) as src, atomic_file(target) as out:
        shutil.copyfileobj(src, out, CHUNK)
        src.read_to_end()


def write_layout(store: ImageStore, image: Image, dest_dir: Path, ref_name: str | None,
                 *, annotations: dict[str, str] | None = None) -> Descriptor:
    """Write `image` into the OCI layout at dest_dir (created, or added to if it is a layout already),
    named `ref_name` in index.json (replacing any image of that name there). Returns the index entry."""
    dest_dir = Path(dest_dir)
    (dest_dir / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    layout_file = dest_dir / "oci-layout"
    if layout_file.exists():
        try:
            version = json.loads(layout_file.read_bytes()).get("imageLayoutVersion")
        except (ValueError, AttributeError):
            version = None
        if version != mt.OCI_LAYOUT_VERSION:
            raise BuildError(f"{dest_dir} holds an OCI layout of unsupported version {version!r}")
    else:
        _atomic_write(layout_file, json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode())
    for desc in (*image.layers, image.config_desc, image.manifest_desc):
        copy_blob_out(store, desc, dest_dir)
    entry_annotations = dict(annotations or {})
    if ref_name:
        entry_annotations[mt.ANNOTATION_REF_NAME] = ref_name
    entry = Descriptor(image.manifest_desc.media_type, image.digest, image.manifest_desc.size,
                       entry_annotations or None, image.platform)
    index_file = dest_dir / "index.json"
    manifests = []
    if index_file.exists():
        try:
            manifests = json.loads(index_file.read_bytes()).get("manifests") or []
        except (ValueError, AttributeError):
            raise BuildError(f"{index_file} is not valid JSON") from None
        if ref_name:
            manifests = [m for m in manifests if (m.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) != ref_name]
        else:
            manifests = [m for m in manifests if m.get("digest") != image.digest]
    manifests.append(entry.to_json())
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
    _atomic_write(index_file, json.dumps(index, indent=2).encode() + b"\n")
    return entry


# --- reading layouts (directories, or tar archives of them: see archive.py) --------------------------

class LayoutSource(Protocol):
    """Where a layout's files come from: a directory, or members of a tar archive."""

    def exists(self, path: str) -> bool: ...
    def open(self, path: str) -> BinaryIO: ...
    def describe(self) -> str: ...


class DirSource:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise BuildError(f"{self.root}: refusing to read {path!r} outside the layout")
        return self.root.joinpath(*parts)

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def open(self, path: str) -> BinaryIO:
        try:
            return open(self._path(path), "rb")
        except FileNotFoundError:
            raise BuildError(f"{self.root}: {path} is missing") from None

    def describe(self) -> str:
        return str(self.root)


def read_json(source: LayoutSource, path: str):
    """A JSON file of a layout (or docker-archive), read with a size bound."""
    with source.open(path) as f:
        data = f.read(64 * 1024 * 1024)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise BuildError(f"{source.describe()}: {path} is not valid JSON: {e}") from None


def blob_name(digest: str) -> str:
    """Where a layout keeps the blob with this digest: "blobs/<algorithm>/<hex>"."""
    algorithm, hexpart = parse_digest(digest)
    return f"blobs/{algorithm}/{hexpart}"


def read_blob_json(source: LayoutSource, desc: Descriptor):
    with source.open(blob_name(desc.digest)) as raw:
        data = VerifyingReader(raw, desc.digest, desc.size, what=f"{source.describe()}: blob {desc.digest}").read()
    try:
        return json.loads(data), data
    except (ValueError, RecursionError) as e:
        raise BuildError(f"{source.describe()}: blob {desc.digest} is not valid JSON: {e}") from None


def copy_blob_in(store: ImageStore, source: LayoutSource, desc: Descriptor) -> None:
    if store.has_blob(desc.digest):
        return
    with source.open(blob_name(desc.digest)) as raw:
        reader = VerifyingReader(raw, desc.digest, desc.size, what=f"{source.describe()}: blob {desc.digest}")
        store.put_blob(reader, desc.media_type, expected_digest=desc.digest)


def check_diff_id(store: ImageStore, layer: Descriptor, diff_id: str, where: str) -> None:
    """Verify a stored layer blob against the config's diff_id (the digest of its uncompressed tar)."""
    if layer.digest == diff_id:
        return  # an uncompressed layer: its digest was checked when it was copied in
    from builder.image.tarsafe import open_decompressed
    import hashlib

    h = hashlib.sha256()
    try:
        with store.open_blob(layer.digest, layer.size) as blob:
            stream, _ = open_decompressed(blob)
            try:
                while chunk := stream.read(CHUNK):
                    h.update(chunk)
            finally:
                if stream is not blob:
                    stream.close()
    except BuildError:
        raise
    except Exception as e:  # zlib/lzma/zstd errors of a damaged compressed layer
        raise BuildError(f"{where}: layer {layer.digest} cannot be decompressed: {e}") from None
    got = "sha256:" + h.hexdigest()
    if got != diff_id:
        raise BuildError(f"{where}: layer {layer.digest} unpacks to {got}, but the image config says {diff_id}")


def _pick_from_index(source: LayoutSource, index_desc: Descriptor, depth: int = 0) -> Descriptor:
    """The manifest for this host in a (possibly nested) image index."""
    if depth > 4:
        raise BuildError(f"{source.describe()}: image indexes nested too deeply")
    index, _ = read_blob_json(source, index_desc)
    if not isinstance(index, dict) or not isinstance(index.get("manifests") or [], list):
        raise BuildError(f"{source.describe()}: {index_desc.digest} is not an image index")
    children = [Descriptor.from_json(m) for m in index.get("manifests") or []]
    want = host_platform()
    for child in children:
        plat = child.platform or {}
        if plat.get("os") == want.os and plat.get("architecture") == want.architecture:
            break
    else:
        if len(children) != 1:
            raise BuildError(f"{source.describe()}: no image for {want.os}/{want.architecture} in index "
                             f"{index_desc.digest}")
        child = children[0]
    if child.media_type in mt.INDEX_TYPES:
        return _pick_from_index(source, child, depth + 1)
    return child


def _to_oci_manifest(manifest: dict) -> dict:
    """A Docker schema 2 manifest rewritten with OCI media types (config and layer bytes unchanged)."""
    out = dict(manifest)
    out["mediaType"] = mt.OCI_MANIFEST
    out["config"] = dict(manifest["config"], mediaType=mt.OCI_CONFIG)
    out["layers"] = [dict(layer, mediaType=mt.to_oci_layer_type(layer["mediaType"]))
                     for layer in manifest.get("layers") or []]
    return out


def import_manifest(store: ImageStore, source: LayoutSource, desc: Descriptor) -> Image:
    """Copy one image (manifest, config, layers; every blob verified) from a layout into the store and
    record it in the store's index (untagged). An index is resolved to this host's platform."""
    if desc.media_type in mt.INDEX_TYPES:
        desc = _pick_from_index(source, desc)
    manifest, raw = read_blob_json(source, desc)
    check_manifest(manifest, f"{source.describe()}: {desc.digest}")
    media_type = manifest.get("mediaType") or desc.media_type
    config_desc = Descriptor.from_json(manifest["config"])
    layers = [Descriptor.from_json(layer) for layer in manifest.get("layers") or []]
    config, _ = read_blob_json(source, config_desc)
    check_config(config, len(layers), f"{source.describe()}: config {config_desc.digest}")
    for blob in (config_desc, *layers):
        if blob.urls and not source.exists(blob_name(blob.digest)):
            raise BuildError(f"{source.describe()}: foreign layer {blob.digest} is not included in the layout")
        copy_blob_in(store, source, blob)
    for layer, diff_id in zip(layers, config["rootfs"].get("diff_ids") or []):
        check_diff_id(store, layer, diff_id, source.describe())
    if media_type == mt.DOCKER_MANIFEST:
        raw = canonical_json(_to_oci_manifest(manifest))
    elif media_type != mt.OCI_MANIFEST:
        raise BuildError(f"{source.describe()}: unsupported manifest type {media_type!r}")
    manifest_desc = store.put_blob(raw, mt.OCI_MANIFEST)
    return store.add_manifest(manifest_desc)


def layout_entries(source: LayoutSource) -> list[Descriptor]:
    """The descriptors index.json lists (after checking oci-layout)."""
    if not source.exists("oci-layout"):
        raise BuildError(f"{source.describe()} is not an OCI image layout (no oci-layout file)")
    layout = read_json(source, "oci-layout")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != mt.OCI_LAYOUT_VERSION:
        raise BuildError(f"{source.describe()}: unsupported OCI layout version "
                         f"{layout.get('imageLayoutVersion') if isinstance(layout, dict) else layout!r}")
    index = read_json(source, "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests") or [], list):
        raise BuildError(f"{source.describe()}: index.json is not an image index")
    return [Descriptor.from_json(m) for m in index.get("manifests") or []]


def entry_names(entry: Descriptor) -> list[str]:
    """The image names an index entry gives: the containerd/docker full-name annotation if there is one,
    else the ref.name annotation read as a name (a bare "y", as skopeo writes for oci:DIR:y, is y:latest)."""
    annotations = entry.annotations or {}
    for key in (mt.ANNOTATION_CONTAINERD_NAME, mt.ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if value:
            try:
                return [normalize_name(value)]
            except BuildError:
                continue
    return []


def import_layout(store: ImageStore, dir: Path, ref: str | None = None) -> Image:
    """Import one image from the OCI layout directory `dir`: the one whose ref.name is `ref`, or the only
    one there when ref is None. The image is not tagged (see archive.load for tagging by annotations)."""
    source = DirSource(Path(dir))
    entries = layout_entries(source)
    if ref is not None:
        chosen = [e for e in entries if e.ref_name == ref]
        if not chosen:
            chosen = [e for e in entries if ref in entry_names(e)]
    else:
        chosen = entries
    if len(chosen) != 1:
        names = sorted({e.ref_name or e.digest for e in entries})
        what = f"no image named {ref!r}" if ref is not None and not chosen else f"{len(chosen)} images"
        raise BuildError(f"{dir}: {what}; the layout has: {', '.join(names) or 'nothing'}")
    return import_manifest(store, source, chosen[0])
