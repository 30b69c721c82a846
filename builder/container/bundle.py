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


# docker's default capability set (the runtime's own default is runc's smaller one)
DOCKER_DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def capability_set(cap_add: list[str], cap_drop: list[str]) -> list[str]:
    """docker's defaults with --cap-add/--cap-drop applied (names with or without CAP_; --cap-drop ALL).
    The runtime refuses names it does not know."""
    def norm(name: str) -> str:
        name = name.upper()
        return name if name == "ALL" or name.startswith("CAP_") else "CAP_" + name

    adds, drops = [norm(c) for c in cap_add], [norm(c) for c in cap_drop]
    caps = [] if "ALL" in drops else [c for c in DOCKER_DEFAULT_CAPS if c not in drops]
    return list(dict.fromkeys(caps + adds))


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
    caps = capability_set(host.get("CapAdd") or [], host.get("CapDrop") or [])
    spec["process"]["capabilities"] = {kind: list(caps) for kind in ("bounding", "effective", "permitted")}
    spec["process"]["noNewPrivileges"] = False  # docker's default: setuid programs work
    resources = spec["linux"].setdefault("resources", {})
    if host.get("Memory"):
        resources["memory"] = {"limit": host["Memory"]}
    if host.get("NanoCpus"):
        period = 100000
        resources["cpu"] = {"period": period, "quota": host["NanoCpus"] * period // 10**9}
    if host.get("PidsLimit"):
        resources["pids"] = {"limit": host["PidsLimit"]}
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
