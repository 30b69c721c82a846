"""save / load / import: images in and out of the store as files.

- docker-archive (what `docker save` writes and `docker load` reads): manifest.json listing each image's
  config file, RepoTags and layer tars (uncompressed), a legacy `repositories` file, one directory per
  layer (layer.tar, VERSION, json) and `<config hex>.json`.
- oci-archive: a tar of an OCI image layout (oci-layout, index.json, blobs/sha256/...); images are named
  by org.opencontainers.image.ref.name = "name:tag" and io.containerd.image.name (what docker reads).
- import_rootfs: a root filesystem tarball becomes a one-layer image (how a base image is made offline).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import lzma
import tarfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from builder.image import mediatypes as mt
from builder.image.digest import CHUNK, Descriptor, HashingWriter
from builder.atomicfile import atomic_file
from builder.errors import BuildError
from builder.fetch import is_url, open_url
from builder.image.layers import abandon, compressor
from builder.image.layout import (DirSource, LayoutSource, blob_name, entry_names, read_json,
                                  import_manifest, layout_entries)
from builder.image.platform import host_platform
from builder.image.store import Image, ImageStore, check_config, normalize_name
from builder.image.tarsafe import PeekableReader, detect_compression, looks_like_tar, open_decompressed
from oci_runtime.units import rfc3339

FORMATS = {"docker": "docker", "docker-archive": "docker", "oci": "oci", "oci-archive": "oci"}


# --- tar writing helpers ---------------------------------------------------------------------------

def _info(name: str, size: int = 0, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, directory=True))


def _add_blob(tar: tarfile.TarFile, store: ImageStore, name: str, desc: Descriptor) -> None:
    with store.open_blob(desc.digest, desc.size) as blob:
        tar.addfile(_info(name, desc.size), blob)
        blob.read_to_end()  # checks the digest


def _uncompressed_layer(store: ImageStore, desc: Descriptor, diff_id: str):
    """A seekable temp file holding the layer as a plain tar, its digest checked against diff_id."""
    tmp = store.temp_file()
    try:
        with store.open_blob(desc.digest, desc.size) as blob:
            stream, _ = open_decompressed(blob)
            hasher = HashingWriter(tmp)
            try:
                while chunk := stream.read(CHUNK):
                    hasher.write(chunk)
            finally:
                if stream is not blob:
                    stream.close()
            blob.read_to_end()
        if hasher.digest != diff_id:
            raise BuildError(f"layer {desc.digest} unpacks to {hasher.digest}, but the image says {diff_id}")
        tmp.seek(0)
        return tmp, hasher.size
    except BaseException:
        tmp.close()
        raise


# --- save ------------------------------------------------------------------------------------------

def _selected(store: ImageStore, refs: list[str]) -> list[tuple[Image, list[str]]]:
    """Images to save, once each, with the names they were asked for by."""
    chosen: dict[str, tuple[Image, list[str]]] = {}
    for ref in refs:
        image = store.resolve(ref)
        _, names = chosen.setdefault(image.digest, (image, []))
        try:
            name = normalize_name(ref)
        except BuildError:
            continue
        if name in store.names_of(image) and name not in names:
            names.append(name)
    return list(chosen.values())


def save(store: ImageStore, refs: list[str], out_path: Path | str | BinaryIO, format: str = "docker") -> None:
    """Write the images `refs` name to a docker-archive ("docker") or oci-archive ("oci") tar at out_path
    (written beside it and renamed when complete) or to a binary stream."""
    kind = FORMATS.get(format)
    if kind is None:
        raise BuildError(f"unknown archive format {format!r}: use docker-archive or oci-archive")
    if not refs:
        raise BuildError("save needs at least one image")
    images = _selected(store, refs)
    if not isinstance(out_path, (str, Path)):
        _write_archive(store, images, out_path, kind)
        return
    with atomic_file(out_path) as f:
        _write_archive(store, images, f, kind)


def _write_archive(store: ImageStore, images: list[tuple[Image, list[str]]], out: BinaryIO, kind: str) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if kind == "docker":
            _write_docker(store, images, tar)
        else:
            _write_oci(store, images, tar)


def _layer_ids(diff_ids: list[str]) -> list[str]:
    """Per-position layer directory names, chained like docker's v1 IDs (equal prefixes, equal names)."""
    ids, parent = [], ""
    for diff_id in diff_ids:
        parent = hashlib.sha256(f"{parent}\n{diff_id}".encode()).hexdigest()
        ids.append(parent)
    return ids


