"""Reading and checking a bundle's config.json before anything is created."""

from __future__ import annotations

import os

from oci_runtime.process import hooks, namespaces, setup as process
from oci_runtime.jsonio import loads
from oci_runtime.errors import ConfigInvalid


class Bundle:
    def __init__(self, path: str, config: dict, rootfs: str, ns: namespaces.NamespacePlan):
        self.path = path          # absolute bundle directory
        self.config = config
        self.rootfs = rootfs      # absolute, symlinks resolved
        self.ns = ns


def read_json(path: str, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = loads(f.read())
    except FileNotFoundError:
        raise ConfigInvalid(f"{what} not found: {path}") from None
    except ValueError as e:
        raise ConfigInvalid(f"{what} is not valid JSON: {path}: {e}") from None
    except OSError as e:
        raise ConfigInvalid(f"reading {what} {path}: {e.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigInvalid(f"{what} must hold a JSON object: {path}")
    return data


def schema_check(config: dict) -> None:
    """Validate against spec/config.schema.json with the project's small validator: jsonschema would cost
    more to import than a whole `runc run` takes."""
    from oci_runtime.validate import validate_config

    validate_config(config)


def load_bundle(bundle_dir: str) -> Bundle:
    bundle_dir = os.path.abspath(bundle_dir or ".")
    if not os.path.isdir(bundle_dir):
        raise ConfigInvalid(f"bundle directory {bundle_dir} does not exist")
    config = read_json(os.path.join(bundle_dir, "config.json"), "config.json")
    schema_check(config)
    root = (config.get("root") or {}).get("path")
    if not root:
        raise ConfigInvalid("config.json: root.path is required")
    rootfs = os.path.realpath(os.path.join(bundle_dir, root))
    if not os.path.isdir(rootfs):
        raise ConfigInvalid(f"rootfs ({rootfs}) does not exist")
    proc = config.get("process")
    if proc is not None:  # optional at create (the spec requires it only to start a process)
        process.check(proc)
    ns = namespaces.plan(config.get("linux") or {})
    namespaces.check_compatible(config, ns)
    hooks.check_paths(config.get("hooks"))
    for i, mount in enumerate(config.get("mounts") or []):
        if not mount.get("destination"):
            raise ConfigInvalid(f"mounts[{i}].destination is required")
    return Bundle(bundle_dir, config, rootfs, ns)
