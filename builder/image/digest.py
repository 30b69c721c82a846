"""Content digests: descriptors, canonical JSON, and streams that hash what passes through them."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import BinaryIO

from builder.errors import BuildError

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
CHUNK = 1024 * 1024  # how much a stream is read or written at a time


def parse_digest(digest: str) -> tuple[str, str]:
    """Split "sha256:<hex>" into (algorithm, hex), refusing anything that could not name a blob file.

    Digests become file names in a layout, so this check is what keeps "sha256:../../x" out."""
    m = _DIGEST_RE.match(digest) if isinstance(digest, str) else None
    if not m:
        raise BuildError(f"invalid digest {digest!r}: want sha256:<64 hex digits>")
    algorithm, encoded = m.groups()
    if algorithm not in _HEX_LENGTH:
        raise BuildError(f"unsupported digest algorithm {algorithm!r} in {digest}")
    if len(encoded) != _HEX_LENGTH[algorithm] or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise BuildError(f"invalid digest {digest!r}: want {algorithm}:<{_HEX_LENGTH[algorithm]} lower-case hex digits>")
    return algorithm, encoded


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    """The bytes we store for a JSON document: sorted keys, compact separators, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _new_hash(algorithm: str):
    return hashlib.new(algorithm)


@dataclass
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict | None = None
    urls: list[str] | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "Descriptor":
        try:
            media_type, digest, size = obj["mediaType"], obj["digest"], obj["size"]
        except (KeyError, TypeError):
            raise BuildError(f"malformed descriptor (needs mediaType, digest, size): {obj!r}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BuildError(f"malformed descriptor size {size!r} for {digest!r}")
        parse_digest(digest)
        if not isinstance(media_type, str):
            raise BuildError(f"malformed descriptor mediaType {media_type!r} for {digest}")
        annotations, platform, urls = obj.get("annotations"), obj.get("platform"), obj.get("urls")
        if annotations and not (isinstance(annotations, dict)
                                and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())):
            raise BuildError(f"malformed descriptor annotations for {digest}: want an object of strings")
        if platform and not (isinstance(platform, dict) and all(isinstance(platform.get(k, ""), str)
                                                                for k in ("os", "architecture", "variant"))):
            raise BuildError(f"malformed descriptor platform for {digest}: {platform!r}")
        if urls and not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
            raise BuildError(f"malformed descriptor urls for {digest}: want a list of strings")
        return cls(media_type, digest, size, dict(annotations) if annotations else None,
                   dict(platform) if platform else None, list(urls) if urls else None)

    @property
    def ref_name(self) -> str | None:
        from builder.image.mediatypes import ANNOTATION_REF_NAME

        return (self.annotations or {}).get(ANNOTATION_REF_NAME)


class HashingWriter:
    """A write-only stream that hashes and counts what is written, passing it on to `sink` (if any)."""

    def __init__(self, sink: BinaryIO | None = None, algorithm: str = "sha256"):
        self._sink = sink
        self._hash = _new_hash(algorithm)
        self._algorithm = algorithm
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        self._hash.update(data)
        n = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        self.size += n
        if self._sink is not None:
            self._sink.write(data)
        return n

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if self._sink is not None and hasattr(self._sink, "flush"):
            self._sink.flush()

    def close(self) -> None:
        """Marks the stream closed; the sink stays open (its owner closes it)."""
        self.closed = True

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hash.hexdigest()}"


class VerifyingReader:
    """A read-only stream over `source` that checks, when the end is reached, that the content has the
    expected digest (and size). A mismatch raises BuildError, so a corrupted blob is never silently used.

    Reading stops with an error as soon as more than `expected_size` bytes arrive."""

    def __init__(self, source: BinaryIO, expected_digest: str, expected_size: int | None = None,
                 *, what: str | None = None):
        algorithm, _ = parse_digest(expected_digest)
        self._source = source
        self._hash = _new_hash(algorithm)
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self.what = what or f"blob {expected_digest}"
        self.size = 0
        self.verified = False
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._eof:
            return b""
        if n is None or n < 0:
            chunks = []
            while chunk := self.read(CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self._source.read(n)
        if data:
            self._hash.update(data)
            self.size += len(data)
            if self.expected_size is not None and self.size > self.expected_size:
                raise BuildError(f"{self.what} is larger than its recorded size {self.expected_size}: "
                                 "the content is corrupted or the descriptor is wrong")
        else:
            self._eof = True
            self._verify()
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _verify(self) -> None:
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if self.expected_size is not None and self.size != self.expected_size:
            raise BuildError(f"{self.what} has {self.size} bytes, expected {self.expected_size}: "
                             "the content is corrupted or truncated")
        if actual != self.expected_digest:
            raise BuildError(f"{self.what} is corrupted: its content hashes to {actual}")
        self.verified = True

    def read_to_end(self) -> None:
        """Read (and discard) the rest, so the digest is checked even if the consumer stopped early."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._source.close()

    @property
    def closed(self) -> bool:
        return getattr(self._source, "closed", False)

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def digest_file(path, algorithm: str = "sha256") -> tuple[str, int]:
    """(digest, size) of a file, read in chunks."""
    h = _new_hash(algorithm)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return f"{algorithm}:{h.hexdigest()}", size
