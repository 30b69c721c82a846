"""--cache-to and --cache-from: the build cache carried between stores, as BuildKit's local and registry
cache exporters do (our own format, laid out so any OCI tool can read it).

An exported cache is one OCI image manifest whose config (media type CONFIG_TYPE) lists step results
(cache key, layer descriptor, diff_id, time made) and whose layers are those results' layer blobs. With
type=local it is written as an OCI image layout directory (index.json names it "latest"); with
type=registry it is pushed to a repository under a tag. mode=min (the default) exports the steps of the
final image, mode=max those of every stage the build ran.

--cache-from reads such a cache (a layout directory or a registry reference), or uses an image as the
cache, as docker's classic builder did: a step matches when the image was built from the same layers by
the same instruction history (RUN and WORKDIR only: a COPY's history names no content).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from builder.builds.cache import CacheEntry
from builder.errors import BuildError
from builder.image import mediatypes as mt
from builder.image.digest import Descriptor, canonical_json

CONFIG_TYPE = "application/vnd.pydock.buildcache.config.v1+json"
REF_NAME = "latest"


@dataclass(frozen=True)
class CacheSpec:
    kind: str       # "local" | "registry" | "image"
    where: str      # a directory (local), or a reference (registry, image)
    mode: str = "min"


def _fields(text: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise BuildError(f"invalid {flag} {text!r}: want type=...,key=value")
        out[key.strip()] = value.strip()
    return out


def parse_cache_from(text: str) -> CacheSpec:
    """type=local,src=DIR | type=registry,ref=REF | a plain image reference (docker's classic form)."""
    if "=" not in text:
        if not text:
            raise BuildError("invalid --cache-from '': want an image, type=local,src=DIR or type=registry,ref=REF")
        return CacheSpec("image", text)
    f = _fields(text, "--cache-from")
    kind = f.get("type", "registry")
    if kind == "local":
        if not f.get("src"):
            raise BuildError(f"invalid --cache-from {text!r}: type=local needs src=DIR")
        return CacheSpec("local", f["src"])
    if kind == "registry":
        if not f.get("ref"):
            raise BuildError(f"invalid --cache-from {text!r}: type=registry needs ref=HOST/REPO:TAG")
        return CacheSpec("registry", f["ref"])
    raise BuildError(f"unsupported --cache-from type {kind!r} (use local or registry)")


def parse_cache_to(text: str) -> CacheSpec:
    """type=local,dest=DIR[,mode=min|max] | type=registry,ref=REF[,mode=min|max]."""
    f = _fields(text, "--cache-to") if "=" in text else {"type": "registry", "ref": text}
    kind = f.get("type", "registry")
    if kind not in ("local", "registry"):
        raise BuildError(f"unsupported --cache-to type {kind!r} (use local or registry)")
    mode = f.get("mode", "min")
    if mode not in ("min", "max"):
        raise BuildError(f"invalid --cache-to mode {mode!r}: use min or max")
    unknown = set(f) - {"type", "dest", "ref", "mode"}
    if unknown:
        raise BuildError(f"unsupported --cache-to option {sorted(unknown)[0]!r} in {text!r}")
    if kind == "local":
        if not f.get("dest"):
            raise BuildError(f"invalid --cache-to {text!r}: type=local needs dest=DIR")
        return CacheSpec("local", f["dest"], mode)
    if not f.get("ref"):
        raise BuildError(f"invalid --cache-to {text!r}: type=registry needs ref=HOST/REPO:TAG")
    return CacheSpec("registry", f["ref"], mode)


# -- importing -------------------------------------------------------------------------------------

def _steps_of(config: dict, where: str) -> dict[str, CacheEntry]:
    steps = config.get("steps") if isinstance(config, dict) else None
    if not isinstance(steps, list):
        raise BuildError(f"cache {where}: not a pydock build cache (no steps)")
    out: dict[str, CacheEntry] = {}
    for item in steps:
        try:
            entry = CacheEntry.from_json(item)
            if not mt.is_layer(Descriptor.from_json(entry.layer).media_type):
                raise ValueError(f"not a layer type: {entry.layer.get('mediaType')!r}")
            out[str(item["key"])] = entry
        except (KeyError, TypeError, ValueError, BuildError) as e:
            raise BuildError(f"cache {where}: malformed step {item!r:.80}: {e}") from None
    return out


class _Steps:
    """A cache of step results read from a layout or a registry; fetch() brings a layer blob into the store."""

    def __init__(self, where: str, steps: dict[str, CacheEntry], fetch):
        self.where = where
        self.steps = steps
        self.fetch = fetch

    def lookup(self, store, key: str, **_) -> CacheEntry | None:
        entry = self.steps.get(key)
        if entry is None:
            return None
        from builder.image.layout import check_diff_id

        desc = Descriptor.from_json(entry.layer)
        if not store.has_blob(desc.digest):
            self.fetch(desc)
            check_diff_id(store, desc, entry.diff_id, f"cache {self.where}")
        return entry


class _ImageSteps:
    """An image as a cache (docker's classic --cache-from): a step matches when the image's history
    begins with ours, its next entry is this step's, and its layers begin with ours."""

    def __init__(self, image):
        self.config = image.config
        self.layers = list(image.layers)

    def lookup(self, store, key: str, *, history: list, diff_ids: list, created_by: str, payload: dict,
               **_) -> CacheEntry | None:
        if payload.get("op") not in ("RUN", "WORKDIR") or payload.get("mounts"):
            return None  # the history does not name what a COPY or a RUN's mounts read
        theirs = self.config.get("history") or []
        n = len(history)
        if len(theirs) <= n or theirs[n].get("empty_layer") or theirs[n].get("created_by") != created_by:
            return None
        if [h.get("created_by") for h in theirs[:n]] != [h.get("created_by") for h in history]:
            return None
        their_ids = (self.config.get("rootfs") or {}).get("diff_ids") or []
        k = len(diff_ids)
        if len(their_ids) <= k or their_ids[:k] != list(diff_ids) or len(self.layers) != len(their_ids):
            return None
        return CacheEntry(self.layers[k].to_json(), their_ids[k], theirs[n].get("created") or "")


def open_sources(b, specs: list[CacheSpec]) -> list:
    """Every --cache-from, read once at the start of the build. A cache that is not there yet is only a
    warning (BuildKit's behaviour: the first build of a CI pipeline has none)."""
    sources = []
    for spec in specs:
        try:
            if spec.kind == "local":
                sources.append(_open_local(b.store, Path(spec.where)))
            elif spec.kind == "image":
                sources.append(_open_image_or_registry(b, spec.where))
            else:  # a cache in a registry, or an image there (pulled, and used as docker's classic builder did)
                sources.append(_open_registry(b.store, spec.where) or _image_source(b, b._pull(spec.where)))
        except BuildError as e:
            b.progress.warn(f"WARNING: cache from {spec.where} not used: {e}")
    return [s for s in sources if s is not None]


def _open_local(store, root: Path):
    from builder.image.layout import DirSource, copy_blob_in, read_blob_json, read_json

    source = DirSource(root)
    if not source.exists("index.json"):
        raise BuildError(f"{root} is not a cache directory (no index.json)")
    index = read_json(source, "index.json")
    entries = [Descriptor.from_json(m) for m in (index.get("manifests") or [])]
    named = [d for d in entries if (d.annotations or {}).get(mt.ANNOTATION_REF_NAME) == REF_NAME] or entries
    if not named:
        raise BuildError(f"{root}: the layout names no cache manifest")
    manifest, _ = read_blob_json(source, named[0])
    config_desc = Descriptor.from_json(manifest.get("config") or {})
    if config_desc.media_type != CONFIG_TYPE:
        raise BuildError(f"{root}: not a pydock build cache (config type {config_desc.media_type})")
    config, _ = read_blob_json(source, config_desc)
    return _Steps(str(root), _steps_of(config, str(root)), lambda desc: copy_blob_in(store, source, desc))


def _open_registry(store, text: str):
    """A cache pushed by --cache-to type=registry; None when the reference is an image instead."""
    from builder.registry.client import Registry
    from builder.registry.pull import fetch_blob, fetch_manifest
    from builder.registry.reference import parse

    ref = parse(text)
    registry = Registry(ref.domain)
    registry.want(ref.path, "pull")
    data, media_type, _ = fetch_manifest(registry, ref, ref.ref)
    doc = json.loads(data)
    config = doc.get("config") if media_type in mt.MANIFEST_TYPES else None
    if not isinstance(config, dict) or config.get("mediaType") != CONFIG_TYPE:
        return None
    config_desc = Descriptor.from_json(config)
    fetch_blob(registry, ref, config_desc, store)
    steps = _steps_of(store.read_json(config_desc.digest, config_desc.size), text)
    return _Steps(text, steps, lambda desc: fetch_blob(registry, ref, desc, store))


def _open_image_or_registry(b, text: str):
    """A plain --cache-from: an image in the store; else a registry cache, or an image pulled from there."""
    try:
        image = b.store.resolve(text)
    except BuildError:
        source = _open_registry(b.store, text)
        if source is not None:
            return source
        image = b._pull(text)
    return _image_source(b, image)


def _image_source(b, image) -> _ImageSteps:
    if getattr(b, "_hold", None) is not None:
        b._hold.add(image)  # its layers are the cache: no rmi or gc takes them during the build
    return _ImageSteps(image)


def lookup(b, key: str, **context) -> CacheEntry | None:
    """A step's result from the first --cache-from that has it (its layer is then in the store)."""
    for source in b.cache_sources:
        entry = source.lookup(b.store, key, **context)
        if entry is not None:
            return entry
    return None


# -- exporting -------------------------------------------------------------------------------------

def steps_to_export(b, final_key: str, mode: str) -> list[tuple[str, CacheEntry]]:
    """mode=max: every step the build ran or reused; mode=min: the final image's chain of steps."""
    if mode == "max":
        return [(key, entry) for key, (_, entry) in b.steps_done.items()]
    chain = []
    key = final_key
    while key in b.steps_done:
        parent, entry = b.steps_done[key]
        chain.append((key, entry))
        key = parent
    return list(reversed(chain))


def _cache_documents(steps: list[tuple[str, CacheEntry]]) -> tuple[bytes, list[Descriptor]]:
    config = {"pydockBuildCache": 1, "steps": [{"key": key, **entry.to_json()} for key, entry in steps]}
    layers: dict[str, Descriptor] = {}
    for _, entry in steps:
        desc = Descriptor.from_json(entry.layer)
        layers.setdefault(desc.digest, desc)
    return canonical_json(config), list(layers.values())


def export(b, spec: CacheSpec, final_key: str) -> None:
    steps = steps_to_export(b, final_key, spec.mode)
    config_bytes, layers = _cache_documents(steps)
    config_desc = b.store.put_blob(config_bytes, CONFIG_TYPE)
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc.to_json(),
                "layers": [d.to_json() for d in layers]}
    manifest_bytes = canonical_json(manifest)
    manifest_desc = b.store.put_blob(manifest_bytes, mt.OCI_MANIFEST)
    if spec.kind == "local":
        _write_local(b.store, Path(spec.where), [*layers, config_desc, manifest_desc], manifest_desc)
    else:
        _push(b.store, spec.where, [*layers, config_desc], manifest_bytes)
    b.progress.line(f"exported cache of {len(steps)} steps to {spec.where}")


