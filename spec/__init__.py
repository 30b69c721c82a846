"""The project's JSON Schemas (OCI runtime config/state/features, OCI image formats) and where they are.

Schemas are JSON Schema draft 2020-12 files beside this module, named ``<name>.schema.json``.
They refer to each other by relative ``$ref`` (``defs.schema.json#/$defs/uint32``); every file's
``$id`` is ``https://pyrunc.invalid/spec/<file>`` so any validator resolves those refs to these files.

This package imports nothing of the project; reading a schema is oci_runtime.validate.load_schema's job.
It is on the runtime's hot path: it imports only ``os``.
"""

from __future__ import annotations

import os

SPEC_DIR = os.path.dirname(os.path.abspath(__file__))
ID_PREFIX = "https://pyrunc.invalid/spec/"

def schema_filename(name: str) -> str:
    """Normalise "config", "config.schema.json" or a full $id URL to the file name "config.schema.json"."""
    name = name.rsplit("/", 1)[-1]
    if not name.endswith(".json"):
        name += ".schema.json"
    return name


def schema_path(name: str) -> str:
    """The path of one schema file; raises FileNotFoundError naming the known schemas if there is none."""
    path = os.path.join(SPEC_DIR, schema_filename(name))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no schema {name!r} in {SPEC_DIR} (known: {', '.join(schema_names())})")
    return path


def schema_names() -> list[str]:
    """File names of every schema shipped here, sorted."""
    return sorted(n for n in os.listdir(SPEC_DIR) if n.endswith(".schema.json"))
