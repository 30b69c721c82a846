"""The layout's rules, read from the code's own import statements:
- the runtime is a library first: nothing outside oci_runtime/cli imports oci_runtime.cli (but the entry
  point, and api.py, whose calls run the CLI in a child process), and the runtime never imports pydock;
- pydock uses only the runtime's public modules;
- spec/ imports nothing of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import REPO

# What builder/ may import from the runtime: the library interface and the helpers meant to be shared.
RUNTIME_PUBLIC = {"oci_runtime", "oci_runtime.api", "oci_runtime.units", "oci_runtime.users", "oci_runtime.linux",
                  "oci_runtime.mountinfo", "oci_runtime.specgen", "oci_runtime.errors", "oci_runtime.jsonio",
                  "oci_runtime.exiting"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in the file names (relative imports resolved), at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}"))
    return found


def is_module(name: str) -> bool:
    """Whether a dotted name is a module or package of this repository (not a name defined in one)."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def project_imports(path: Path, prefixes: tuple[str, ...]) -> set[str]:
    return {m for m in imports_of(path) if m.split(".")[0] in prefixes}


@pytest.mark.parametrize("path", sources("oci_runtime"), ids=lambda p: str(p.relative_to(REPO)))
def test_runtime_library_never_imports_its_cli_or_pydock(path):
    rel = path.relative_to(REPO).as_posix()
    found = project_imports(path, ("oci_runtime", "builder"))
    assert not {m for m in found if m.startswith("builder")}, f"{rel} imports pydock"
    if not rel.startswith("oci_runtime/cli/") and rel not in ("oci_runtime/__main__.py", "oci_runtime/api.py"):
        assert not {m for m in found if m == "oci_runtime.cli" or m.startswith("oci_runtime.cli.")}, \
            f"{rel} imports the CLI: move what it needs into the library"


@pytest.mark.parametrize("path", sources("builder"), ids=lambda p: str(p.relative_to(REPO)))
def test_pydock_uses_only_the_runtime_public_modules(path):
    runtime = {m for m in project_imports(path, ("oci_runtime",))}
    # "from oci_runtime import units" names oci_runtime and oci_runtime.units: both public
    private = sorted(m for m in runtime if m not in RUNTIME_PUBLIC)
    assert not private, f"{path.relative_to(REPO)} imports {private}; use oci_runtime.api or a shared helper"


@pytest.mark.parametrize("path", sources("spec"), ids=lambda p: str(p.relative_to(REPO)))
def test_spec_imports_nothing_of_the_project(path):
    assert not project_imports(path, ("oci_runtime", "builder", "spec")), path


def test_the_rules_see_imports():
    """A guard on the reading: known imports are found, relative ones resolved."""
    assert "oci_runtime.container.lifecycle" in imports_of(REPO / "oci_runtime/cli/lifecycle.py")
    assert "oci_runtime.units" in imports_of(REPO / "oci_runtime/cli/resources.py")  # from oci_runtime import units
    assert "oci_runtime.cgroups.fileio" in imports_of(REPO / "oci_runtime/cgroups/v1.py")
    assert not is_module("oci_runtime.api.Runtime") and is_module("oci_runtime.process")
