"""A container's volumes: made at create (named ones on first use; anonymous ones for `-v /PATH` and the
image's VOLUMEs, as docker does), and its anonymous ones removed with it (`rm -v`, `run --rm`) when no
other container (--volumes-from) still mounts them."""

from __future__ import annotations

import os

from builder.volume.store import Volumes, VolumeError, is_anonymous


def volume_mount(name: str | None, destination: str, mode: str = "") -> dict:
    """An inspect Mounts entry for a volume (name None: an anonymous one, named when provisioned)."""
    return {"Type": "volume", "Name": name, "Source": "", "Destination": os.path.normpath(destination),
            "Driver": "local", "Mode": mode, "RW": mode != "ro", "Propagation": ""}


def provision(volumes: Volumes, mounts: list[dict], image_volumes: dict | None) -> list[dict]:
    """Make the volumes the mounts name, and anonymous ones for the image's VOLUMEs no mount covers;
    returns the mounts with every volume's Name and Source filled in."""
    targets = {m["Destination"] for m in mounts}
    mounts = list(mounts) + [volume_mount(None, path) for path in sorted(image_volumes or {})
                             if os.path.normpath(path) not in targets]
    out = []
    for m in mounts:
        if m["Type"] == "volume":
            volume = volumes.create(anonymous=True) if m["Name"] is None else volumes.create(m["Name"])
            m = dict(m, Name=volume["Name"], Source=volume["Mountpoint"])
        elif m["Type"] == "bind":
            os.makedirs(m["Source"], exist_ok=True)  # docker makes a missing -v host directory
        out.append(m)
    return out


def users(all_records: list[dict], name: str) -> list[str]:
    """Ids of the containers whose mounts include the volume."""
    return [doc["Id"] for doc in all_records
            if any(m.get("Type") == "volume" and m.get("Name") == name for m in doc.get("Mounts") or [])]


def release_anonymous(volumes: Volumes, all_records: list[dict], doc: dict) -> None:
    """Remove the container's anonymous volumes that no other container mounts."""
    others = [d for d in all_records if d["Id"] != doc["Id"]]
    for m in doc.get("Mounts") or []:
        if m.get("Type") != "volume" or not m.get("Name"):
            continue
        with volumes.locked():
            try:
                if is_anonymous(volumes.inspect(m["Name"])) and not users(others, m["Name"]):
                    volumes.remove(m["Name"])
            except VolumeError:
                continue  # gone already


def copy_up_all(doc: dict, rootfs) -> None:
    """At a start, before the container runs: the image's content into each of its still-empty volumes."""
    from pathlib import Path

    from builder.container.mounts import no_copy
    from builder.volume.copyup import copy_up

    for m in doc.get("Mounts") or []:
        if m.get("Type") == "volume" and m.get("Source") and not no_copy(doc, m):
            copy_up(Path(rootfs), m["Destination"], Path(m["Source"]))


def remove_container_volumes(store_root, records, doc: dict) -> None:
    """`rm -v` and `run --rm`: the container's anonymous volumes go with it."""
    release_anonymous(Volumes(store_root), records.all(), doc)
