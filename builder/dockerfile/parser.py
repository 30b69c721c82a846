"""Dockerfile parser: the text of a Dockerfile -> a list of checked instructions.

It follows `docker build` (BuildKit's Dockerfile frontend) closely, in two passes as
docker does, so the same file fails with the same first error:

1. Lines -> raw nodes (syntax.py): BOM, parser directives, comments, line continuations,
   instruction flags, exec or shell form, ENV/LABEL pairs, heredocs.
2. Each node is checked (checks.py: known instruction, flags it accepts, argument
   counts, FROM stage names, ONBUILD triggers, HEALTHCHECK options, SHELL in JSON form),
   and every instruction but ARG must come after a FROM.

The node types and the parsers of instruction words (parse_arg, copy_parts, ...) live in
syntax.py; here are parse() and the typed views that need the checks.

Nothing is expanded here: `$VAR` stays as written (see builder.dockerfile.expand).
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.dockerfile.checks import check_instruction, stage_name
from builder.dockerfile.syntax import Instruction, read_nodes
from builder.errors import BuildError, DockerfileError


@dataclass
class Dockerfile:
    filename: str
    directives: dict[str, str]
    escape: str
    instructions: list[Instruction]


def from_parts(inst: Instruction) -> tuple[str, str | None]:
    """FROM's (image, stage name or None); the name lower-cased as docker does."""
    if inst.cmd != "FROM":
        raise ValueError(f"{inst.cmd} is not FROM")
    return inst.words[0], stage_name(inst.words)


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and check a Dockerfile; raises DockerfileError naming file, line and problem."""
    if text == "":
        raise DockerfileError(filename, 0, "the Dockerfile cannot be empty")
    nodes, directives = read_nodes(text, filename)
    if not nodes:
        raise DockerfileError(filename, 0, "file with no instructions")
    instructions: list[Instruction] = []
    seen_from = False
    for node in nodes:
        try:
            inst = check_instruction(node, directives.escape)
            if inst.cmd == "FROM":
                seen_from = True
            elif not seen_from and inst.cmd != "ARG":
                raise BuildError("no build stage in current context")
        except BuildError as err:
            raise DockerfileError(filename, node.lineno, str(err)) from None
        instructions.append(inst)
    if not seen_from:
        raise DockerfileError(filename, 0, "dockerfile contains no stages to build")
    return Dockerfile(
        filename=filename,
        directives=dict(directives.values),
        escape=directives.escape,
        instructions=instructions,
    )