def _write_docker(store: ImageStore, images: list[tuple[Image, list[str]]], tar: tarfile.TarFile) -> None:
    written: set[str] = set()
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    for image, names in images:
        diff_ids = image.diff_ids
        if len(diff_ids) != len(image.layers):
            raise BuildError(f"image {image.id} lists {len(diff_ids)} diff_ids for {len(image.layers)} layers")
        layer_ids = _layer_ids(diff_ids)
        layer_paths = []
        for i, (desc, diff_id, layer_id) in enumerate(zip(image.layers, diff_ids, layer_ids)):
            layer_paths.append(f"{layer_id}/layer.tar")
            if layer_id in written:
                continue
            written.add(layer_id)
            _add_dir(tar, f"{layer_id}/")
            _add_bytes(tar, f"{layer_id}/VERSION", b"1.0")
            legacy = {"id": layer_id, "created": "1970-01-01T00:00:00Z"}
            if i:
                legacy["parent"] = layer_ids[i - 1]
            _add_bytes(tar, f"{layer_id}/json", json.dumps(legacy).encode())
            if mt.layer_compression(desc.media_type) is None and desc.digest == diff_id:
                _add_blob(tar, store, f"{layer_id}/layer.tar", desc)
            else:
                plain, size = _uncompressed_layer(store, desc, diff_id)
                with plain:
                    tar.addfile(_info(f"{layer_id}/layer.tar", size), plain)
        config_name = f"{image.id.split(':', 1)[1]}.json"
        if config_name not in written:
            written.add(config_name)
            _add_blob(tar, store, config_name, image.config_desc)
        manifest.append({"Config": config_name, "RepoTags": names or None, "Layers": layer_paths})
        for name in names:
            repo, _, tag = name.rpartition(":")
            if layer_ids:
                repositories.setdefault(repo, {})[tag] = layer_ids[-1]
    _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    if repositories:
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def _write_oci(store: ImageStore, images: list[tuple[Image, list[str]]], tar: tarfile.TarFile) -> None:
    _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode())
    _add_dir(tar, "blobs/")
    _add_dir(tar, "blobs/sha256/")
    written: set[str] = set()
    entries = []
    for image, names in images:
        for desc in (*image.layers, image.config_desc, image.manifest_desc):
            if desc.digest not in written:
                written.add(desc.digest)
                _add_blob(tar, store, blob_name(desc.digest), desc)
        for name in names or [None]:
            annotations = {mt.ANNOTATION_REF_NAME: name, mt.ANNOTATION_CONTAINERD_NAME: name} if name else None
            entries.append(Descriptor(image.manifest_desc.media_type, image.digest, image.manifest_desc.size,
                                      annotations, image.platform).to_json())
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    _add_bytes(tar, "index.json", json.dumps(index, indent=2).encode() + b"\n")


# --- load ------------------------------------------------------------------------------------------

class TarSource:
    """A layout (or docker-archive) read from the members of a seekable tar file."""

    def __init__(self, tar: tarfile.TarFile, label: str):
        self.tar = tar
        self.label = label
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in tar.getmembers():
            name = "/".join(p for p in member.name.split("/") if p not in ("", "."))
            self.members.setdefault(name, member)

    def _member(self, path: str) -> tarfile.TarInfo | None:
        return self.members.get("/".join(p for p in path.split("/") if p not in ("", ".")))

    def exists(self, path: str) -> bool:
        member = self._member(path)
        return member is not None and (member.isreg() or member.islnk() or member.issym())

    def open(self, path: str) -> BinaryIO:
        member = self._member(path)
        f = None
        if member is not None:
            try:
                f = self.tar.extractfile(member)
            except KeyError:  # a link to a missing member
                f = None
        if f is None:
            raise BuildError(f"{self.label}: {path} is missing")
        return f

    def describe(self) -> str:
        return self.label


# What reading a damaged archive raises (beside BuildError): each becomes one BuildError naming the file.
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, UnicodeError, ValueError)


def _spool(source: BinaryIO, store: ImageStore, label: str = "the archive"):
    """A seekable temp file (in the store's tmp dir) with the decompressed content of `source`."""
    tmp = store.temp_file()
    stream, _ = open_decompressed(source)
    try:
        shutil.copyfileobj(stream, tmp, CHUNK)
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
        tmp.close()
        raise BuildError(f"{label}: cannot decompress: {e}") from None
    finally:
        if stream is not source:
            stream.close()
    tmp.seek(0)
    return tmp


