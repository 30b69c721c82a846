"""push: every blob of an image (config and layers) that the repository lacks — HEAD first; mounted from
another repository of the same registry when the blob is known to be there; else one monolithic upload
(POST, then PUT ?digest=; started again when the registry fails or the connection drops) — then the manifest:
the exact bytes the store has, so the registry's digest is the store's; or, for an image whose layers
the store keeps as plain tars (built ones), its gzip form (image/distribute.py), the same every time."""

from __future__ import annotations

import time
from typing import Callable
from urllib.parse import urlencode

from builder.image.digest import Descriptor
from builder.image.distribute import distributable
from builder.registry import sources
from builder.registry.client import BACKOFF, TRIES, Registry, RegistryError, Unavailable, for_each_blob
from builder.registry.reference import Reference



def _with_query(url: str, **params) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _blob_exists(registry: Registry, ref: Reference, desc: Descriptor) -> bool:
    r = registry.request("HEAD", f"/v2/{ref.path}/blobs/{desc.digest}", ok=(200, 404),
                         what=f"blob {desc.digest}")
    r.close()
    return r.status_code == 200


def _upload(registry: Registry, ref: Reference, desc: Descriptor, store, location: str | None) -> None:
    if location is None:
        r = registry.request("POST", f"/v2/{ref.path}/blobs/uploads/", ok=(202,), what="starting an upload")
        location = r.headers.get("Location")
        r.close()
        if not location:
            raise RegistryError(f"{registry.host} started an upload without a Location")
    url = _with_query(registry.url(location), digest=desc.digest)
    r = registry.request("PUT", url, ok=(201,), retry=False, data=lambda: open(store.blob_path(desc.digest), "rb"),
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
                         what=f"upload of {desc.digest}")
    r.close()


def _push_blob(registry: Registry, ref: Reference, desc: Descriptor, store) -> str:
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
    image = store.resolve(ref.store_name)
    registry = registry or Registry(ref.domain)
    registry.want(ref.path, "pull", "push")
    say(f"The push refers to repository [{ref.name}]")
    out = distributable(store, image)  # a built image's plain layers go out gzip-compressed
    data, media_type = out.manifest, out.media_type
    blobs = [*out.layers, out.config]

    def one(desc: Descriptor) -> None:
        status = _push_blob(registry, ref, desc, store)
        if desc.digest != out.config.digest:
            say(f"{desc.digest[7:19]}: {status}")

    for_each_blob(one, blobs)
    r = registry.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag or 'latest'}", ok=(201,), data=data,
                         headers={"Content-Type": media_type}, what=f"manifest for {ref.familiar()}")
    r.close()
    said = r.headers.get("Docker-Content-Digest")
    if said and said != out.digest:
        raise RegistryError(f"{registry.host} stored the manifest as {said}, not {out.digest}")
    sources.remember(store, ref, blobs)
    say(f"{ref.tag or 'latest'}: digest: {out.digest} size: {len(data)}")
    return out.digest, len(data)
