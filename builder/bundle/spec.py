"""config.json for a container, made in one place: for an image (`pydock bundle`: the OCI image spec's
conversion rules, as docker applies them) and for a build's RUN steps, which add their sandbox on top.

    args  = Entrypoint + Cmd             env  = Env (+ default PATH, + HOME of the user, when missing)
    cwd   = WorkingDir or "/"            user = User ("" = root; uid, name, uid:gid, name:group), with
                                                additionalGids from /etc/group membership when no group
                                                is given (runc's GetExecUser rules, shared with the runtime)
    annotations: org.opencontainers.image.{os,architecture,author,created,stopSignal,exposedPorts}, Labels
Everything else comes from oci_runtime.specgen.default_spec(args=..., terminal=False).
"""

from __future__ import annotations

from pathlib import Path

from builder.errors import BuildError
from oci_runtime import users
from oci_runtime.specgen import DEFAULT_PATH, default_spec


def process_spec(args: list[str], *, env: list[str], cwd: str, user: users.ExecUser,
                 terminal: bool = False) -> dict:
    """config.json for running `args` as `user`: default_spec's container with this process in it."""
    spec = default_spec(args=list(args), terminal=terminal)
    process = spec["process"]
    process["env"] = list(env)
    process["cwd"] = cwd
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    return spec


def image_spec(image_config: dict, rootfs: Path, *, terminal: bool = False) -> dict:
    """config.json for running an image whose rootfs is at `rootfs` (used for user lookup)."""
    cfg = image_config.get("config") or {}
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not args:
        raise BuildError("no command specified: the image has neither Entrypoint nor Cmd")
    try:
        user = users.lookup(str(rootfs), cfg.get("User") or "")
    except ValueError as e:
        raise BuildError(str(e)) from None
    env = list(cfg.get("Env") or [])
    names = {e.split("=", 1)[0] for e in env}
    if "PATH" not in names:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOME" not in names:
        env.append(f"HOME={user.home}")
    if terminal and "TERM" not in names:
        env.append("TERM=xterm")
    cwd = cfg.get("WorkingDir") or "/"
    spec = process_spec(args, env=env, cwd=cwd if cwd.startswith("/") else "/" + cwd, user=user,
                        terminal=terminal)
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
