"""The build cache: the result of each filesystem step, keyed by its parent, its instruction and its inputs.

A key is a sha256 over canonical JSON: the parent step's key, the instruction after expansion, and
whatever else the result depends on (content hashes of COPY sources, the RUN environment, user,
working directory, network mode). COPY --from has two: one over the source stage's layers (a hit needs
no rootfs) and, on a miss, one over the content of what it copies, as BuildKit's: a source stage rebuilt
with the same files to give still hits, and later steps chain from that content key. An entry records the layer the step produced (a blob in the store),
its diff_id and the time it was made, so a hit needs neither the rootfs nor the step's inputs.
Entries live in steps/ of the store's cache_dir, each written atomically (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from builder.atomicfile import atomic_file


def step_key(parent: str, payload: dict) -> str:
    """The cache key of a step: sha256 of the parent's key and the step's description."""
    doc = json.dumps({"parent": parent, "step": payload}, sort_keys=True, separators=(",", ":"),
                     ensure_ascii=False)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


@dataclass
class CacheEntry:
    """What a cached filesystem step produced."""

    layer: dict        # the layer's descriptor JSON (mediaType, digest, size)
    diff_id: str       # digest of the uncompressed layer tar
    created: str       # RFC 3339 time the step first ran (kept on hits, as BuildKit does)
    chain: str = ""    # the key later steps chain from, when not this entry's own (a content key)

    def to_json(self) -> dict:
        out = {"layer": self.layer, "diff_id": self.diff_id, "created": self.created}
        if self.chain:
            out["chain"] = self.chain
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "CacheEntry":
        return cls(dict(obj["layer"]), str(obj["diff_id"]), str(obj["created"]), str(obj.get("chain") or ""))


class BuildCache:
    """Step results under <root>/cache/steps/<key[:2]>/<key>.json."""

    def __init__(self, cache_dir: Path):
        self.dir = Path(cache_dir) / "steps"

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str, blob_exists=None) -> CacheEntry | None:
        """The entry for `key`, or None (also when its layer blob has since been removed)."""
        try:
            with open(self._path(key), encoding="utf-8") as f:
                entry = CacheEntry.from_json(json.load(f))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if blob_exists is not None and not blob_exists(entry.layer.get("digest", "")):
            return None
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # not fsync()ed: an entry lost in a crash is a cache miss (get() reads a torn one as none)
        with atomic_file(path, durable=False) as f:
            f.write(json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":")).encode())

    def remove(self, key: str) -> None:
        """Drop an entry (and the directories it leaves empty)."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        for d in (path.parent, self.dir):
            try:
                d.rmdir()
            except OSError:
                break

    def referenced_blobs(self) -> set[str]:
        """Every layer digest a cache entry points at (so a store gc can keep them, if it wants)."""
        out: set[str] = set()
        if not self.dir.is_dir():
            return out
        for sub in self.dir.iterdir():
            for p in sub.glob("*.json"):
                try:
                    out.add(json.loads(p.read_text())["layer"]["digest"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue
        return out

    def prune(self) -> int:
        """Remove every entry; returns how many there were."""
        n = 0
        if not self.dir.is_dir():
            return 0
        for sub in self.dir.iterdir():
            for p in sub.glob("*.json"):
                p.unlink(missing_ok=True)
                n += 1
        return n