def _write_local(store, root: Path, blobs: list[Descriptor], manifest_desc: Descriptor) -> None:
    from builder.atomicfile import atomic_file
    from builder.image.layout import copy_blob_out

    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for desc in blobs:
        copy_blob_out(store, desc, root)
    with atomic_file(root / "oci-layout") as f:
        f.write(json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode())
    entry = Descriptor(mt.OCI_MANIFEST, manifest_desc.digest, manifest_desc.size, {mt.ANNOTATION_REF_NAME: REF_NAME})
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry.to_json()]}
    with atomic_file(root / "index.json") as f:
        f.write(json.dumps(index, indent=2).encode() + b"\n")


def _push(store, text: str, blobs: list[Descriptor], manifest_bytes: bytes) -> None:
    from builder.registry.client import Registry, for_each_blob
    from builder.registry.push import push_blob
    from builder.registry.reference import parse

    ref = parse(text)
    registry = Registry(ref.domain)
    registry.want(ref.path, "pull", "push")
    for_each_blob(lambda desc: push_blob(registry, ref, desc, store), blobs)
    r = registry.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag or 'latest'}", ok=(201,), data=manifest_bytes,
                         headers={"Content-Type": mt.OCI_MANIFEST}, what=f"cache manifest for {ref.familiar()}")
    r.close()
