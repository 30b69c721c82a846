"""pull: a manifest (picked from a manifest list / OCI index by platform), then its config and layers,
fetched in parallel, each checked against its digest before it enters the store. The manifest is kept as
the registry's exact bytes, so the image's digest in the store is the registry's. Everything happens in a
store lease: if anything fails, nothing that was added stays."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable

from builder.errors import BuildError
from builder.image import mediatypes as mt
from builder.image.digest import CHUNK, Descriptor
from builder.image.platform import Platform, host_platform
from builder.registry import sources
from builder.registry.client import BACKOFF, TRIES, Registry, RegistryError, for_each_blob
from builder.registry.reference import Reference

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
ACCEPT = ", ".join([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
CONFIG_TYPES = (mt.OCI_CONFIG, mt.DOCKER_CONFIG)


@dataclass
class PullResult:
    image: object            # the store's Image
    digest: str              # the digest the registry knows the reference by (a list's, for a list)
    name: str | None         # the store name it was tagged with
    downloaded: bool         # False when everything was in the store already


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fetch_manifest(registry: Registry, ref: Reference, reference: str) -> tuple[bytes, str, str]:
    """(bytes, media type, digest) of a manifest by tag or digest, verified when asked for by digest."""
    r = registry.request("GET", f"/v2/{ref.path}/manifests/{reference}", headers={"Accept": ACCEPT},
                         what=f"manifest for {ref.familiar()}" if reference == ref.ref else f"manifest {reference}")
    data = r.content
    digest = _sha256(data)
    if reference.startswith("sha256:") and digest != reference:
        raise RegistryError(f"manifest {reference} from {registry.host} does not match its digest (got {digest})")
    header = r.headers.get("Docker-Content-Digest")
    if header and header.startswith("sha256:") and header != digest:
        raise RegistryError(f"manifest for {ref.familiar()}: the registry says {header}, the content is {digest}")
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError(f"manifest for {ref.familiar()} is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"manifest for {ref.familiar()} is not a JSON object")
    media_type = doc.get("mediaType") or r.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise RegistryError(f"{ref.familiar()} has a schema 1 manifest, which is not supported")
    if not media_type or media_type == "application/json":
        media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if media_type not in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
        raise RegistryError(f"{ref.familiar()}: unsupported manifest type {media_type!r}")
    return data, media_type, digest


def _platform_of(entry: dict) -> Platform | None:
    p = entry.get("platform")
    if not isinstance(p, dict):
        return None
    return Platform(str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", "") or ""))


def pick_manifest(index: dict, want: Platform, what: str) -> Descriptor:
    """The entry of a manifest list / index for a platform (the variant must match if both name one)."""
    candidates = []
    for entry in index.get("manifests") or []:
        desc = Descriptor.from_json(entry)
        p = _platform_of(entry)
        if desc.media_type not in mt.MANIFEST_TYPES or p is None:
            continue
        if p.os == want.os and p.architecture == want.architecture:
            if p.variant == want.variant:
                return desc
            if not p.variant or not want.variant:
                candidates.append(desc)
    if candidates:
        return candidates[0]
    offered = sorted({p.format() for e in index.get("manifests") or [] if (p := _platform_of(e))})
    raise RegistryError(f"no matching manifest for {want.format()} in {what} "
                        f"(it has: {', '.join(offered) or 'none'})")


def _check_manifest(doc: dict, what: str) -> tuple[Descriptor, list[Descriptor]]:
    if doc.get("schemaVersion") != 2 or not isinstance(doc.get("config"), dict):
        raise RegistryError(f"{what}: not a schema 2 image manifest")
    config = Descriptor.from_json(doc["config"])
    if config.media_type not in CONFIG_TYPES:
        raise RegistryError(f"{what}: not a container image (config type {config.media_type})")
    layers = [Descriptor.from_json(layer) for layer in doc.get("layers") or []]
    for layer in layers:
        if not mt.is_layer(layer.media_type):
            raise RegistryError(f"{what}: unsupported layer type {layer.media_type!r}")
        if layer.urls:
            raise RegistryError(f"{what}: layer {layer.digest} is a foreign layer (urls), not supported")
    return config, layers


class _FreshDownload:
    """A download into a new temp blob, for when another process is resuming the same blob's kept start
    (its PartialBlob is locked): the same calls as PartialBlob, nothing kept after a failure."""

    kept_after_failure = False

    def __init__(self, store, digest: str):
        self._store = store
        self._digest = digest
        self._writer = store.new_blob()

    @property
    def size(self) -> int:
        return self._writer.size

    def write(self, data) -> int:
        return self._writer.write(data)

    def restart(self) -> None:
        self._writer.abort()
        self._writer = self._store.new_blob()

    def commit(self, media_type: str) -> Descriptor:
        return self._writer.commit(media_type, expected_digest=self._digest)

    def keep(self) -> None:
        self._writer.abort()

    discard = keep


def _resumed_from(r, have: int) -> bool:
    """Whether a 206 answer goes on from byte `have` (`Content-Range: bytes HAVE-END/TOTAL`)."""
    unit, _, span = r.headers.get("Content-Range", "").partition(" ")
    return unit == "bytes" and span.split("-", 1)[0] == str(have)


def fetch_blob(registry: Registry, ref: Reference, desc: Descriptor, store, progress=None) -> None:
    """Download one blob into the store, verified against its digest and size. A dropped connection
    goes on where it stopped (`Range: bytes=N-`), now or in a later pull: what has arrived is kept in the
    store's partial/ until the blob is complete. Content that does not match is an error, and
    nothing of it is kept."""
    import requests

    sink = store.partial_blob(desc.digest) or _FreshDownload(store, desc.digest)
    counted = 0  # bytes already shown to `progress`

    def advance() -> None:
        nonlocal counted
        if progress and sink.size != counted:
            progress(sink.size - counted)
        counted = sink.size

    try:
        for attempt in range(1, TRIES + 1):
            if sink.size > desc.size:
                sink.restart()
            advance()
            if sink.size == desc.size:
                break
            have = sink.size
            r = registry.request("GET", f"/v2/{ref.path}/blobs/{desc.digest}", stream=True, ok=(200, 206, 416),
                                 headers={"Range": f"bytes={have}-"} if have else None,
                                 what=f"blob {desc.digest}")
            try:
                if r.status_code == 416:  # the registry will not go on from there: from the start, then
                    sink.restart()
                    advance()
                    continue
                if have and not (r.status_code == 206 and _resumed_from(r, have)):
                    sink.restart()  # the registry sent the whole blob (it ignores Range): take it all
                    advance()
                    if r.status_code == 206:
                        continue  # some other part: ask again, from the start
                # a short body ends the loop instead of raising, so that what did arrive is kept
                r.raw.enforce_content_length = False
                length = r.headers.get("Content-Length", "")
                start = sink.size
                for chunk in r.iter_content(CHUNK):
                    sink.write(chunk)
                    if sink.size > desc.size:
                        sink.discard()
                        raise RegistryError(f"blob {desc.digest} is larger than the manifest says ({desc.size})")
                    advance()
                if length.isdigit() and "Content-Encoding" not in r.headers and sink.size - start < int(length):
                    raise requests.ConnectionError("the connection closed before the end of the blob")
                break
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                if attempt == TRIES:
                    kept = " (kept for the next pull)" if getattr(sink, "kept_after_failure", True) else ""
                    raise RegistryError(f"download of {desc.digest} failed after {sink.size} of {desc.size} "
                                        f"bytes{kept}: {e}") from None
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            finally:
                r.close()
        if sink.size != desc.size:
            sink.discard()
            raise RegistryError(f"blob {desc.digest}: got {sink.size} bytes, the manifest says {desc.size}")
        try:
            sink.commit(desc.media_type)
        except BuildError as e:
            raise RegistryError(f"blob {desc.digest} from {registry.host}: {e}") from None
    finally:
        sink.keep()  # after commit or discard, nothing is left to keep


def pull(store, ref: Reference, *, platform: Platform | None = None,
         say: Callable[[str], None] = lambda line: None, registry: Registry | None = None,
         bar: bool = False) -> PullResult:
    """Pull `ref` into the store and tag it (unless pulled by digest alone). `say` gets docker's progress
    lines; `bar` shows one tqdm bar of the bytes downloaded (on stderr) as well."""
    registry = registry or Registry(ref.domain)
    registry.want(ref.path, "pull")
    want = platform or host_platform()
    data, media_type, digest = fetch_manifest(registry, ref, ref.ref)
    repo_digest = digest
    say(f"{ref.tag or ref.digest}: Pulling from {ref.path}")
    index = None
    if media_type in mt.INDEX_TYPES:
        index = (data, media_type)
        chosen = pick_manifest(json.loads(data), want, ref.familiar())
        data, media_type, digest = fetch_manifest(registry, ref, chosen.digest)
        if media_type not in mt.MANIFEST_TYPES:
            raise RegistryError(f"{ref.familiar()}: the index entry for {want.format()} is not an image manifest")
    doc = json.loads(data)
    config_desc, layers = _check_manifest(doc, ref.familiar())
    name = ref.store_name if ref.tag or not ref.digest else None
    missing = [d for d in (config_desc, *layers) if not store.has_blob(d.digest)]
    for layer in layers:
        if not any(m.digest == layer.digest for m in missing):
            say(f"{layer.digest[7:19]}: Already exists")
    meter = None
    print_line = say
    if bar and missing:
        from tqdm import tqdm

        meter = tqdm(total=sum(d.size for d in missing), unit="B", unit_scale=True, unit_divisor=1024,
                     leave=False, desc="Downloading")
        say = meter.write  # lines go above the bar

    with store.lease():
        def one(desc: Descriptor) -> Descriptor:
            fetch_blob(registry, ref, desc, store, meter.update if meter else None)
            if desc is not config_desc:
                say(f"{desc.digest[7:19]}: Pull complete")
            return desc

        if missing:
            try:
                for_each_blob(one, missing)
            finally:
                if meter is not None:
                    meter.close()
                    say = print_line
        config = store.read_json(config_desc.digest, config_desc.size)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise RegistryError(f"{ref.familiar()}: the image config lists {len(diff_ids or [])} layers, "
                                f"the manifest {len(layers)}")
        got = Platform(str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant") or ""))
        if (platform is not None and repo_digest == digest  # a single manifest (a list's entry says its platform)
                and (got.os, got.architecture) != (want.os, want.architecture)):
            raise RegistryError(f"image {ref.familiar()} is for {got.format()}, not the requested {want.format()}")
        had = store.has_blob(digest)
        before = None
        if name is not None:
            try:
                before = store.resolve(name).digest
            except BuildError:
                pass
        image = store.add_pulled(data, media_type, digest, name, f"{ref.familiar_name}@{repo_digest}", index)
    sources.remember(store, ref, [config_desc, *layers])
    say(f"Digest: {repo_digest}")
    downloaded = bool(missing) or not had or before != image.digest
    return PullResult(image, repo_digest, name, downloaded)
