"""`--mount` and `--tmpfs`, read as docker reads them, and the tmpfs mounts they add to the spec.

--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=...][,tmpfs-mode=...]
(src/dst/destination/ro as aliases; the type defaults to volume). Unlike -v, a bind mount's source must
exist. --tmpfs /PATH[:OPTIONS] is kept as docker keeps it (HostConfig.Tmpfs) and is not in .Mounts; a
--mount tmpfs is in both. tmpfs mounts are noexec, nosuid and nodev unless the options say otherwise."""

from __future__ import annotations

import os

from builder.container.records import ContainerError

_TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]


def _bool(key: str, value: str | None) -> bool:
    if value is None or value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise ContainerError(f"invalid value for {key}: {value}")


def parse_mount(spec: str) -> tuple[dict, dict]:
    """One --mount value: (its inspect Mounts entry, its HostConfig.Mounts entry)."""
    from builder.container.volumes import volume_mount
    from builder.volume.store import check_name
    from oci_runtime.units import ram_in_bytes

    fields: dict[str, str | None] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        key = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}.get(key, key)
        if key not in ("type", "source", "target", "readonly", "bind-propagation", "volume-nocopy", "tmpfs-size",
                       "tmpfs-mode"):
            raise ContainerError(f"invalid field '{key}' must be a key=value pair in --mount {spec!r}")
        fields[key] = value if sep else None
    kind = fields.pop("type", None) or "volume"
    target = fields.get("target")
    if not target:
        raise ContainerError(f"invalid mount config: field Target must not be empty in --mount {spec!r}")
    if not target.startswith("/"):
        raise ContainerError(f"invalid mount config: mount path must be absolute: {target}")
    readonly = _bool("readonly", fields["readonly"]) if "readonly" in fields else False
    source = fields.get("source") or ""
    host = {"Type": kind, "Source": source, "Target": target, **({"ReadOnly": True} if readonly else {})}
    mode = "ro" if readonly else ""
    if kind == "bind":
        if not source.startswith("/"):
            raise ContainerError(f'invalid mount config for type "bind": invalid mount path: {source!r} '
                                 "mount path must be absolute")
        if not os.path.exists(source):
            raise ContainerError(f'invalid mount config for type "bind": bind source path does not exist: {source}')
        return ({"Type": "bind", "Source": os.path.normpath(source), "Destination": os.path.normpath(target),
                 "Mode": mode, "RW": not readonly, "Propagation": fields.get("bind-propagation") or "rprivate"},
                host)
    if kind == "volume":
        if source:
            try:
                check_name(source)
            except Exception as e:  # noqa: BLE001 - the volume store's error, worded for --mount
                raise ContainerError(str(e)) from None
        return volume_mount(source or None, target, mode), host
    if kind == "tmpfs":
        if source:
            raise ContainerError('invalid mount config for type "tmpfs": source must not be specified')
        options = {}
        try:
            if fields.get("tmpfs-size"):
                options["SizeBytes"] = ram_in_bytes(fields["tmpfs-size"])
            if fields.get("tmpfs-mode"):
                options["Mode"] = int(fields["tmpfs-mode"], 8)
        except ValueError as e:
            raise ContainerError(f"invalid tmpfs option in --mount {spec!r}: {e}") from None
        if options:
            host["TmpfsOptions"] = options
        return ({"Type": "tmpfs", "Source": "", "Destination": os.path.normpath(target), "Mode": "",
                 "RW": not readonly, "Propagation": ""}, host)
    raise ContainerError(f"invalid mount config: mount type unknown: {kind!r}")


def parse_tmpfs(specs: list[str]) -> dict[str, str]:
    """--tmpfs /PATH[:OPTIONS] values as HostConfig.Tmpfs."""
    out = {}
    for spec in specs:
        path, _, options = spec.partition(":")
        if not path.startswith("/"):
            raise ContainerError(f"invalid tmpfs mount {spec!r}: the path must be absolute")
        out[os.path.normpath(path)] = options
    return out


def tmpfs_spec_mounts(host_config: dict) -> list[dict]:
    """The OCI mounts of a container's --tmpfs and --mount type=tmpfs."""
    mounts = []
    for path, options in (host_config.get("Tmpfs") or {}).items():
        mounts.append(_tmpfs(path, [o for o in options.split(",") if o]))
    for m in host_config.get("Mounts") or []:
        if m.get("Type") == "tmpfs":
            extra = ["ro"] if m.get("ReadOnly") else []
            opts = m.get("TmpfsOptions") or {}
            if opts.get("SizeBytes"):
                extra.append(f"size={opts['SizeBytes']}")
            if opts.get("Mode"):
                extra.append(f"mode={opts['Mode']:o}")
            mounts.append(_tmpfs(m["Target"], extra))
    return mounts


def _tmpfs(path: str, options: list[str]) -> dict:
    return {"destination": os.path.normpath(path), "type": "tmpfs", "source": "tmpfs",
            "options": _TMPFS_DEFAULTS + options}
