"""push: every blob of an image (config and layers) that the repository lacks — HEAD first; mounted from
another repository of the same registry when the blob is known to be there; else uploaded — then the
manifest, as the exact bytes the store has, so the registry's digest is the store's; or, for an image whose
layers the store keeps as plain tars (built ones), its gzip form (image/distribute.py), the same every
time. An image pulled from a
manifest list / OCI index goes up as that list (same digest) when the repository has the other
platforms' manifests it names, else as the one image the store has.

Uploads: a blob up to CHUNK_SIZE goes in one PUT (POST, then PUT ?digest=; started again with a new
upload when the registry fails or the connection drops). A bigger one goes in chunks (PATCH with
Content-Range, then an empty PUT ?digest=): after a failed chunk the upload's status (GET its location:
`Range: 0-N`) says where to go on, and an upload the registry no longer knows starts again.
$PYDOCK_PUSH_CHUNK_SIZE (bytes) sets the chunk size."""

from __future__ import annotations

import json
import os
import time
from typing import Callable
from urllib.parse import urlencode

from builder.image import mediatypes as mt
from builder.image.digest import Descriptor
from builder.image.distribute import distributable
from builder.registry import sources
from builder.registry.client import BACKOFF, TRIES, Registry, RegistryError, Unavailable, for_each_blob
from builder.registry.reference import Reference

CHUNK_SIZE = 16 * 1024 * 1024  # big enough to keep round trips few, small enough to hold in memory


def _with_query(url: str, **params) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _blob_exists(registry: Registry, ref: Reference, desc: Descriptor) -> bool:
    r = registry.request("HEAD", f"/v2/{ref.path}/blobs/{desc.digest}", ok=(200, 404),
                         what=f"blob {desc.digest}")
    r.close()
    return r.status_code == 200


def _chunk_size() -> int:
    text = os.environ.get("PYDOCK_PUSH_CHUNK_SIZE", "")
    if not text:
        return CHUNK_SIZE
    if not text.isdigit() or int(text) < 1:
        raise RegistryError(f"invalid PYDOCK_PUSH_CHUNK_SIZE {text!r}: want a number of bytes")
    return int(text)


def _start_upload(registry: Registry, ref: Reference) -> str:
    r = registry.request("POST", f"/v2/{ref.path}/blobs/uploads/", ok=(202,), what="starting an upload")
    location = r.headers.get("Location")
    r.close()
    if not location:
        raise RegistryError(f"{registry.host} started an upload without a Location")
    return registry.url(location)


def _upload(registry: Registry, ref: Reference, desc: Descriptor, store, location: str | None) -> None:
    """One monolithic upload (into `location` if the registry has started one already)."""
    location = location and registry.url(location) or _start_upload(registry, ref)
    r = registry.request("PUT", _with_query(location, digest=desc.digest), ok=(201,), retry=False,
                         data=lambda: open(store.blob_path(desc.digest), "rb"),
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
                         what=f"upload of {desc.digest}")
    r.close()


def _uploaded_until(r) -> int:
    """The offset after what the registry has of an upload (`Range: 0-LAST`; none yet: 0-0 or absent)."""
    first, _, last = r.headers.get("Range", "").partition("-")
    if first != "0" or not last.isdigit():
        return 0
    return int(last) + 1


def _upload_chunked(registry: Registry, ref: Reference, desc: Descriptor, store, chunk: int) -> None:
    location = _start_upload(registry, ref)
    offset = 0
    failures = 0
    with open(store.blob_path(desc.digest), "rb") as f:
        while offset < desc.size:
            f.seek(offset)
            data = f.read(min(chunk, desc.size - offset))
            try:
                r = registry.request("PATCH", location, ok=(202,), retry=False, data=data, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                    "Content-Range": f"{offset}-{offset + len(data) - 1}"}, what=f"upload of {desc.digest}")
                r.close()
                location = registry.url(r.headers.get("Location") or location)
                offset = _uploaded_until(r) or offset + len(data)
                continue
            except RegistryError:
                failures += 1
                if failures >= TRIES:
                    raise
                time.sleep(BACKOFF * 2 ** (failures - 1))
            try:  # where does the upload stand? (the chunk may have arrived in full, in part or not at all)
                r = registry.request("GET", location, ok=(204,), what=f"status of the upload of {desc.digest}")
                r.close()
                location = registry.url(r.headers.get("Location") or location)
                offset = _uploaded_until(r)
            except RegistryError:  # gone, or the registry cannot go on with it: a new upload
                location, offset = _start_upload(registry, ref), 0
    r = registry.request("PUT", _with_query(location, digest=desc.digest), ok=(201,), data=b"",
                         headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
                         what=f"upload of {desc.digest}")
    r.close()


