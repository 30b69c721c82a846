"""The container's OCI bundle (CONTAINER/bundle/config.json): the image's config with the run options
applied the way docker applies them, turned into a spec by builder.bundle.spec (the one spec builder)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from builder.atomicfile import atomic_file
from builder.bundle.spec import image_spec


def effective_image_config(image_config: dict, options: dict) -> dict:
    """The image config with run's overrides: --entrypoint (which drops the image's Cmd), CMD, -e, -w, -u."""
    merged = copy.deepcopy(image_config)
    cfg = merged.setdefault("config", {}) or {}
    merged["config"] = cfg
    if options.get("Entrypoint") is not None:
        cfg["Entrypoint"] = options["Entrypoint"]
        cfg["Cmd"] = []
    if options.get("Cmd"):
        cfg["Cmd"] = options["Cmd"]
    env = {e.split("=", 1)[0]: e for e in cfg.get("Env") or []}
    for e in options.get("Env") or []:
        env[e.split("=", 1)[0]] = e
    cfg["Env"] = list(env.values())
    if options.get("WorkingDir"):
        cfg["WorkingDir"] = options["WorkingDir"]
    if options.get("User"):
        cfg["User"] = options["User"]
    return merged


def write_bundle(container_dir: Path, record: dict, image_config: dict, rootfs: Path) -> Path:
    """CONTAINER/bundle/config.json for the record, whose Config holds the resolved process (made by
    effective_image_config at create) and HostConfig the rest. Returns the bundle dir."""
    config, host = record["Config"], record["HostConfig"]
    resolved = copy.deepcopy(image_config)
    resolved["config"] = dict(resolved.get("config") or {},
                              **{k: config.get(k) for k in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User")})
    spec = image_spec(resolved, rootfs, terminal=bool(config.get("Tty")))
    spec["root"] = {"path": os.fspath(rootfs), "readonly": bool(host.get("ReadonlyRootfs"))}
    spec["hostname"] = config.get("Hostname") or record["Id"][:12]
    for m in record.get("Mounts") or []:
        spec["mounts"].append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                               "options": ["rbind"] + ([] if m.get("RW", True) else ["ro"])})
    if host.get("NetworkMode") == "host":
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    bundle = Path(container_dir) / "bundle"
    bundle.mkdir(exist_ok=True)
    with atomic_file(bundle / "config.json", durable=False) as f:
        f.write(json.dumps(spec, indent=1).encode())
    return bundle
