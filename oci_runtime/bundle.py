"""Reading and checking a bundle's config.json before anything is created."""

from __future__ import annotations

import os

from oci_runtime.process import hooks, namespaces, setup as process
from oci_runtime.jsonio import load_file
from oci_runtime.errors import ConfigInvalid


class Bundle:
    def __init__(self, path: str, config: dict, rootfs: str, ns: namespaces.NamespacePlan):
        self.path = path          # absolute bundle directory
        self.config = config
        self.rootfs = rootfs      # absolute, symlinks resolved
        self.ns = ns


MAX_CONFIG_BYTES = 16 << 20  # far above any real config.json, far below what would hurt


def read_json(path: str, what: str, *, pipes: bool = False) -> dict:
    """A JSON object from a file a user gave us (config.json, process.json): one clear error otherwise.
    pipes: a pipe will do as well (exec --process <(...), as runc reads it)."""
    try:
        data = load_file(path, MAX_CONFIG_BYTES, pipes=pipes)
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
    """Read and check a bundle, once, before anything is created: every refusal names its field."""
    bundle_dir = os.path.abspath(bundle_dir or ".")
    if not os.path.isdir(bundle_dir):
        raise ConfigInvalid(f"bundle directory {bundle_dir} does not exist")
    config = read_json(os.path.join(bundle_dir, "config.json"), "config.json")
    check_text(config, "")
    schema_check(config)
    rootfs = resolve_rootfs(bundle_dir, (config.get("root") or {}).get("path"))
    proc = config.get("process")
    if proc is not None:  # optional at create (the spec requires it only to start a process)
        process.check(proc)
    ns = namespaces.plan(config.get("linux") or {})
    namespaces.check_compatible(config, ns)
    hooks.check_paths(config.get("hooks"))
    check_mounts(config.get("mounts") or [])
    check_devices((config.get("linux") or {}).get("devices") or [])
    return Bundle(bundle_dir, config, rootfs, ns)


def resolve_rootfs(bundle_dir: str, root: str | None) -> str:
    """The rootfs directory, resolved once: runc's rule, it must not be reached through a symlink (the
    bundle directory itself may be), and it can never be the host's root."""
    if not root:
        raise ConfigInvalid("config.json: root.path is required")
    wanted = os.path.normpath(os.path.join(os.path.realpath(bundle_dir), root))
    real = os.path.realpath(wanted)
    if real != wanted:
        raise ConfigInvalid(f"config.json: root.path: rootfs {wanted} is a symlink or passes through one (to {real})")
    if real == "/":
        raise ConfigInvalid("config.json: root.path: the host's / cannot be a container's rootfs")
    if not os.path.isdir(real):
        raise ConfigInvalid(f"config.json: root.path: rootfs ({real}) does not exist or is not a directory")
    return real


def check_text(value, where: str) -> None:
    """Every string of the config is text a syscall can take: no NUL byte, no lone surrogate."""
    if isinstance(value, str):
        if "\0" in value:
            raise ConfigInvalid(f"config.json: {where or 'a key'}: contains a NUL byte")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ConfigInvalid(f"config.json: {where or 'a key'}: is not valid UTF-8 text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where)
            check_text(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_text(item, f"{where}[{i}]")


def check_mounts(mounts: list) -> None:
    from oci_runtime.process.rootfs import container_path, proc_mount_problem

    for i, mount in enumerate(mounts):
        dest = mount.get("destination")
        if not dest:
            raise ConfigInvalid(f"config.json: mounts[{i}].destination is required")
        normalised = container_path(dest)
        if normalised == "/":
            raise ConfigInvalid(f"config.json: mounts[{i}].destination: {dest!r} would cover the container's root")
        problem = proc_mount_problem(normalised, mount)
        if problem:
            raise ConfigInvalid(f"config.json: mounts[{i}].destination: {dest!r}: {problem}")


MAX_DEVICE_NUMBER = 0xFFFFFFFF  # major and minor are 32-bit in dev_t's encoding


def check_devices(devices: list) -> None:
    for i, device in enumerate(devices):
        path = device.get("path") or ""
        if not path.startswith("/") or os.path.normpath(path) in ("/", "//"):
            raise ConfigInvalid(f"config.json: linux.devices[{i}].path: {path!r} is not an absolute path to a file")
        for key in ("major", "minor"):
            number = device.get(key, 0)
            if not 0 <= number <= MAX_DEVICE_NUMBER:
                raise ConfigInvalid(f"config.json: linux.devices[{i}].{key}: {number} is out of range (0 to {MAX_DEVICE_NUMBER})")
