"""The multi-stage plan: stages split at FROM, global ARGs, --target, and which stages a target needs.

Follows BuildKit's dockerfile2llb: ARGs declared before the first FROM (plus the predefined platform
args) form the global scope used to expand FROM lines; inside a stage an ARG must be re-declared to be
seen. Stage names are case-insensitive. FROM may name an earlier stage (by name or index) or an image
(a later stage's name is an image name there); COPY --from and RUN --mount from= may name any stage, a
stage index or an image (COPY's is never variable-expanded): the stages form a graph, and a cycle in it
is refused as BuildKit does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from builder.errors import BuildError, DockerfileError
from builder.image.platform import Platform, host_platform

SCRATCH = "scratch"

# Build args every build accepts without an ARG instruction; never reported as unused, kept out of history.
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
PLATFORM_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
                 "TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT", "TARGETSTAGE")
SPECIAL_ARGS = ("SOURCE_DATE_EPOCH", "BUILDKIT_INLINE_CACHE", "BUILDKIT_SYNTAX",
                "BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE")

_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$", re.IGNORECASE)
def default_args(build_args: dict[str, str], target: str, platform: Platform | None = None) -> dict[str, str]:
    """The predefined args as BuildKit defines them: the build platform is this host's, the target
    platform --platform's (this host's without one)."""
    p = host_platform()
    t = platform or p
    values = {
        "BUILDPLATFORM": p.format(), "BUILDOS": p.os, "BUILDOSVERSION": "", "BUILDARCH": p.architecture,
        "BUILDVARIANT": p.variant,
        "TARGETPLATFORM": t.format(), "TARGETOS": t.os, "TARGETOSVERSION": "", "TARGETARCH": t.architecture,
        "TARGETVARIANT": t.variant, "TARGETSTAGE": target or "default",
    }
    for k in values:
        if k in build_args:
            values[k] = build_args[k]
    return values


@dataclass
class Stage:
    index: int
    name: str                     # lower-cased stage name, "" when the stage has none
    base_name: str                # the FROM image (after global ARG expansion)
    from_instruction: object      # the FROM Instruction
    instructions: list            # the stage's Instructions after FROM
    platform: str | None = None
    base_stage: "Stage | None" = None
    uses: list = field(default_factory=list)  # stages named by COPY --from or RUN --mount from=, in any order

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"

    def dependencies(self) -> list["Stage"]:
        return ([self.base_stage] if self.base_stage is not None else []) + self.uses


@dataclass
class BuildPlan:
    filename: str
    escape: str
    stages: list[Stage]
    meta_args: list[tuple[str, str | None]]   # ARGs before the first FROM, as declared
    global_args: dict[str, str]               # predefined + meta ARGs, build-arg overrides applied
    target: Stage
    needed: list[Stage]                       # the stages the target needs, each after those it uses
    declared_args: set[str]                   # every ARG name declared anywhere

    def find_stage(self, ref: str) -> Stage | None:
        """A stage by (case-insensitive) name, or by index when `ref` is all digits."""
        low = ref.lower()
        for st in self.stages:
            if st.name and st.name == low:
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def unused_build_args(self, build_args: dict[str, str]) -> list[str]:
        skip = set(PROXY_ARGS) | set(PLATFORM_ARGS) | set(SPECIAL_ARGS)
        return sorted(k for k in build_args if k not in self.declared_args and k not in skip)

    def step_count(self) -> int:
        return sum(1 + len(st.instructions) for st in self.needed)


def _err(filename: str, instr, message: str) -> DockerfileError:
    return DockerfileError(filename, getattr(instr, "lineno", 0), message)


def _from_words(instr) -> list[str]:
    return list(instr.words) if instr.words else " ".join(instr.args).split()


def make_plan(dockerfile, build_args: dict[str, str], target: str | None = None,
              platform: Platform | None = None) -> BuildPlan:
    """Split a parsed Dockerfile into stages and work out which ones `target` needs."""
    from builder.dockerfile.syntax import parse_arg
    from builder.dockerfile.expand import expand

    filename = dockerfile.filename
    escape = dockerfile.escape
    instructions = list(dockerfile.instructions)
    meta: list = []
    while instructions and instructions[0].cmd == "ARG":
        meta.append(instructions.pop(0))
    if not instructions:
        raise DockerfileError(filename, 0, "dockerfile contains no stages to build")
    if instructions[0].cmd != "FROM":
        first = instructions[0]
        raise _err(filename, first, f"{first.cmd} instruction before the first FROM "
                                    "(only ARG may come before FROM)")

    declared: set[str] = set()
    global_args = default_args(build_args, "", platform)
    meta_args: list[tuple[str, str | None]] = []
    for instr in meta:
        for key, value in parse_arg(" ".join(instr.args)):
            declared.add(key)
            meta_args.append((key, value))
            if key in build_args:
                global_args[key] = build_args[key]
            elif value is not None:
                try:
                    global_args[key] = expand(value, global_args, escape)
                except BuildError as e:
                    raise _err(filename, instr, str(e)) from None

    stages: list[Stage] = []
    by_name: dict[str, Stage] = {}
    for instr in instructions:
        if instr.cmd != "FROM":
            stages[-1].instructions.append(instr)
            if instr.cmd == "ARG":
                for key, _ in parse_arg(" ".join(instr.args)):
                    declared.add(key)
            continue
        words = _from_words(instr)
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise _err(filename, instr, "FROM requires either one or three arguments: FROM <image> [AS <name>]")
        name = words[2].lower() if len(words) == 3 else ""
        if name:
            if not _STAGE_NAME_RE.match(name):
                raise _err(filename, instr, f"invalid name for build stage: {words[2]!r}, "
                                            "name can't start with a number or contain symbols")
            if name in by_name:
                raise _err(filename, instr, f"duplicate stage name {words[2]!r}")
        try:
            base = expand(words[0], global_args, escape)
        except BuildError as e:
            raise _err(filename, instr, str(e)) from None
        if not base:
            raise _err(filename, instr, f"base name ({words[0]}) should not be blank")
        plat = None
        if instr.flags.get("platform"):
            try:
                plat = expand(instr.flags["platform"][-1], global_args, escape)
                if plat:
                    Platform.parse(plat)  # BuildKit refuses an unknown os/arch
            except BuildError as e:
                raise _err(filename, instr, str(e)) from None
        stage = Stage(len(stages), name, base, instr, [], plat)
        low = base.lower()
        if low in by_name:
            stage.base_stage = by_name[low]
        elif base.isdigit() and int(base) < len(stages):
            stage.base_stage = stages[int(base)]
        stages.append(stage)
        if name:
            by_name[name] = stage

    for stage in stages:
        for instr in stage.instructions:
            for ref in _stage_refs(filename, instr):
                src = by_name.get(ref.lower())
                if src is None and ref.isdigit():
                    if int(ref) >= len(stages):
                        raise _err(filename, instr, f"invalid stage index {ref}")
                    src = stages[int(ref)]
                if src is not None and src not in stage.uses:
                    stage.uses.append(src)
    cycle = _first_cycle(stages)
    if cycle is not None:
        raise DockerfileError(filename, 0, f"circular dependency detected on stage: {cycle.display_name}")

    if target:
        chosen = by_name.get(target.lower())
        if chosen is None:
            names = ", ".join(s.name for s in stages if s.name) or "none"
            raise BuildError(f"target stage {target!r} could not be found (stages: {names})")
    else:
        chosen = stages[-1]
    if target:
        global_args["TARGETSTAGE"] = build_args.get("TARGETSTAGE", chosen.name or "default")

    needed: list[Stage] = []

    def need(st: Stage) -> None:
        if st in needed:
            return
        for dep in st.dependencies():
            need(dep)
        needed.append(st)

    need(chosen)
    return BuildPlan(filename, escape, stages, meta_args, global_args, chosen, needed, declared)


def _stage_refs(filename: str, instr) -> list[str]:
    """The stage (or image) names an instruction reads from: COPY --from and RUN --mount from=; neither
    takes variables (refused here for COPY, by the parser for mounts), so the graph is known up front."""
    from builder.dockerfile.runmount import parse_mount

    if instr.cmd == "COPY" and instr.flags.get("from"):
        ref = instr.flags["from"][-1]
        if "$" in ref:
            raise _err(filename, instr, "variable expansion is not supported for --from, define a new "
                                        "stage with FROM using ARG from global scope as a workaround")
        return [ref]
    refs = []
    if instr.cmd == "RUN":
        for spec in instr.flags.get("mount") or []:
            try:
                ref = parse_mount(spec).from_
            except BuildError:
                continue  # a bad mount is reported by its step, with the step's line
            if ref:
                refs.append(ref)
    return refs


def _first_cycle(stages: list[Stage]) -> Stage | None:
    """As BuildKit: walking the stages in Dockerfile order, the first one from which a chain of
    dependencies (FROM, COPY --from, RUN --mount from=) comes back to a stage on it, or None."""
    visited: set[int] = set()

    def loops(st: Stage, path: set[int]) -> bool:
        if st.index in visited:
            return False
        visited.add(st.index)
        path.add(st.index)
        for dep in st.dependencies():
            if dep.index in path or loops(dep, path):
                return True
        path.discard(st.index)
        return False

    for st in stages:
        if loops(st, set()):
            return st
    return None
