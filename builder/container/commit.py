"""`pydock commit`: a container's changes (its overlay upper dir) as a new layer on its image, with the
container's process config (Cmd, Entrypoint, Env, WorkingDir, User) as the new image's, as docker does."""

from __future__ import annotations

import copy

from builder.container.records import Records
from oci_runtime.units import rfc3339


def commit_container(store, records: Records, doc: dict, *, message: str = "", author: str = "",
                     changes: list[str] = ()):
    """Store the new image (without a name) and return it; `changes` are --change Dockerfile lines
    applied to the config. The caller pauses a running container."""
    from builder.image.layers import write_layer_from_dir

    image = store.resolve(doc["Image"])
    config = copy.deepcopy(image.config)
    cc = config.setdefault("config", {}) or {}
    for key in ("Cmd", "Entrypoint", "Env", "WorkingDir", "User"):
        value = doc["Config"].get(key)
        if value:
            cc[key] = value
        else:
            cc.pop(key, None)
    if changes:
        from builder.dockerfile.instructions import config_from_changes

        cc = config_from_changes(list(changes), cc)
    config["config"] = cc
    upper = records.path(doc["Id"]) / "upper"
    upper.mkdir(exist_ok=True)  # never started: an empty layer, as docker makes
    with store.lease():
        desc, diff_id = write_layer_from_dir(upper, store, compression="gzip", overlay_whiteouts=True,
                                             progress=False)
        now = rfc3339()
        config["created"] = now
        if author:
            config["author"] = author
        command = " ".join([doc["Path"], *doc["Args"]])
        config.setdefault("history", []).append(
            {"created": now, "created_by": command, **({"comment": message} if message else {}),
             **({"author": author} if author else {})})
        config["rootfs"] = {"type": "layers", "diff_ids": list(image.diff_ids) + [diff_id]}
        return store.commit_image(config, list(image.layers) + [desc])
