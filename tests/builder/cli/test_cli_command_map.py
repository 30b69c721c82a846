"""The CLI builds only the parsers of the module that holds a command: its table of which module holds
which command must match what the modules register."""

from __future__ import annotations

import importlib

from builder.cli import COMMAND_MODULES, MODULE_OF
from builder.cli.shared import Parser


def test_every_command_is_found_in_its_own_module():
    registered = {}
    for name in COMMAND_MODULES:
        sub = Parser(prog="pydock").add_subparsers(dest="command", parser_class=Parser)
        importlib.import_module(f"builder.cli.{name}").add_parsers(sub)
        registered.update(dict.fromkeys(sub.choices, name))
    assert MODULE_OF == registered