def push_blob(registry: Registry, ref: Reference, desc: Descriptor, store, chunk: int | None = None) -> str:
    """One blob of the store into the repository (unless it is there); returns docker's status word."""
    chunk = chunk or _chunk_size()
    if _blob_exists(registry, ref, desc):
        return "Layer already exists"
    for other in sources.repositories(store, ref.domain, desc.digest):
        if other == ref.path:
            continue
        registry.want(other, "pull")
        r = registry.request("POST", f"/v2/{ref.path}/blobs/uploads/", ok=(201, 202),
                             params={"mount": desc.digest, "from": other}, what=f"mount of {desc.digest}")
        location = r.headers.get("Location")
        r.close()
        if r.status_code == 201:
            return f"Mounted from {other}"
        _upload(registry, ref, desc, store, location)  # the registry started a plain upload instead
        return "Pushed"
    if desc.size > chunk:
        _upload_chunked(registry, ref, desc, store, chunk)
        return "Pushed"
    for attempt in range(1, TRIES + 1):  # a failed upload starts again with a new upload session
        try:
            _upload(registry, ref, desc, store, None)
            return "Pushed"
        except Unavailable:
            if attempt == TRIES:
                raise
            time.sleep(BACKOFF * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def push(store, ref: Reference, *, say: Callable[[str], None] = lambda line: None,
         registry: Registry | None = None) -> tuple[str, int]:
    """Push the store's image `ref.store_name` to `ref`; returns (manifest digest, manifest size)."""
    chunk = _chunk_size()
    image = store.resolve(ref.store_name)
    registry = registry or Registry(ref.domain)
    registry.want(ref.path, "pull", "push")
    say(f"The push refers to repository [{ref.name}]")
    out = distributable(store, image)  # a built image's plain layers go out gzip-compressed
    blobs = [*out.layers, out.config]

    def one(desc: Descriptor) -> None:
        status = push_blob(registry, ref, desc, store, chunk)
        if desc.digest != out.config.digest:
            say(f"{desc.digest[7:19]}: {status}")

    for_each_blob(one, blobs)
    tag = ref.tag or "latest"
    pushed = out.manifest, out.media_type, out.digest
    listing = store.pulled_index(image)
    if listing is not None:
        # the list it was pulled from goes up as it is when the repository has every manifest it names
        # (ours is put there by digest first); else only the image we have, as docker does
        _put_manifest(registry, ref, out.digest, pushed)
        if all(_manifest_exists(registry, ref, child) for child in _children(listing[0])):
            pushed = listing
    _put_manifest(registry, ref, tag, pushed)
    sources.remember(store, ref, blobs)
    say(f"{tag}: digest: {pushed[2]} size: {len(pushed[0])}")
    return pushed[2], len(pushed[0])


def _children(index: bytes) -> list[str]:
    return [m["digest"] for m in json.loads(index).get("manifests") or [] if isinstance(m, dict) and "digest" in m]


def _manifest_exists(registry: Registry, ref: Reference, digest: str) -> bool:
    r = registry.request("HEAD", f"/v2/{ref.path}/manifests/{digest}", ok=(200, 404), what=f"manifest {digest}",
                         headers={"Accept": ", ".join([*mt.MANIFEST_TYPES, *mt.INDEX_TYPES])})
    r.close()
    return r.status_code == 200


def _put_manifest(registry: Registry, ref: Reference, reference: str, manifest: tuple[bytes, str, str]) -> None:
    """PUT a manifest's exact bytes under a tag or its digest; the registry must name it by our digest."""
    data, media_type, digest = manifest
    r = registry.request("PUT", f"/v2/{ref.path}/manifests/{reference}", ok=(201,), data=data,
                         headers={"Content-Type": media_type}, what=f"manifest for {ref.familiar()}")
    r.close()
    said = r.headers.get("Docker-Content-Digest")
    if said and said != digest:
        raise RegistryError(f"{registry.host} stored the manifest as {said}, not {digest}")
