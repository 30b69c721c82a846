"""Registry credentials and the WWW-Authenticate challenge flow.

Credentials live where docker keeps them: $DOCKER_CONFIG/config.json (default ~/.docker/config.json).
"auths" maps a registry to {"auth": base64("user:pass")}; "credHelpers" maps a registry to a helper NAME
and "credsStore" names one for every registry: then `docker-credential-NAME get|store|erase` is run with
docker's protocol (the server URL, or a JSON record, on stdin; JSON on stdout). Docker Hub's key is
"https://index.docker.io/v1/".

A registry answers an unauthenticated request with 401 and a challenge: `Basic realm=...` (send the
credentials) or `Bearer realm=URL,service=S,scope=...` (get a token from URL, with the credentials if we
have some, anonymously if not, for the scopes the operation needs, and send it).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError
from builder.registry.reference import DEFAULT_DOMAIN, registry_host

HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def _load_config() -> dict:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise BuildError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise BuildError(f"cannot read {path}: not a JSON object")
    return data


def _save_config(data: dict) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent="\t")
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _server_key(host: str) -> str:
    return HUB_KEY if host == DEFAULT_DOMAIN else host


def _matching_key(auths: dict, host: str) -> str | None:
    for key in auths:
        try:
            if registry_host(key) == host:
                return key
        except BuildError:
            continue
    return None


def _helper_for(config: dict, host: str) -> str | None:
    helpers = config.get("credHelpers") or {}
    key = _matching_key(helpers, host)
    if key is not None:
        return helpers[key]
    return config.get("credsStore") or None


def _run_helper(name: str, action: str, data: str) -> str:
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise BuildError(f"credential helper {program} is not installed (named in {config_path()})")
    proc = subprocess.run([path, action], input=data, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        message = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
        raise _HelperError(message[0] if message else f"{program} {action} failed")
    return proc.stdout


class _HelperError(BuildError):
    pass


def get_credentials(host: str) -> Credentials | None:
    """The stored credentials for a registry host ("docker.io" for Docker Hub), or None."""
    config = _load_config()
    helper = _helper_for(config, host)
    if helper:
        try:
            out = _run_helper(helper, "get", _server_key(host))
        except _HelperError as e:
            if "credentials not found" in str(e).lower():
                return None
            raise BuildError(f"credential helper docker-credential-{helper}: {e}") from None
        try:
            record = json.loads(out)
            return Credentials(record["Username"], record["Secret"])
        except (ValueError, KeyError, TypeError):
            raise BuildError(f"credential helper docker-credential-{helper} gave a malformed answer") from None
    auths = config.get("auths") or {}
    key = _matching_key(auths, host)
    if key is None:
        return None
    entry = auths[key] or {}
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise BuildError(f"malformed auth for {key} in {config_path()}") from None
        if not sep:
            raise BuildError(f"malformed auth for {key} in {config_path()} (want base64 of user:password)")
        return Credentials(user, password)
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"])
    return None


def store_credentials(host: str, creds: Credentials) -> str:
    """Save credentials (in the helper if one is configured); returns where they went."""
    config = _load_config()
    helper = _helper_for(config, host)
    if helper:
        record = {"ServerURL": _server_key(host), "Username": creds.username, "Secret": creds.password}
        try:
            _run_helper(helper, "store", json.dumps(record))
        except _HelperError as e:
            raise BuildError(f"credential helper docker-credential-{helper}: {e}") from None
        config.setdefault("auths", {}).setdefault(_server_key(host), {})
        _save_config(config)
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    key = _matching_key(auths, host) or _server_key(host)
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths[key] = {"auth": token}
    _save_config(config)
    return str(config_path())


def erase_credentials(host: str) -> bool:
    """Forget a registry's credentials; False if there were none."""
    config = _load_config()
    helper = _helper_for(config, host)
    found = False
    if helper:
        try:
            _run_helper(helper, "erase", _server_key(host))
            found = True
        except _HelperError:
            pass
    auths = config.get("auths") or {}
    key = _matching_key(auths, host)
    if key is not None:
        del auths[key]
        _save_config(config)
        found = True
    return found


# --- challenges --------------------------------------------------------------------------------------

_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass
class Challenge:
    scheme: str              # "basic" or "bearer"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="...",service="..."` (one or more, comma-separated) -> challenges."""
    out: list[Challenge] = []
    pos = 0
    header = header or ""
    scheme_re = re.compile(r'\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)(?=\s|$)')
    while pos < len(header):
        m = scheme_re.match(header, pos)
        if not m:
            break
        challenge = Challenge(m.group(1).lower(), {})
        pos = m.end()
        while True:
            p = _PARAM_RE.match(header, pos + len(header[pos:]) - len(header[pos:].lstrip(" ,")))
            if not p:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            challenge.params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = p.end()
        out.append(challenge)
    return out
