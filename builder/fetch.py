"""HTTP(S) downloads: ADD <url> in a build and `pydock import URL`. One GET with requests, streamed, so
that both follow the same rules for timeouts, error statuses, content encodings and messages."""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from builder.errors import BuildError
from builder.image.digest import CHUNK

TIMEOUT = (30, 300)  # seconds to connect, and to wait for each piece of the body


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


class Body:
    """The response body as a binary stream (Content-Encoding undone, the file's own compression kept);
    a connection that breaks half-way raises BuildError like any other failed download."""

    def __init__(self, url: str, raw):
        self._url = url
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        import urllib3

        try:
            return self._raw.read(None if n is None or n < 0 else n)
        except urllib3.exceptions.HTTPError as e:
            raise BuildError(f"failed to fetch {self._url}: {e}") from None

    def readable(self) -> bool:
        return True


@contextmanager
def open_url(url: str) -> Iterator[tuple[Body, dict]]:
    """GET `url`; yields (body stream, response headers). An error status is a BuildError."""
    import requests  # only when something is downloaded

    try:
        response = requests.get(url, stream=True, timeout=TIMEOUT)
    except requests.RequestException as e:
        raise BuildError(f"failed to fetch {url}: {e}") from None
    with response:
        if response.status_code >= 400:
            raise BuildError(f"failed to fetch {url}: HTTP {response.status_code}")
        response.raw.decode_content = True
        yield Body(url, response.raw), response.headers


@dataclass
class Download:
    path: Path      # the file, in a new directory of its own
    name: str       # the name ADD gives it: the last part of the URL's path
    mtime: float    # from Last-Modified when the server sends it, else now
    digest: str     # sha256 of the content


def download(url: str, into: Path, checksum: str = "") -> Download:
    """ADD <url>: fetch into a new directory under `into`; `checksum` ("sha256:...") must match if given."""
    name = posixpath.basename(urlparse(url).path) or "__unnamed__"
    if name in (".", "/"):
        name = "__unnamed__"
    dest = Path(tempfile.mkdtemp(dir=into)) / "download"
    h = hashlib.sha256()
    with open_url(url) as (body, headers), open(dest, "wb") as f:
        while chunk := body.read(CHUNK):
            h.update(chunk)
            f.write(chunk)
        modified = headers.get("Last-Modified")
    digest = "sha256:" + h.hexdigest()
    if checksum and checksum != digest:
        raise BuildError(f"digest mismatch for {url}: expected {checksum}, got {digest}")
    mtime = time.time()
    if modified:
        import email.utils  # ~20 ms, and only a download needs it: not every build, which imports this module

        try:
            mtime = email.utils.parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            pass
    os.chmod(dest, 0o600)
    os.utime(dest, (mtime, mtime))
    return Download(dest, name, mtime, digest)
