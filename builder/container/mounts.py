"""`--mount` and `--tmpfs`, read as docker reads them, and the tmpfs mounts they add to the spec.

--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=...][,volume-nocopy]
[,tmpfs-size=...][,tmpfs-mode=...] (src/dst/destination/ro as aliases; the type defaults to volume). Unlike
-v, a bind mount's source must exist. A bind's propagation (docker's default rprivate) goes into its OCI
options; a shared or slave one needs its host source on a shared (or slave) mount, as docker checks, and
makes the container's root propagation rshared (rslave), so that mounts travel through the bind.
--tmpfs /PATH[:OPTIONS] is kept as docker keeps it (HostConfig.Tmpfs) and is not in .Mounts; a --mount
tmpfs is in both. tmpfs mounts are noexec, nosuid and nodev unless the options say otherwise."""

from __future__ import annotations

import os

from builder.container.records import ContainerError

_TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


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
    propagation = fields.get("bind-propagation")
    if "bind-propagation" in fields:
        if kind != "bind":
            raise ContainerError(f'invalid mount config for type "{kind}": field BindOptions must not be specified')
        if propagation not in PROPAGATIONS:
            raise ContainerError(f"invalid value for bind-propagation: {propagation} (one of {', '.join(PROPAGATIONS)})")
        host["BindOptions"] = {"Propagation": propagation}
    if "volume-nocopy" in fields:
        if kind != "volume":
            raise ContainerError(f'invalid mount config for type "{kind}": field VolumeOptions must not be specified')
        if _bool("volume-nocopy", fields["volume-nocopy"]):
            host["VolumeOptions"] = {"NoCopy": True}
    if kind == "bind":
        if not source.startswith("/"):
            raise ContainerError(f'invalid mount config for type "bind": invalid mount path: {source!r} '
                                 "mount path must be absolute")
        if not os.path.exists(source):
            raise ContainerError(f'invalid mount config for type "bind": bind source path does not exist: {source}')
        return ({"Type": "bind", "Source": os.path.normpath(source), "Destination": os.path.normpath(target),
                 "Mode": mode, "RW": not readonly, "Propagation": propagation or "rprivate"},
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


def no_copy(doc: dict, mount: dict) -> bool:
    """A volume the user asked not to fill from the image (-v NAME:/PATH:nocopy, --mount volume-nocopy)."""
    if "nocopy" in (mount.get("Mode") or "").split(","):
        return True
    return any(m.get("Type") == "volume" and os.path.normpath(m.get("Target") or "") == mount["Destination"]
               and (m.get("VolumeOptions") or {}).get("NoCopy")
               for m in (doc.get("HostConfig") or {}).get("Mounts") or [])


def bind_options(mount: dict) -> list[str]:
    """The OCI options of a bind or volume mount: recursive, its propagation, read-only if asked."""
    return ["rbind", mount.get("Propagation") or "rprivate"] + ([] if mount.get("RW", True) else ["ro"])


def root_propagation(mounts: list[dict]) -> str | None:
    """The rootfs propagation shared or slave binds need (None: the runtime's default), after docker's check
    that each such bind's host source sits on a mount that can pass mounts on."""
    from oci_runtime import mountinfo

    wanted = None
    for m in mounts:
        kind = (m.get("Propagation") or "").lstrip("r")
        if m.get("Type") != "bind" or kind not in ("shared", "slave"):
            continue
        host = mountinfo.containing(m["Source"])
        if kind == "shared":
            if not host.shared:
                raise ContainerError(f"path {m['Source']} is mounted on {host.mountpoint} but it is not a shared mount")
            wanted = "rshared"
        else:
            if not (host.shared or host.slave):
                raise ContainerError(f"path {m['Source']} is mounted on {host.mountpoint} but it is not a shared "
                                     "or slave mount")
            wanted = wanted or "rslave"
    return wanted