def load(store: ImageStore, path: Path | str) -> list[str]:
    """All or nothing: every image and name of the archive, or (on any error) no change to the store.
    See _load."""
    label = "stdin" if path == "-" else str(path)
    with store.lease():
        pending: list[tuple[Image, list[str]]] = []
        try:
            _load(store, path, pending)
        except BuildError as e:
            if label in str(e):
                raise
            raise BuildError(f"{label}: {e}") from None  # every error names the file
        except READ_ERRORS as e:
            if isinstance(e, OSError) and e.errno is not None and not isinstance(e, tarfile.TarError):
                raise BuildError(f"{label}: {e.strerror or e}") from None
            raise BuildError(f"{label}: damaged archive: {e}") from None
        lines: list[str] = []
        for image, names in pending:
            names = [store.tag(image, name) for name in names]
            lines.extend(f"Loaded image: {name}" for name in names)
            if not names and f"Loaded image ID: {image.id}" not in lines:
                lines.append(f"Loaded image ID: {image.id}")
        return lines


def _load(store: ImageStore, path: Path | str, pending: list) -> None:
    """Load every image of a docker-archive, an oci-archive (either possibly compressed), or an OCI layout
    directory ("-": read the archive from stdin). Names come from RepoTags / index annotations. Returns
    docker's lines: "Loaded image: NAME:TAG" per name, "Loaded image ID: sha256:..." for unnamed ones."""
    if path != "-" and Path(path).is_dir():
        source = DirSource(Path(path))
        if source.exists("manifest.json"):
            return _load_docker(store, source, pending)
        return _load_oci(store, source, pending)
    if path == "-":
        spooled = _spool(sys.stdin.buffer, store, "stdin")
        label = "stdin"
    else:
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            raise BuildError(f"{path}: no such file or directory") from None
        with raw:
            if not os.path.isfile(path):
                raise BuildError(f"{path} is not a regular file (nor an OCI layout directory)")
            head = PeekableReader(raw).peek(6)
        if detect_compression(head):
            with open(path, "rb") as raw:
                spooled = _spool(raw, store, str(path))
        else:
            spooled = open(path, "rb")
        label = str(path)
    with spooled:
        try:
            tar = tarfile.open(fileobj=spooled, mode="r:", encoding="utf-8", errors="surrogateescape")
        except tarfile.TarError as e:
            raise BuildError(f"{label} is not a tar archive: {e}") from None
        with tar:
            source = TarSource(tar, label)
            if source.exists("manifest.json"):
                return _load_docker(store, source, pending)
            if source.exists("index.json"):
                return _load_oci(store, source, pending)
            raise BuildError(f"{label} is neither a docker-archive (no manifest.json) nor an OCI archive "
                             "(no index.json)")


def _import_docker_layer(store: ImageStore, source: LayoutSource, path: str, diff_id: str) -> Descriptor:
    """Store a docker-archive layer as a plain tar blob; its digest must be the config's diff_id."""
    if store.has_blob(diff_id):
        return Descriptor(mt.OCI_LAYER_TAR, diff_id, store.blob_size(diff_id))
    with source.open(path) as raw:
        stream, _ = open_decompressed(raw)
        try:
            return store.put_blob(stream, mt.OCI_LAYER_TAR, expected_digest=diff_id)
        except BuildError as e:
            raise BuildError(f"{source.describe()}: layer {path} does not match its diff_id: {e}") from None
        finally:
            if stream is not raw:
                stream.close()


