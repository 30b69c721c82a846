"""An OCI runtime bundle from an image: rootfs/ with the layers applied, and config.json made from the
image config the way the OCI image spec's conversion rules and docker do it.

    args  = Entrypoint + Cmd             env  = Env (+ default PATH, + HOME of the user, when missing)
    cwd   = WorkingDir or "/"            user = User ("" = root; uid, name, uid:gid, name:group), with
                                                additionalGids from /etc/group membership when no group
                                                is given (as runc's GetExecUser / docker do)
    annotations: org.opencontainers.image.{os,architecture,author,created,stopSignal,exposedPorts}, Labels
Everything else comes from oci_runtime.specgen.default_spec(args=..., terminal=False).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from builder.errors import BuildError
from builder.bundle.rootfs import materialize
from builder.image.store import Image, ImageStore
from builder.image.tarsafe import read_in_root
from builder.users import ExecUser

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_ID = 2**32 - 2


def _rows(rootfs: Path, path: str) -> list[list[str]]:
    data = read_in_root(rootfs, path)
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _number(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        if value > _MAX_ID:
            raise BuildError(f"user or group id {value} is out of range")
        return value
    return None


def resolve_user(rootfs: Path, spec: str) -> ExecUser:
    """Resolve an image's User ("", "uid", "name", "uid:gid", "name:group") against the rootfs's own
    /etc/passwd and /etc/group (read without following symlinks out of the rootfs)."""
    user_arg, _, group_arg = (spec or "").partition(":")
    passwd = [r for r in _rows(rootfs, "etc/passwd") if len(r) >= 4]
    uid_num = _number(user_arg) if user_arg else 0
    entry = None
    for row in passwd:
        if (uid_num is not None and row[2] == str(uid_num)) or (user_arg and row[0] == user_arg):
            entry = row
            break
    if entry is None and uid_num is None:
        raise BuildError(f"unable to find user {user_arg}: no matching entries in passwd file")
    try:
        uid = int(entry[2]) if entry else uid_num
        gid = int(entry[3]) if entry else 0
    except ValueError:
        raise BuildError(f"malformed passwd entry for {user_arg or 'root'} in the image") from None
    home = (entry[5] if entry and len(entry) > 5 and entry[5] else "/")
    groups = [r for r in _rows(rootfs, "etc/group") if len(r) >= 3]
    additional: list[int] = []
    if group_arg:
        gid_num = _number(group_arg)
        for row in groups:
            if (gid_num is not None and row[2] == str(gid_num)) or row[0] == group_arg:
                gid = int(row[2])
                break
        else:
            if gid_num is None:
                raise BuildError(f"unable to find group {group_arg}: no matching entries in group file")
            gid = gid_num
    elif entry is not None:
        # Supplementary groups only in the implicit form: groups listing the user's name as a member.
        for row in groups:
            members = row[3].split(",") if len(row) > 3 else []
            if entry[0] in members and row[2].isdigit() and int(row[2]) not in additional:
                additional.append(int(row[2]))
    return ExecUser(uid, gid, additional, home)


def runtime_spec(image_config: dict, rootfs: Path, *, terminal: bool = False) -> dict:
    """config.json content for running an image whose rootfs is at `rootfs` (used for user lookup)."""
    from oci_runtime.specgen import default_spec

    cfg = image_config.get("config") or {}
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not args:
        raise BuildError("no command specified: the image has neither Entrypoint nor Cmd")
    spec = default_spec(args=args, terminal=terminal)
    process = spec["process"]
    user = resolve_user(Path(rootfs), cfg.get("User") or "")
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = user.additional_gids
    env = list(cfg.get("Env") or [])
    names = {e.split("=", 1)[0] for e in env}
    if "PATH" not in names:
        env.insert(0, DEFAULT_PATH)
    if "HOME" not in names:
        env.append(f"HOME={user.home}")
    if terminal and "TERM" not in names:
        env.append("TERM=xterm")
    process["env"] = env
    cwd = cfg.get("WorkingDir") or "/"
    process["cwd"] = cwd if cwd.startswith("/") else "/" + cwd
    annotations = dict(cfg.get("Labels") or {})
    for key, value in (("os", image_config.get("os")), ("architecture", image_config.get("architecture")),
                       ("variant", image_config.get("variant")), ("author", image_config.get("author")),
                       ("created", image_config.get("created")), ("stopSignal", cfg.get("StopSignal")),
                       ("exposedPorts", ",".join(sorted(cfg.get("ExposedPorts") or {})) or None)):
        if value:
            annotations[f"org.opencontainers.image.{key}"] = value
    if annotations:
        spec["annotations"] = annotations
    return spec


def make_bundle(store: ImageStore, ref: str | Image, dest: Path, *, readonly: bool | None = None,
                terminal: bool = False) -> Path:
    """Create dest/rootfs (the image's layers applied, whiteouts honoured, blobs and diff_ids verified)
    and dest/config.json. readonly None keeps default_spec's root.readonly. Returns dest."""
    image = ref if isinstance(ref, Image) else store.resolve(ref)
    dest = Path(dest)
    rootfs = dest / "rootfs"
    if rootfs.exists() and any(rootfs.iterdir()):
        raise BuildError(f"{rootfs} already exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    materialize(store, image, rootfs)
    spec = runtime_spec(image.config, rootfs, terminal=terminal)
    if readonly is not None:
        spec["root"]["readonly"] = readonly
    tmp = dest / ".config.json.tmp"
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    os.replace(tmp, dest / "config.json")
    return dest
