"""Image references as docker reads them: "[DOMAIN/]PATH[:TAG][@DIGEST]".

A name without a domain is on Docker Hub ("docker.io"), and a one-component Hub name is in "library/":
"busybox" is "docker.io/library/busybox:latest". The first component is a domain only if it has a "." or
a ":" (a port), or is "localhost"; "index.docker.io" is another spelling of "docker.io". The familiar form
(what `images` shows and what names an image in the store) leaves out "docker.io/" and "library/" again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from builder.errors import BuildError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_ID_RE = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_MAX = 255


@dataclass(frozen=True)
class Reference:
    domain: str          # "docker.io", "127.0.0.1:5000", ...
    path: str            # "library/busybox"
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name: "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as docker shows it: "busybox", "user/app", "127.0.0.1:5000/app"."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and path.count("/") == 1:
                path = path[len(OFFICIAL_PREFIX):]
            return path
        return self.name

    @property
    def store_name(self) -> str:
        """familiar "name:tag" (":latest" when the reference has neither tag nor digest)."""
        return f"{self.familiar_name}:{self.tag or 'latest'}"

    @property
    def ref(self) -> str:
        """What a manifest is fetched by: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str | None) -> "Reference":
        return Reference(self.domain, self.path, tag, self.digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def familiar(self) -> str:
        out = self.familiar_name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and not first.startswith("[") and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; ":latest" is added when there is neither tag nor digest (unless
    default_tag is False). Every refusal is a BuildError naming the reference and what is wrong."""
    if not isinstance(text, str) or not text:
        raise BuildError("invalid reference format: the reference is empty")
    if _ID_RE.match(text):
        raise BuildError(f"invalid repository name ({text}): cannot specify 64-byte hexadecimal strings")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST_RE.match(digest):
            raise BuildError(f"invalid reference format: {text!r}: bad digest {digest!r} "
                             f"(want sha256:<64 hex digits>)")
        algorithm, _, hexpart = digest.partition(":")
        if algorithm == "sha256" and len(hexpart) != 64:
            raise BuildError(f"invalid reference format: {text!r}: bad digest {digest!r} (a sha256 digest has 64 hex digits)")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise BuildError(f"invalid reference format: {text!r}: bad tag {tag!r} "
                             f"(letters, digits, _ . -, at most 128, not starting with . or -)")
    if not rest:
        raise BuildError(f"invalid reference format: {text!r}: the repository name is empty")
    domain, path = _split_domain(rest)
    if not _DOMAIN_RE.match(domain):
        raise BuildError(f"invalid reference format: {text!r}: bad registry host {domain!r}")
    if path != path.lower() and _PATH_RE.match(path.lower()):
        raise BuildError(f"invalid reference format: {text!r}: repository name must be lowercase")
    if not _PATH_RE.match(path):
        raise BuildError(f"invalid reference format: {text!r}: bad repository name {path!r} (lower-case "
                         f"letters and digits, separated by . _ __ or -, components joined by /)")
    if len(domain) + 1 + len(path) > NAME_TOTAL_MAX:
        raise BuildError(f"invalid reference format: {text!r}: repository name longer than {NAME_TOTAL_MAX}")
    if tag is None and digest is None and default_tag:
        tag = "latest"
    return Reference(domain, path, tag, digest)


def parse_repository(text: str) -> Reference:
    """A repository name without tag or digest (as `push` of all tags or `search` take it)."""
    ref = parse(text, default_tag=False)
    if ref.tag or ref.digest:
        raise BuildError(f"invalid repository name {text!r}: no tag or digest here")
    return ref


def split_search_term(text: str) -> tuple[str, str]:
    """`search`'s TERM -> (registry, what to look for): "HOST[:PORT]/busy" searches that registry for
    "busy" (the first part names a registry when it has a "." or ":" or is "localhost", as docker reads
    it); anything else ("busybox", "bitnami/redis") searches Docker Hub, "library/" dropped."""
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, term = first, rest
    else:
        domain, term = DEFAULT_DOMAIN, text
    if domain in (LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io"):
        domain = DEFAULT_DOMAIN
    if not _DOMAIN_RE.match(domain):
        raise BuildError(f"invalid registry in search term {text!r}")
    if domain == DEFAULT_DOMAIN and term.startswith(OFFICIAL_PREFIX):
        term = term[len(OFFICIAL_PREFIX):]
    return domain, term


def registry_host(text: str) -> str:
    """A registry as `login`/`logout` name it ("host[:port]", maybe with a scheme and path, or a Hub
    alias) -> the host[:port] key used for it ("docker.io" for Docker Hub)."""
    host = text.strip()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0]
    if host in (LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io", DEFAULT_DOMAIN, ""):
        return DEFAULT_DOMAIN
    if not _DOMAIN_RE.match(host):
        raise BuildError(f"invalid registry {text!r}: want HOST[:PORT]")
    return host
