"""Container records: STORE/containers/<id>/config.json, docker's inspect shape, written atomically
under the container's own flock (STORE/containers/<id>/lock). Names are claimed under one lock for
the whole directory (STORE/containers/names.lock), so two `create`s never take the same name."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.atomicfile import atomic_file
from builder.filelock import exclusive_lock
from builder.container import names
from builder.errors import BuildError


class ContainerError(BuildError):
    """A container verb failed because of its input or the container's state (docker's exit 125)."""


class Records:
    """The containers of one image store."""

    def __init__(self, store_root: Path):
        self.dir = Path(store_root) / "containers"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, container_id: str) -> Path:
        return self.dir / container_id

    # -- creating and removing
    def create(self, doc: dict, name: str | None) -> dict:
        """Store a new record (doc gets its Id and Name); the name must be free."""
        if name is not None and not names.VALID_NAME.match(name):
            raise ContainerError(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        with exclusive_lock(self.dir / "names.lock"):
            taken = {d.get("Name", "").lstrip("/") for d in self.all()}
            if name is None:
                name = next(n for n in (names.generated_name() for _ in range(100)) if n not in taken)
            name = name.lstrip("/")
            if name in taken:
                raise ContainerError(f'the container name "/{name}" is already in use')
            container_id = names.new_id()
            tmp = self.dir / f".new-{container_id}"
            tmp.mkdir(mode=0o700)
            try:
                doc = dict(doc, Id=container_id, Name="/" + name)
                _write(tmp / "config.json", doc)
                os.rename(tmp, self.path(container_id))
            except BaseException:
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return doc

    def rename(self, container_id: str, new_name: str) -> None:
        if not names.VALID_NAME.match(new_name):
            raise ContainerError(f"invalid container name {new_name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        new_name = new_name.lstrip("/")
        with exclusive_lock(self.dir / "names.lock"):
            if any(d["Name"].lstrip("/") == new_name for d in self.all()):
                raise ContainerError(f'the container name "/{new_name}" is already in use')
            with self.edit(container_id) as doc:
                doc["Name"] = "/" + new_name

    def remove(self, container_id: str) -> None:
        """Delete the record and everything under it (the caller made sure nothing is mounted)."""
        with exclusive_lock(self.dir / "names.lock"):
            doomed = self.dir / f".rm-{container_id}"
            try:
                os.rename(self.path(container_id), doomed)
            except FileNotFoundError:
                return
            import shutil  # here only: every command reads records, few remove one

            shutil.rmtree(doomed, ignore_errors=True)

    # -- reading and updating
    def load(self, container_id: str) -> dict:
        try:
            with open(self.path(container_id) / "config.json", "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            raise ContainerError(f"No such container: {container_id}") from None

    def all(self) -> list[dict]:
        docs = []
        for entry in sorted(os.listdir(self.dir)):
            if len(entry) == 64 and not entry.startswith("."):
                try:
                    docs.append(self.load(entry))
                except (ContainerError, ValueError):
                    continue  # removed meanwhile, or not ours
        return docs

    @contextmanager
    def edit(self, container_id: str) -> Iterator[dict]:
        """`with records.edit(id) as doc:` change doc; written back atomically under the container's lock."""
        path = self.path(container_id)
        if not path.is_dir():
            raise ContainerError(f"No such container: {container_id}")
        with exclusive_lock(path / "lock"):
            doc = self.load(container_id)
            yield doc
            _write(path / "config.json", doc)

    def lookup(self, ref: str) -> dict:
        """A container by full id, exact name, or unique id prefix (docker's order)."""
        docs = self.all()
        for doc in docs:
            if doc["Id"] == ref:
                return doc
        for doc in docs:
            if doc["Name"].lstrip("/") == ref.lstrip("/"):
                return doc
        matches = [d for d in docs if ref and d["Id"].startswith(ref.lower())]
        if len(matches) > 1:
            raise ContainerError(f"multiple containers found with provided prefix: {ref}")
        if not matches:
            raise ContainerError(f"No such container: {ref}")
        return matches[0]


def _write(path: Path, doc: dict) -> None:
    with atomic_file(path, durable=False) as f:
        f.write((json.dumps(doc, indent=1) + "\n").encode())
