"""The import budget of the runtime's hot path: the modules each pyrunc command imports (in the runtime and in
every process it forks), against the set recorded in import_budget.json.

pyrunc runs on every container start in every engine, and each import is paid each time: a heavy module
(jsonschema, requests, ...) costs ~100 ms where `runc run` takes ~40. The test fails when a forbidden module
appears, or when a command imports a module its recorded budget does not list. After a deliberate change:
    UPDATE_IMPORT_BUDGET=1 python -m pytest tests/runtime/test_import_budget.py
rewrites the file; review its diff like code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from oci_runtime.api import pyrunc_command
from support import run_captured

pytestmark = pytest.mark.root

BUDGET_FILE = Path(__file__).with_name("import_budget.json")
# Modules measured to cost milliseconds or more at import, or that pull in such modules.
FORBIDDEN = {"jsonschema", "requests", "tqdm", "pyroute2", "json", "re", "enum", "argparse", "dataclasses",
             "pathlib", "typing", "subprocess", "asyncio", "logging", "socket", "signal", "inspect", "tempfile",
             "shutil", "datetime", "builder"}
COMMANDS = ["create", "start", "state", "exec", "kill", "delete", "run"]


def imported_modules(stderr: str) -> set[str]:
    """Module names from `python -X importtime` lines ("import time: self | cumulative | name")."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


@pytest.fixture(scope="module")
def measured(tmp_path_factory, busybox_template) -> dict[str, set[str]]:
    import shutil

    from oci_runtime.specgen import default_spec

    work = tmp_path_factory.mktemp("budget")
    bundle = work / "bundle"
    shutil.copytree(busybox_template, bundle / "rootfs", symlinks=True)
    (bundle / "config.json").write_text(json.dumps(default_spec(args=["sleep", "1000"], terminal=False)))
    python, *rest = pyrunc_command(str(work / "state"))

    def pyrunc(*args) -> set[str]:
        out = run_captured([python, "-X", "importtime", *rest, *args])
        assert out.returncode == 0, out.stderr[-2000:]
        return imported_modules(out.stderr)

    sets = {"create": pyrunc("create", "--bundle", bundle, "budget"), "start": pyrunc("start", "budget"),
            "state": pyrunc("state", "budget"), "exec": pyrunc("exec", "budget", "true"),
            "kill": pyrunc("kill", "budget", "KILL")}
    sets["delete"] = pyrunc("delete", "--force", "budget")
    (bundle / "config.json").write_text(json.dumps(default_spec(args=["true"], terminal=False)))
    sets["run"] = pyrunc("run", "--bundle", bundle, "budget-run")
    return sets


@pytest.mark.parametrize("command", COMMANDS)
def test_no_heavy_module_on_the_hot_path(measured, command):
    heavy = sorted(m for m in measured[command] if m.split(".")[0] in FORBIDDEN)
    assert not heavy, f"pyrunc {command} imports {heavy}: import them inside the function that needs them"


def test_commands_stay_within_their_recorded_budget(measured):
    found = {command: sorted(measured[command]) for command in COMMANDS}
    if os.environ.get("UPDATE_IMPORT_BUDGET"):
        BUDGET_FILE.write_text(json.dumps(found, indent=1) + "\n")
    budget = json.loads(BUDGET_FILE.read_text())
    grown = {command: sorted(set(found[command]) - set(budget.get(command, ()))) for command in COMMANDS}
    grown = {command: new for command, new in grown.items() if new}
    assert not grown, (f"commands import more than their budget: {grown}; if that is deliberate, run with "
                       "UPDATE_IMPORT_BUDGET=1 and commit the new import_budget.json")


def test_the_measurement_sees_imports(measured):
    """A guard on the measurement itself: each command imports the runtime's CLI, and only create (which
    builds the rootfs) imports the rootfs code, while state does not."""
    for command in COMMANDS:
        assert "oci_runtime.cli" in measured[command], sys.version
    assert "oci_runtime.process.rootfs" in measured["create"]
    assert "oci_runtime.process.rootfs" not in measured["state"]
