"""The project's JSON Schemas (OCI runtime config/state/features, OCI image formats) and their loaders.

Schemas are JSON Schema draft 2020-12 files beside this module, named ``<name>.schema.json``.
They refer to each other by relative ``$ref`` (``defs.schema.json#/$defs/uint32``); every file's
``$id`` is ``https://pyrunc.invalid/spec/<file>`` so any validator resolves those refs to these files.

This module is on the runtime's hot path: it imports only ``os`` and (lazily) ``json``/``pathlib``.
"""

from __future__ import annotations

import os

SPEC_DIR = os.path.dirname(os.path.abspath(__file__))
ID_PREFIX = "https://pyrunc.invalid/spec/"

_cache: dict[str, dict] = {}


def schema_filename(name: str) -> str:
    """Normalise "config", "config.schema.json" or a full $id URL to the file name "config.schema.json"."""
    name = name.rsplit("/", 1)[-1]
    if not name.endswith(".json"):
        name += ".schema.json"
    return name


def schema_path(name: str) -> "Path":  # noqa: F821 - pathlib is imported lazily to keep this module cheap
    """The path of one schema file; raises FileNotFoundError naming the known schemas if there is none."""
    from pathlib import Path

    path = Path(SPEC_DIR) / schema_filename(name)
    if not path.is_file():
        raise FileNotFoundError(f"no schema {name!r} in {SPEC_DIR} (known: {', '.join(schema_names())})")
    return path


def load_schema(name: str) -> dict:
    """The parsed schema, read once per process. The dict is shared: treat it as read-only."""
    filename = schema_filename(name)
    schema = _cache.get(filename)
    if schema is None:
        from oci_runtime.jsonio import loads  # json's C core without `import json` (and its `re`)

        try:
            with open(os.path.join(SPEC_DIR, filename), "rb") as f:
                schema = loads(f.read())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no schema {name!r} in {SPEC_DIR} (known: {', '.join(schema_names())})") from None
        _cache[filename] = schema
    return schema


def schema_names() -> list[str]:
    """File names of every schema shipped here, sorted."""
    return sorted(n for n in os.listdir(SPEC_DIR) if n.endswith(".schema.json"))
