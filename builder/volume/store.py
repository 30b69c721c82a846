"""Local volumes, as docker's `local` driver keeps them: STORE/volumes/NAME/_data is what containers
mount, STORE/volumes/NAME/volume.json its metadata (CreatedAt, Driver, Labels, Options). A volume
appears whole (made under a temporary name, then renamed) and is removed by renaming it away first,
under one lock for the directory. Anonymous volumes (a 64-hex name) carry docker's label
com.docker.volume.anonymous."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from builder.atomicfile import atomic_file
from builder.errors import BuildError
from builder.filelock import exclusive_lock

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_META = "volume.json"
_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # docker's rule for volume names


class VolumeError(BuildError):
    """A volume verb failed because of its input or the volume's state."""


class Volumes:
    """The volumes of one store."""

    def __init__(self, store_root: Path):
        self.dir = Path(store_root) / "volumes"
        self.dir.mkdir(parents=True, exist_ok=True)

    def data(self, name: str) -> Path:
        return self.dir / name / "_data"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Creating, removing and checking whether a volume is in use, one at a time."""
        with exclusive_lock(self.dir / ".lock"):
            yield

    def create(self, name: str | None = None, *, driver: str = "local", labels: dict | None = None,
               anonymous: bool = False) -> dict:
        """A new volume (a generated name when none is given); an existing one of that name is returned
        as it is, as docker does, unless the labels asked for differ."""
        if driver != "local":
            raise VolumeError(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        labels = dict(labels or {})
        if anonymous or name is None:
            name = secrets.token_hex(32)
            if anonymous:
                labels[ANONYMOUS_LABEL] = ""
        check_name(name)
        with self.locked():
            if (self.dir / name / _META).exists():
                existing = self.inspect(name)
                if labels and existing["Labels"] != labels:
                    raise VolumeError(f"volume {name} already exists with different labels")
                return existing
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            meta = json.dumps({"CreatedAt": created, "Driver": driver, "Labels": labels, "Options": {}},
                              indent=1).encode()
            if self.data(name).is_dir() and not (self.dir / name).is_symlink():
                with atomic_file(self.dir / name / _META, durable=False) as f:  # an older store's volume
                    f.write(meta)
                return self.inspect(name)
            tmp = self.dir / f".new-{secrets.token_hex(8)}"
            try:
                (tmp / "_data").mkdir(parents=True, mode=0o755)
                with atomic_file(tmp / _META, durable=False) as f:
                    f.write(meta)
                os.rename(tmp, self.dir / name)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return self.inspect(name)

    def inspect(self, name: str) -> dict:
        """docker's `volume inspect` document."""
        check_name(name)
        try:
            with open(self.dir / name / _META, "rb") as f:
                meta = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            raise VolumeError(f"get {name}: no such volume") from None
        return {"CreatedAt": meta.get("CreatedAt", ""), "Driver": meta.get("Driver", "local"),
                "Labels": meta.get("Labels") or {}, "Mountpoint": os.fspath(self.data(name)), "Name": name,
                "Options": meta.get("Options") or {}, "Scope": "local"}

    def all(self) -> list[dict]:
        docs = []
        for entry in sorted(os.listdir(self.dir)):
            if entry.startswith("."):
                continue
            try:
                docs.append(self.inspect(entry))
            except (VolumeError, ValueError):
                continue  # removed meanwhile, or not a volume
        return docs

    def remove(self, name: str) -> None:
        """Delete the volume and its data (the caller made sure no container uses it, under locked())."""
        self.inspect(name)
        doomed = self.dir / f".rm-{secrets.token_hex(8)}"
        os.rename(self.dir / name, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def size(self, name: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.data(name)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total


def check_name(name: str) -> None:
    if not _VALID_NAME.match(name):
        raise VolumeError(f'invalid volume name "{name}": only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. '
                          "If you intended to pass a host directory, use absolute path")


def is_anonymous(volume: dict) -> bool:
    return ANONYMOUS_LABEL in (volume.get("Labels") or {})
