"""search: a registry's search API (`GET /v1/search?q=TERM&n=LIMIT`, as Docker Hub answers it at
index.docker.io) where it has one; otherwise (distribution and most private registries have none) its
catalog (`GET /v2/_catalog`, page by page) filtered by the term."""

from __future__ import annotations

from dataclasses import dataclass

from builder.errors import BuildError
from builder.registry.client import NotFound, Registry
from builder.registry.reference import DEFAULT_DOMAIN, split_search_term

HUB_INDEX = "https://index.docker.io"
CATALOG_PAGE = 100


@dataclass
class Result:
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


def search(text: str, limit: int, registry: Registry | None = None) -> list[Result]:
    """Up to `limit` repositories matching `text` ("TERM" on Docker Hub, "HOST[:PORT]/TERM" elsewhere)."""
    domain, term = split_search_term(text)
    registry = registry or Registry(domain)
    found = _search_api(registry, domain, term, limit)
    if found is None:
        if domain == DEFAULT_DOMAIN:
            raise BuildError("Docker Hub's search API (index.docker.io/v1/search) did not answer")
        found = _catalog(registry, domain, term, limit)
    return found[:limit]


def _search_api(registry: Registry, domain: str, term: str, limit: int) -> list[Result] | None:
    """The results of /v1/search, or None if the registry has no such API (404, or refused)."""
    url = f"{HUB_INDEX if domain == DEFAULT_DOMAIN else registry.base}/v1/search"
    r = registry.request("GET", url, params={"q": term, "n": str(limit)}, ok=(200, 401, 403, 404, 405),
                         what=f"search on {domain}")
    try:
        if r.status_code != 200:
            return None
        try:
            body = r.json()
        except ValueError:
            return None  # something else answers that path: no search API
    finally:
        r.close()
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise BuildError(f"{domain}: malformed search results")
    out = []
    for item in results:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BuildError(f"{domain}: malformed search results")
        stars = item.get("star_count")
        out.append(Result(item["name"], str(item.get("description") or ""),
                          stars if isinstance(stars, int) and not isinstance(stars, bool) else 0,
                          item.get("is_official") is True, item.get("is_automated") is True))
    return out


def _catalog(registry: Registry, domain: str, term: str, limit: int) -> list[Result]:
    registry.want("catalog", "*", kind="registry")
    found: list[Result] = []
    url: str | None = f"/v2/_catalog?n={CATALOG_PAGE}"
    while url and len(found) < limit:
        try:
            r = registry.request("GET", url, what=f"catalog of {domain}")
        except NotFound:
            raise BuildError(f"{domain} has neither a search API nor a catalog") from None
        try:
            repos = r.json().get("repositories") or []
        except (ValueError, AttributeError):
            raise BuildError(f"{domain}: the catalog is not JSON") from None
        finally:
            r.close()
        found += [Result(f"{domain}/{name}") for name in repos if isinstance(name, str) and term in name]
        url = r.links.get("next", {}).get("url")
    return found
