"""RUN --mount=...: the CSV value docker reads, checked before expansion and parsed after it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from builder.dockerfile.suggest import did_you_mean
from builder.errors import BuildError
from oci_runtime.units import go_quote, ram_in_bytes


MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
MOUNT_SHARING = ("shared", "private", "locked")
_MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode", "uid",
               "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")


@dataclass
class RunMount:
    """One `RUN --mount=...` after expansion, with docker's defaults filled in.

    readonly defaults to False for cache and tmpfs mounts and True for the others;
    size is tmpfs's limit in bytes (0: none); mode/uid/gid (cache, secret, ssh) are None
    when not given.  Where the mount goes (target relative to WORKDIR, default cache
    id = cleaned target) is the engine's business.
    """

    type: str = "bind"
    source: str = ""
    target: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = ""
    required: bool = False
    size: int = 0
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None


def _go_bool(value: str) -> bool:
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(value)


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> RunMount:
    """A `--mount` value (CSV of key=value) as docker reads it; expand expands each value.

    Raises BuildError with docker's messages for unknown keys, types, sharing modes and
    values of the wrong kind.
    """
    mount = RunMount()
    auto_readonly = True
    for item in _csv_fields(spec):
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro"):
                mount.readonly, auto_readonly = True, False
            elif key in ("readwrite", "rw"):
                mount.readonly, auto_readonly = False, False
            elif key == "required":
                if mount.type not in ("secret", "ssh"):
                    raise BuildError(f"unexpected key '{key}' for mount type '{mount.type}'")
                mount.required = True
            else:
                raise BuildError(f"invalid field '{item}' must be a key=value pair")
            continue
        if expand is not None:
            value = expand(value)
        try:
            if key == "type":
                if value.lower() not in MOUNT_TYPES:
                    raise BuildError(f"unsupported mount type {go_quote(value)}{did_you_mean(value, MOUNT_TYPES)}")
                mount.type = value.lower()
            elif key == "from":
                mount.from_ = value
            elif key in ("source", "src"):
                mount.source = value
            elif key in ("target", "dst", "destination"):
                mount.target = value
            elif key in ("readonly", "ro"):
                mount.readonly, auto_readonly = _go_bool(value), False
            elif key in ("readwrite", "rw"):
                mount.readonly, auto_readonly = not _go_bool(value), False
            elif key == "required":
                if mount.type not in ("secret", "ssh"):
                    raise BuildError(f"unexpected key '{key}' for mount type '{mount.type}'")
                mount.required = _go_bool(value)
            elif key == "size":
                if mount.type != "tmpfs":
                    raise BuildError(f"unexpected key '{key}' for mount type '{mount.type}'")
                mount.size = ram_in_bytes(value)
            elif key == "id":
                mount.id = value
            elif key == "sharing":
                if value.lower() not in MOUNT_SHARING:
                    raise BuildError(f"unsupported sharing value {go_quote(value)}{did_you_mean(value, MOUNT_SHARING)}")
                mount.sharing = value.lower()
            elif key in ("mode", "uid", "gid"):
                digits = "[0-7]+" if key == "mode" else "[0-9]+"
                number = int(value, 8 if key == "mode" else 10) if re.fullmatch(digits, value) else -1
                if not 0 <= number < 2**32:
                    raise BuildError(f"invalid value {value} for {key}")
                setattr(mount, key, number)
            elif key == "env":
                mount.env = value
            else:
                raise BuildError(f"unexpected key '{key}' in '{item}'{did_you_mean(key, _MOUNT_KEYS)}")
        except ValueError:
            raise BuildError(f"invalid value for {key}: {value}") from None
    if mount.type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if getattr(mount, key) is not None:
                raise BuildError(f"{key} not allowed for {go_quote(mount.type)} type mounts")
    if auto_readonly:
        mount.readonly = mount.type not in ("cache", "tmpfs")
    if mount.type == "secret":
        if mount.from_:
            raise BuildError("secret mount should not have a from")
        if mount.sharing:
            raise BuildError("secret mount should not define sharing")
        if not (mount.source or mount.target or mount.id):
            raise BuildError("invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise BuildError("both source and id can't be set")
    if mount.sharing and mount.type != "cache":
        raise BuildError(f"invalid cache sharing set for {mount.type} mount")
    return mount


def check_mount_syntax(spec: str) -> None:
    """What docker checks of a --mount value before expansion: CSV syntax, and no variables in from=."""
    for item in _csv_fields(spec):
        key, has_value, value = item.partition("=")
        if has_value and key.lower() == "from":
            dollar = value.find("$")
            if dollar != -1 and dollar != len(value) - 1:
                raise BuildError(f"'{key.lower()}' doesn't support variable expansion, define alias stage instead")


def _csv_fields(text: str) -> list[str]:
    """One CSV record (the --mount syntax), with Go encoding/csv's strict quoting rules."""
    fields: list[str] = []
    pos, n = 0, len(text)
    while True:
        if pos < n and text[pos] == '"':
            pos += 1
            value: list[str] = []
            while True:
                close = text.find('"', pos)
                if close == -1:
                    raise BuildError(f'failed to parse csv mounts: extraneous or missing " in quoted-field: {text}')
                value.append(text[pos:close])
                pos = close + 1
                if pos < n and text[pos] == '"':  # "" is a quote inside quotes
                    value.append('"')
                    pos += 1
                    continue
                break
            if pos < n and text[pos] != ",":
                raise BuildError(f'failed to parse csv mounts: extraneous or missing " in quoted-field: {text}')
            fields.append("".join(value))
        else:
            comma = text.find(",", pos)
            end = n if comma == -1 else comma
            if '"' in text[pos:end]:
                raise BuildError(f'failed to parse csv mounts: bare " in non-quoted-field: {text}')
            fields.append(text[pos:end])
            pos = end
        if pos >= n:
            return fields
        pos += 1  # the comma
