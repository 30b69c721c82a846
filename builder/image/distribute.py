"""The form of an image that leaves the store for a registry: its layers gzip-compressed.

Builds keep their layers as plain tars in the store (as BuildKit does in docker's image store): tarring
5,000 small files or one 50 MB file costs little, compressing them costs most of a build. They are
compressed here, once, when the image is pushed: each plain layer's gzip form is a blob of its own,
remembered in the store's cache (cache/compressed/<hex of the plain digest>), so a second push, or
another image sharing the layer, pays nothing. gzip is deterministic (GZIP_LEVEL, no name, mtime 0), so
the same layer always gives the same blob, and the manifest that goes out (the image's own, its layers
replaced by their gzip descriptors) always has the same digest. The image's ID (its config) is the same
in both forms, as with docker, whose pushed manifest digest also differs from what its store holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from builder.atomicfile import atomic_file
from builder.errors import BuildError
from builder.image import mediatypes as mt
from builder.image.digest import Descriptor, canonical_json, parse_digest
from builder.image.layers import abandon, compressor

# plain layer media type -> its gzip form (non-distributable layers are never uploaded: left alone)
_GZIP_FOR = {mt.OCI_LAYER_TAR: mt.OCI_LAYER_GZIP, mt.DOCKER_LAYER_TAR: mt.DOCKER_LAYER_GZIP}


@dataclass
class Distributable:
    """What a push sends: the manifest's bytes, media type and digest, and the blobs it names."""

    manifest: bytes
    media_type: str
    digest: str
    layers: list[Descriptor]
    config: Descriptor


def distributable(store, image) -> Distributable:
    """The image as it goes to a registry: the stored manifest itself when no layer is a plain tar, else
    a manifest naming gzip forms of the plain layers (compressed now, or taken from the cache)."""
    data = store.read_blob(image.digest)
    doc = json.loads(data)
    media_type = doc.get("mediaType") or image.manifest_desc.media_type or mt.OCI_MANIFEST
    if not any(layer.media_type in _GZIP_FOR for layer in image.layers):
        return Distributable(data, media_type, image.digest, list(image.layers), image.config_desc)
    layers = [gzip_form(store, layer) if layer.media_type in _GZIP_FOR else layer for layer in image.layers]
    doc["layers"] = [layer.to_json() for layer in layers]
    desc = store.put_json(doc, media_type)
    return Distributable(canonical_json(doc), media_type, desc.digest, layers, image.config_desc)


def _cache_path(store, digest: str):
    algorithm, hexpart = parse_digest(digest)
    return store.cache_dir / "compressed" / f"{algorithm}-{hexpart}.json"


def gzip_form(store, layer: Descriptor) -> Descriptor:
    """The gzip blob of a plain layer blob: from the cache when its blob is still in the store, else
    compressed now (and remembered)."""
    path = _cache_path(store, layer.digest)
    try:
        known = Descriptor.from_json(json.loads(path.read_text()))
        if store.has_blob(known.digest) and store.blob_size(known.digest) == known.size:
            return Descriptor(_GZIP_FOR[layer.media_type], known.digest, known.size, layer.annotations,
                              None, layer.urls)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with store.open_blob(layer.digest, layer.size) as source, store.new_blob() as blob:
        packer = compressor("gzip", blob)
        try:
            while chunk := source.read(1 << 20):
                packer.write(chunk)
            packer.close()
        except BaseException:
            abandon(packer)
            raise
        desc = blob.commit(_GZIP_FOR[layer.media_type], annotations=layer.annotations)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(path, durable=False) as f:  # only a cache: losing it costs one compression
            f.write(canonical_json({"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}))
    except (OSError, BuildError):
        pass
    desc.urls = layer.urls
    return desc
