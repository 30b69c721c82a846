"""Pass 2 of the Dockerfile parser: each raw node checked as docker checks it (known instruction, the flags
it accepts, argument counts, FROM stage names, ONBUILD triggers, HEALTHCHECK options, RUN --mount syntax,
SHELL in JSON form), giving the Instruction the engine runs."""

from __future__ import annotations

import re
from collections.abc import Callable

from builder.dockerfile.syntax import (INSTRUCTIONS, Instruction, Node, healthcheck_config, heredoc_marker,
                                       parse_arg, strip_go_space)
from builder.dockerfile.runmount import check_mount_syntax
from builder.dockerfile.suggest import did_you_mean
from builder.errors import BuildError
from oci_runtime.units import go_quote

# Flag kinds: a string flag needs "=value"; a bool flag takes none or true/false; a
# list flag may be repeated.
_STR, _BOOL, _LIST = "string", "bool", "list"

FLAG_SPECS: dict[str, dict[str, str]] = {
    "ADD": {"chown": _STR, "chmod": _STR, "link": _BOOL, "keep-git-dir": _BOOL, "checksum": _STR,
            "unpack": _BOOL, "exclude": _LIST},
    "COPY": {"chown": _STR, "from": _STR, "chmod": _STR, "link": _BOOL, "exclude": _LIST, "parents": _BOOL},
    "FROM": {"platform": _STR},
    "RUN": {"mount": _LIST, "network": _STR, "security": _STR, "device": _LIST},
    "HEALTHCHECK": {"interval": _STR, "timeout": _STR, "start-period": _STR, "start-interval": _STR,
                    "retries": _STR},
}

RUN_NETWORK_MODES = ("default", "none", "host")
RUN_SECURITY_MODES = ("insecure", "sandbox")

_VALID_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")


