"""One registry's /v2/ API over requests: where it is (https, or http for loopback and insecure
registries), its CA, authentication, and retries.

TLS: https by default, verified against the system CAs, or against /etc/docker/certs.d/HOST[:PORT]/ca.crt
when there is one (client.cert/client.key beside it are sent as a client certificate). http for
localhost, 127.0.0.0/8 and ::1, and for the registries listed (comma-separated host[:port] or CIDR
ranges) in $PYDOCK_INSECURE_REGISTRIES. $PYDOCK_CERTS_DIR replaces /etc/docker/certs.d.

Retries: a dropped connection or a 5xx answer is retried (3 tries in all, with backoff) for requests
that can be repeated (a blob download goes on where it stopped: see pull.fetch_blob).

Bearer tokens are kept in memory for the rest of the command, per token server, service, scopes and
user, until shortly before they expire: a pull of many blobs asks the token server once, and every
Registry of the command (a build's several FROMs, a push after a pull) shares them. Like docker, pydock
never writes them to disk: a token is a credential of its own, and a new command asks again.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urljoin

from builder.errors import BuildError
from builder.registry import auth
from builder.registry.reference import DEFAULT_DOMAIN

TIMEOUT = (30, 300)
TRIES = 3
BACKOFF = 0.5
DEFAULT_CERTS_DIR = "/etc/docker/certs.d"
HUB_API = "registry-1.docker.io"


class RegistryError(BuildError):
    pass


class NotFound(RegistryError):
    pass


class Unavailable(RegistryError):
    """The registry could not be reached, or answered 5xx, on every try."""


_TOKENS: dict[tuple, tuple[str, float]] = {}   # (realm, service, scopes, user, password) -> (token, expiry)
_TOKENS_LOCK = threading.Lock()
TOKEN_DEFAULT_LIFETIME = 60   # seconds, when the token server does not say (the distribution spec's default)
TOKEN_MARGIN = 10             # a token this close to its expiry is not used again


def insecure_registries() -> set[str]:
    return {h.strip() for h in os.environ.get("PYDOCK_INSECURE_REGISTRIES", "").split(",") if h.strip()}


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") and ":" in host else host
    name = name.strip("[]")
    return name in ("localhost", "::1") or name.startswith("127.")


def _in_network(host: str, entries: set[str]) -> bool:
    """Whether an address host ("10.1.2.3:5000") is in one of the CIDR entries ("10.0.0.0/8")."""
    import ipaddress

    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    for entry in entries:
        if "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def scheme_for(host: str) -> str:
    """"http" for loopback and for registries in $PYDOCK_INSECURE_REGISTRIES (HOST, HOST:PORT or an
    address range such as 10.0.0.0/8), else "https"."""
    insecure = insecure_registries()
    if _is_loopback(host) or host in insecure or host.split(":")[0] in insecure or _in_network(host, insecure):
        return "http"
    return "https"


def _tls_for(host: str):
    """(verify, cert) for requests: certs.d/HOST/ca.crt (else the system CAs) and a client cert."""
    certs = Path(os.environ.get("PYDOCK_CERTS_DIR") or DEFAULT_CERTS_DIR) / host
    verify: bool | str = True
    cert = None
    if (certs / "ca.crt").is_file():
        verify = str(certs / "ca.crt")
    if (certs / "client.cert").is_file() and (certs / "client.key").is_file():
        cert = (str(certs / "client.cert"), str(certs / "client.key"))
    return verify, cert


def _error_message(response) -> str:
    try:
        errors = response.json().get("errors") or []
        if errors:
            e = errors[0]
            return f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        pass
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


class Registry:
    """A client of one registry for operations on some repositories (their names, e.g. "library/x",
    and the actions wanted on each, make up a bearer token's scope)."""

    def __init__(self, host: str, credentials: auth.Credentials | None = None, *, use_stored: bool = True):
        import requests

        self.host = host
        self.api_host = HUB_API if host == DEFAULT_DOMAIN else host
        self.base = f"{scheme_for(host)}://{self.api_host}"
        self.session = requests.Session()
        # given with every request: a session-wide verify loses to $REQUESTS_CA_BUNDLE in requests
        self._verify, self._cert = _tls_for(self.api_host)
        self.session.headers["User-Agent"] = "pydock"
        self._credentials = credentials
        self._use_stored = use_stored and credentials is None
        self._auth_header: str | None = None
        self._scopes: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._auth_lock = threading.Lock()  # one thread answers a challenge; the others wait and reuse it

    # -- auth

    @property
    def credentials(self) -> auth.Credentials | None:
        if self._credentials is None and self._use_stored:
            self._credentials = auth.get_credentials(self.host)
            self._use_stored = False
        return self._credentials

    def want(self, repository: str, *actions: str, kind: str = "repository") -> None:
        """Ask for `actions` ("pull", "push") on a repository (or another kind of resource, e.g.
        kind="registry" for "catalog") in the next token."""
        with self._lock:
            self._scopes.setdefault(f"{kind}:{repository}", set()).update(actions)

    def _scope_list(self) -> list[str]:
        return [f"{name}:{','.join(sorted(actions))}" for name, actions in sorted(self._scopes.items())]

    def _authenticate(self, response, sent: str | None) -> bool:
        """Answer a 401's challenge to a request sent with Authorization `sent`; True if there is a new
        Authorization header to retry with (another thread may have got one already)."""
        with self._auth_lock:
            with self._lock:
                if self._auth_header != sent:
                    return True
            if sent and sent.startswith("Bearer "):
                _forget_token(sent[len("Bearer "):])  # refused (expired, or too narrow): never sent again
            challenges = auth.parse_challenges(response.headers.get("WWW-Authenticate", ""))
            for challenge in challenges:
                if challenge.scheme == "bearer" and challenge.params.get("realm"):
                    header = "Bearer " + self._token(challenge.params)
                    break
                if challenge.scheme == "basic":
                    creds = self.credentials
                    if creds is None:
                        return False
                    header = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
                    break
            else:
                return False
            with self._lock:
                if header == sent:
                    return False
                self._auth_header = header
            return True

    def _token(self, params: dict[str, str]) -> str:
        import requests

        scopes = self._scope_list()
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in scopes]
        creds = self.credentials
        realm = params["realm"]
        key = (realm, params.get("service"), tuple(scopes), creds and creds.username, creds and creds.password)
        with _TOKENS_LOCK:
            token, expiry = _TOKENS.get(key, ("", 0.0))
        if token and time.monotonic() < expiry:
            return token
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        verify, cert = _tls_for(realm.split("/")[2]) if realm.startswith("https://") else (True, None)
        try:
            r = requests.get(url, auth=(creds.username, creds.password) if creds else None,
                             timeout=TIMEOUT, verify=verify, cert=cert, headers={"User-Agent": "pydock"})
        except requests.RequestException as e:
            raise RegistryError(f"cannot get a token from {realm}: {_reason(e)}") from None
        if r.status_code in (401, 403):
            raise RegistryError(f"{self.host}: unauthorized: the token server refused "
                                f"{'the credentials' if creds else 'anonymous access'}")
        if r.status_code != 200:
            raise RegistryError(f"cannot get a token from {realm}: HTTP {r.status_code}")
        try:
            body = r.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError(f"the token server {realm} sent no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = TOKEN_DEFAULT_LIFETIME
        with _TOKENS_LOCK:
            _TOKENS[key] = (token, time.monotonic() + lifetime - TOKEN_MARGIN)
        return token

    # -- requests

    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    def request(self, method: str, path_or_url: str, *, ok=(200,), stream=False, data=None, headers=None,
                params=None, retry=True, what=None):
        """A request with auth and retries; an answer not in `ok` is a RegistryError (NotFound for 404).
        `data` may be a callable returning a fresh body for each try."""
        import requests

        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        tries = TRIES if retry else 1
        authed_again = False
        attempt = 0
        while True:
            attempt += 1
            h = dict(headers or {})
            if self._auth_header:
                h["Authorization"] = self._auth_header
            body = data() if callable(data) else data
            try:
                r = self.session.request(method, url, headers=h, data=body, params=params, stream=stream,
                                         timeout=TIMEOUT, allow_redirects=True, verify=self._verify,
                                         cert=self._cert)
            except requests.exceptions.SSLError as e:
                raise RegistryError(f"{self.host}: TLS failed ({_short(e)}); for a registry without TLS "
                                    f"add it to PYDOCK_INSECURE_REGISTRIES") from None
            except (requests.ConnectionError, requests.Timeout) as e:
                if attempt < tries and _reason(e) != "the name does not resolve":
                    time.sleep(BACKOFF * 2 ** (attempt - 1))
                    continue
                raise Unavailable(f"cannot reach {self.host}: {_reason(e)}") from None
            finally:
                if hasattr(body, "close"):
                    body.close()
            if r.status_code == 401 and not authed_again:
                authed_again = True
                if self._authenticate(r, h.get("Authorization")):
                    r.close()
                    attempt -= 1
                    continue
            if r.status_code >= 500 and attempt < tries:
                r.close()
                time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            if r.status_code in ok:
                return r
            message = _error_message(r)
            r.close()
            prefix = f"{what}: " if what else ""
            if r.status_code == 404:
                raise NotFound(f"{prefix}not found ({message})")
            if r.status_code in (401, 403):
                raise RegistryError(f"{prefix}{self.host}: access denied ({message}); "
                                    f"{'pydock login ' + self.host + ' first' if self.credentials is None else 'check the credentials'}")
            raise (Unavailable if r.status_code >= 500 else RegistryError)(f"{prefix}{self.host}: {message}")

    def ping(self) -> None:
        """GET /v2/ (authenticating as needed): the registry speaks the v2 API and lets us in."""
        self.request("GET", "/v2/", what=self.host)


def _forget_token(token: str) -> None:
    with _TOKENS_LOCK:
        for key in [k for k, (t, _) in _TOKENS.items() if t == token]:
            del _TOKENS[key]


def _short(e: Exception) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:200] + "..."


def _reason(e: Exception) -> str:
    """Why a connection failed, in a few words rather than urllib3's nested reprs."""
    text = str(e)
    for needle, reason in (("Failed to resolve", "the name does not resolve"),
                           ("Name or service not known", "the name does not resolve"),
                           ("Temporary failure in name resolution", "the name does not resolve"),
                           ("Connection refused", "connection refused"),
                           ("timed out", "timed out"),
                           ("RemoteDisconnected", "the connection was closed"),
                           ("Connection reset", "the connection was reset")):
        if needle in text:
            return reason
    return _short(e)


WORKERS = 3  # blobs moved at once: enough to overlap round trips, few enough for a small registry


def for_each_blob(func, items) -> None:
    """func(item) for every item on a few threads; all of them finish (so nothing is cleaned up under a
    transfer still running) before the first failure is raised."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(func, item) for item in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
