"""Which repositories a blob is known to be in (it was pulled from or pushed to them), so that a push to
another repository of the same registry can mount it instead of uploading it. Kept beside the store's
other caches, in cache/registry-sources.json ({digest: ["domain/path", ...]}); losing it only costs
uploads."""

from __future__ import annotations

import json
import os

from builder.filelock import exclusive_lock

MAX_PER_BLOB = 10


def _path(store):
    return store.cache_dir / "registry-sources.json"


def _locked(store):
    return exclusive_lock(store.cache_dir / "registry-sources.lock", 0o644)


def _read(store) -> dict:
    try:
        data = json.loads(_path(store).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def remember(store, ref, descriptors) -> None:
    repo = ref.name
    with _locked(store):
        data = _read(store)
        for desc in descriptors:
            known = [r for r in data.get(desc.digest, []) if r != repo]
            data[desc.digest] = ([repo] + known)[:MAX_PER_BLOB]
        tmp = _path(store).with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.rename(tmp, _path(store))


def repositories(store, domain: str, digest: str) -> list[str]:
    """Paths of repositories on `domain` the blob is known to be in."""
    out = []
    for name in _read(store).get(digest, []):
        d, _, path = name.partition("/")
        if d == domain and path:
            out.append(path)
    return out