def _parse_flags(node: Node, spec: dict[str, str]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for arg in node.raw_flags:
        if arg == "--":
            break
        if not arg.startswith("--"):
            raise BuildError(f"arg should start with -- : {arg}")
        written, has_value, value = arg.partition("=")
        name = written[2:]
        kind = spec.get(name)
        if kind is None:
            raise BuildError(f"unknown flag: {written}{did_you_mean(name, list(spec))}")
        if name in flags and kind != _LIST:
            raise BuildError(f"duplicate flag specified: {written}")
        if kind == _BOOL:
            if has_value and value == "":
                raise BuildError(f"missing a value on flag: {written}")
            if value.lower() in ("true", ""):
                flags[name] = ["true"]
            elif value.lower() == "false":
                flags[name] = ["false"]
            else:
                raise BuildError(f"expecting boolean value for flag {written}, not: {value}")
        else:
            if not has_value:
                raise BuildError(f"missing a value on flag: {written}")
            flags.setdefault(name, []).append(value)
    return flags


def check_instruction(node: Node, escape: str) -> Instruction:
    kind = node.cmd.upper()
    if kind not in INSTRUCTIONS:
        raise BuildError(f"unknown instruction: {node.cmd}{did_you_mean(node.cmd, INSTRUCTIONS)}")
    inst = Instruction(
        cmd=kind,
        args=_contract_args(node, kind),
        flags={},
        json_form=node.json_form,
        heredocs=node.heredocs,
        lineno=node.lineno,
        end_lineno=node.end_lineno,
        original=node.original,
        words=list(node.words),
    )
    _CHECKS[kind](node, inst, escape)
    return inst


def _contract_args(node: Node, kind: str) -> list[str]:
    if node.json_form and kind != "HEALTHCHECK":
        return list(node.words)
    return [node.rest] if node.rest else []


def _at_least_one(node: Node, kind: str) -> None:
    if not node.words:
        raise BuildError(f"{kind} requires at least one argument")


def _exactly_one(node: Node, kind: str) -> None:
    if len(node.words) != 1:
        raise BuildError(f"{kind} requires exactly one argument")


def _check_key_values(node: Node, inst: Instruction, escape: str) -> None:
    inst.flags = _parse_flags(node, {})
    if not node.pairs:
        raise BuildError(f"{inst.cmd} requires at least one argument")
    if any(key == "" for key, _ in node.pairs):
        raise BuildError(f"{inst.cmd} names can not be blank")


def _check_maintainer(node: Node, inst: Instruction, escape: str) -> None:
    _exactly_one(node, inst.cmd)
    inst.flags = _parse_flags(node, {})


def _check_copy(node: Node, inst: Instruction, escape: str) -> None:
    if len(node.words) < 2:
        raise BuildError(
            f"{inst.cmd} requires at least two arguments, but only one was provided."
            " Destination could not be determined"
        )
    inst.flags = _parse_flags(node, FLAG_SPECS[inst.cmd])
    if heredoc_marker(node.words[-1]) is not None:
        raise BuildError(f"{inst.cmd} cannot accept a heredoc as a destination")


def _check_from(node: Node, inst: Instruction, escape: str) -> None:
    stage_name(node.words)
    inst.flags = _parse_flags(node, FLAG_SPECS["FROM"])


def stage_name(words: list[str]) -> str | None:
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _VALID_STAGE_NAME.match(name):
            raise BuildError(
                f"invalid name for build stage: {go_quote(words[2])}, name can't start with a number or contain symbols"
            )
        return name
    if len(words) != 1:
        raise BuildError("FROM requires either one or three arguments")
    return None


def _check_onbuild(node: Node, inst: Instruction, escape: str) -> None:
    _at_least_one(node, "ONBUILD")
    inst.flags = _parse_flags(node, {})
    assert node.child is not None
    trigger = node.child.cmd.upper()
    if trigger == "ONBUILD":
        raise BuildError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise BuildError(f"{trigger} isn't allowed as an ONBUILD trigger")
    # Docker only checks the trigger when a child image runs it; we check it now.
    inst.trigger = check_instruction(node.child, escape)


def _check_workdir_user(node: Node, inst: Instruction, escape: str) -> None:
    _exactly_one(node, inst.cmd)
    inst.flags = _parse_flags(node, {})


def _check_run(node: Node, inst: Instruction, escape: str) -> None:
    inst.flags = _parse_flags(node, FLAG_SPECS["RUN"])
    network = inst.flag("network", "default")
    if network not in RUN_NETWORK_MODES:
        raise BuildError(f"invalid network mode {go_quote(network)}")
    security = inst.flag("security", "sandbox")
    if security not in RUN_SECURITY_MODES:
        raise BuildError(f"security {go_quote(security)} is not valid")
    for spec in inst.flags.get("mount", []):
        check_mount_syntax(spec)


def _check_plain(node: Node, inst: Instruction, escape: str) -> None:
    inst.flags = _parse_flags(node, {})


def _check_healthcheck(node: Node, inst: Instruction, escape: str) -> None:
    _at_least_one(node, "HEALTHCHECK")
    if node.words[0].upper() != "NONE":  # docker ignores the flags of HEALTHCHECK NONE
        inst.flags = _parse_flags(node, FLAG_SPECS["HEALTHCHECK"])
    healthcheck_config(inst)


def _check_expose(node: Node, inst: Instruction, escape: str) -> None:
    _at_least_one(node, "EXPOSE")
    inst.flags = _parse_flags(node, {})


def _check_volume(node: Node, inst: Instruction, escape: str) -> None:
    _at_least_one(node, "VOLUME")
    inst.flags = _parse_flags(node, {})
    if any(strip_go_space(word) == "" for word in node.words):
        raise BuildError("VOLUME specified can not be an empty string")


def _check_stopsignal(node: Node, inst: Instruction, escape: str) -> None:
    _exactly_one(node, "STOPSIGNAL")  # docker does not look at STOPSIGNAL's flags


def _check_arg(node: Node, inst: Instruction, escape: str) -> None:
    _at_least_one(node, "ARG")  # docker does not look at ARG's flags
    parse_arg(node.rest, escape)


def _check_shell(node: Node, inst: Instruction, escape: str) -> None:
    inst.flags = _parse_flags(node, {})
    if not node.words:
        raise BuildError("SHELL requires at least one argument")
    if not node.json_form:
        raise BuildError("SHELL requires the arguments to be in JSON form")


_CHECKS: dict[str, Callable[[Node, Instruction, str], None]] = {
    "ADD": _check_copy,
    "ARG": _check_arg,
    "CMD": _check_plain,
    "COPY": _check_copy,
    "ENTRYPOINT": _check_plain,
    "ENV": _check_key_values,
    "EXPOSE": _check_expose,
    "FROM": _check_from,
    "HEALTHCHECK": _check_healthcheck,
    "LABEL": _check_key_values,
    "MAINTAINER": _check_maintainer,
    "ONBUILD": _check_onbuild,
    "RUN": _check_run,
    "SHELL": _check_shell,
    "STOPSIGNAL": _check_stopsignal,
    "USER": _check_workdir_user,
    "VOLUME": _check_volume,
    "WORKDIR": _check_workdir_user,
}