def _repo_tags(source: LayoutSource, entry: dict) -> list[str]:
    """An entry's RepoTags, each checked (before anything is stored): null/absent or a list of names."""
    tags = entry.get("RepoTags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BuildError(f"{source.describe()}: manifest.json: RepoTags is not a list of names: {tags!r:.200}")
    try:
        return [normalize_name(t) for t in tags]
    except BuildError as e:
        raise BuildError(f"{source.describe()}: manifest.json: {e}") from None


def _load_docker(store: ImageStore, source: LayoutSource, pending: list) -> None:
    manifest = read_json(source, "manifest.json")
    if not isinstance(manifest, list):
        raise BuildError(f"{source.describe()}: manifest.json is not a list of images")
    where = f"{source.describe()}: manifest.json"
    for entry in manifest:
        if not isinstance(entry, dict):
            raise BuildError(f"{where}: entry is not an object: {entry!r:.200}")
        config_path, layer_paths = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_path, str) or not isinstance(layer_paths, list) \
                or not all(isinstance(p, str) for p in layer_paths):
            raise BuildError(f"{where}: entry without a Config path and a Layers list of paths: {entry!r:.200}")
        _repo_tags(source, entry)
    for entry in manifest:
        config_path, layer_paths = entry["Config"], entry["Layers"]
        with source.open(config_path) as f:
            config_bytes = f.read(64 * 1024 * 1024)
        try:
            config = json.loads(config_bytes)
        except (ValueError, RecursionError) as e:
            raise BuildError(f"{source.describe()}: {config_path} is not valid JSON: {e}") from None
        check_config(config, len(layer_paths), f"{source.describe()}: {config_path}")
        diff_ids = config["rootfs"].get("diff_ids") or []
        layers = [_import_docker_layer(store, source, p, d) for p, d in zip(layer_paths, diff_ids)]
        config_desc = store.put_blob(config_bytes, mt.OCI_CONFIG)  # same bytes: the image ID is kept
        image = store.commit_manifest(config_desc, layers)
        pending.append((image, _repo_tags(source, entry)))


def _load_oci(store: ImageStore, source: LayoutSource, pending: list) -> None:
    imported: dict[str, Image] = {}
    for entry in layout_entries(source):
        image = imported.get(entry.digest)
        if image is None:
            image = imported[entry.digest] = import_manifest(store, source, entry)
        pending.append((image, entry_names(entry)))


# --- import ----------------------------------------------------------------------------------------

@contextmanager
def _open_source(source: str | Path) -> Iterator[tuple[BinaryIO, str]]:
    """(stream, label) for a path, an http(s) URL, or "-" (stdin)."""
    if source == "-":
        yield sys.stdin.buffer, "-"
        return
    text = os.fspath(source)
    if is_url(text):
        with open_url(text) as (body, _):
            yield body, text
        return
    try:
        f = open(text, "rb")
    except (FileNotFoundError, IsADirectoryError) as e:
        raise BuildError(f"cannot import {text}: {e.strerror}") from None
    with f:
        yield f, text


def _created_now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return rfc3339(int(epoch) * 10**9 if epoch and epoch.isdigit() else None)


def import_rootfs(store: ImageStore, source: str | Path, name: str | None = None,
                  config: dict | None = None, *, compression: str | None = "gzip") -> Image:
    """Make a one-layer image from a root filesystem tarball (plain or gzip/bzip2/xz/zstd; a path, an
    http(s) URL, or "-" for stdin), streamed straight into a layer blob. The config has
    rootfs.diff_ids, os linux, this host's architecture, and one history entry ("Imported from ..."); `config`
    is the config's "config" section (for `--change` lines, see dockerfile.instructions.config_from_changes).
    Tagged `name` when given. All or nothing: a bad name or source leaves the store as it was."""
    if name:
        name = normalize_name(name)
    with store.lease():
        image = _import_rootfs(store, source, config, compression)
        if name:
            store.tag(image, name)
        return image


def _import_rootfs(store: ImageStore, source: str | Path, config: dict | None, compression: str | None) -> Image:
    with _open_source(source) as (stream, label):
        plain, _ = open_decompressed(stream)
        head_reader = PeekableReader(plain)
        if not looks_like_tar(head_reader.peek(512)):
            raise BuildError(f"{label} is not a tar archive (plain or gzip/bzip2/xz/zstd compressed)")
        with store.new_blob() as blob:
            packer = compressor(compression, blob)
            tar_digest = HashingWriter(packer)
            try:
                while chunk := head_reader.read(CHUNK):
                    tar_digest.write(chunk)
            except (EOFError, OSError) as e:
                abandon(packer)
                if isinstance(e, OSError) and e.errno is not None:
                    raise
                raise BuildError(f"{label}: broken compressed data: {e}") from None
            except BaseException:
                abandon(packer)
                raise
            packer.close()
            layer = blob.commit(mt.oci_layer_type(compression))
        if plain is not stream:
            plain.close()
    created = _created_now()
    image_config = {
        "created": created,
        "architecture": host_platform().architecture,
        "os": "linux",
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": [tar_digest.digest]},
        "history": [{"created": created, "created_by": "", "comment": f"Imported from {label}"}],  # as docker's
    }
    return store.commit_image(image_config, [layer])

