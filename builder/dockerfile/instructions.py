"""The working image of a stage, and the instructions that only change its metadata.

Semantics and history texts follow BuildKit's dockerfile2llb (ENV/LABEL pairs expanded against the
environment before the instruction, CMD/ENTRYPOINT shell forms wrapped in SHELL, ENTRYPOINT clearing a
CMD not set in the same stage, ARG values visible to later instructions and RUN, ONBUILD stored in the
config without a history entry).
"""

from __future__ import annotations

import copy
import posixpath
from dataclasses import dataclass, field

from builder.errors import BuildError
from oci_runtime.specgen import DEFAULT_PATH
from oci_runtime.units import format_go_duration, go_quote, parse_signal

DEFAULT_SHELL = ["/bin/sh", "-c"]
HISTORY_COMMENT = "buildkit.dockerfile.v0"


@dataclass
class ImageState:
    """A stage's image as its instructions build it."""

    config: dict                     # the whole image config document (architecture, os, config, history...)
    layers: list                     # layer Descriptors, bottom first
    key: str                         # cache chain key of the filesystem so far
    env: dict[str, str] = field(default_factory=dict)   # image Env plus the stage's ARG values
    build_args: list[tuple[str, str | None]] = field(default_factory=list)  # ARGs declared in the stage
    cmd_set: bool = False            # CMD given in this stage (then ENTRYPOINT keeps it)

    @property
    def cc(self) -> dict:
        """The container config part ("config") of the image config."""
        return self.config.setdefault("config", {})

    @property
    def diff_ids(self) -> list[str]:
        return self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []}).setdefault("diff_ids", [])

    @property
    def shell(self) -> list[str]:
        return list(self.cc.get("Shell") or DEFAULT_SHELL)

    @property
    def workdir(self) -> str:
        return self.cc.get("WorkingDir") or "/"

    def clone(self) -> "ImageState":
        return ImageState(copy.deepcopy(self.config), list(self.layers), self.key, dict(self.env),
                          list(self.build_args), self.cmd_set)

    def add_history(self, created_by: str, created: str | None, *, empty_layer: bool) -> None:
        entry: dict = {"created_by": created_by, "comment": HISTORY_COMMENT}
        if created:
            entry["created"] = created
        if empty_layer:
            entry["empty_layer"] = True
        self.config.setdefault("history", []).append(entry)

    def set_env(self, key: str, value: str) -> None:
        """ENV: replace the variable in place (keeping its position) or append it."""
        envs = self.cc.setdefault("Env", [])
        for i, item in enumerate(envs):
            if item.split("=", 1)[0] == key:
                envs[i] = f"{key}={value}"
                break
        else:
            envs.append(f"{key}={value}")
        self.env[key] = value


def env_from_config(cc: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in cc.get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def scratch_config(platform) -> dict:
    """BuildKit's empty image: WorkingDir "/" and a default PATH."""
    config = {"architecture": platform.architecture, "os": platform.os,
              "config": {"Env": [f"PATH={DEFAULT_PATH}"], "WorkingDir": "/"},
              "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    if platform.variant:
        config["variant"] = platform.variant
    return config


def base_config(image_config: dict) -> dict:
    """A base image's config as the start of a new one: no created time, no ONBUILD, PATH ensured."""
    config = copy.deepcopy(image_config)
    config.pop("created", None)
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    config["rootfs"].setdefault("diff_ids", [])
    config["rootfs"]["type"] = "layers"
    config.setdefault("history", [])
    cc = config.get("config") or {}
    config["config"] = cc
    cc.pop("OnBuild", None)
    if not any(e.split("=", 1)[0] == "PATH" for e in cc.get("Env") or []):
        cc.setdefault("Env", []).append(f"PATH={DEFAULT_PATH}")
    return config


# -- Go-style formatting for history texts -----------------------------------------------------------

def go_list(items: list[str]) -> str:
    """fmt's %v of a []string."""
    return "[" + " ".join(items) + "]"


def go_quoted_list(items: list[str]) -> str:
    """fmt's %q of a []string."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


# -- the metadata instructions -----------------------------------------------------------------------

class Expander:
    """Expansion of instruction words with a stage's environment."""

    def __init__(self, escape: str):
        self.escape = escape

    def word(self, text: str, env: dict[str, str]) -> str:
        from builder.dockerfile.expand import expand

        return expand(text, env, self.escape)

    def words(self, text: str, env: dict[str, str]) -> list[str]:
        from builder.dockerfile.expand import expand_words

        return expand_words(text, env, self.escape)


def _rest(instr) -> str:
    return instr.args[0] if instr.args else ""


def _key_values(instr, ex: Expander, env: dict[str, str]) -> list[tuple[str, str]]:
    from builder.dockerfile.syntax import parse_key_values

    pairs = parse_key_values(_rest(instr), ex.escape, cmd=instr.cmd)
    return [(ex.word(k, env), ex.word(v, env)) for k, v in pairs]


def do_env(state: ImageState, instr, ex: Expander) -> str:
    pairs = _key_values(instr, ex, state.env)  # all against the env before this instruction
    for k, v in pairs:
        state.set_env(k, v)
    return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)


def do_label(state: ImageState, instr, ex: Expander) -> str:
    pairs = _key_values(instr, ex, state.env)
    labels = state.cc.get("Labels") or {}
    for k, v in pairs:
        labels[k] = v
    state.cc["Labels"] = labels
    return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)


def do_maintainer(state: ImageState, instr, ex: Expander) -> str:
    state.config["author"] = _rest(instr)
    return f"MAINTAINER {_rest(instr)}"


def _command_args(state: ImageState, instr) -> list[str]:
    if instr.json_form:
        return [str(a) for a in instr.args]
    return state.shell + [_rest(instr)]


def do_cmd(state: ImageState, instr, ex: Expander) -> str:
    args = _command_args(state, instr)
    state.cc["Cmd"] = args
    state.cc["ArgsEscaped"] = True
    state.cmd_set = True
    return f"CMD {go_quoted_list(args)}"


def do_entrypoint(state: ImageState, instr, ex: Expander) -> str:
    args = _command_args(state, instr)
    state.cc["Entrypoint"] = args
    if not state.cmd_set:
        state.cc.pop("Cmd", None)
    return f"ENTRYPOINT {go_quoted_list(args)}"


def parse_port(raw: str) -> list[str]:
    """One EXPOSE word ([ip:][hostport:]port[-end][/proto]) as "port/proto" entries."""
    parts = raw.split(":")
    container = parts[-1]
    port, _, proto = container.partition("/")
    proto = proto.lower() or "tcp"
    if not port:
        raise BuildError(f'invalid port: "{raw}": no port specified')
    if proto not in ("tcp", "udp", "sctp"):
        raise BuildError(f'invalid port: "{raw}": invalid proto: {proto}')
    start_s, sep, end_s = port.partition("-")
    try:
        start = int(start_s)
        end = int(end_s) if sep and end_s != start_s else start
    except ValueError:
        raise BuildError(f"invalid containerPort: {port}") from None
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise BuildError(f"invalid containerPort: {port}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def do_expose(state: ImageState, instr, ex: Expander) -> str:
    words = instr.words if instr.words else _rest(instr).split()
    ports: list[str] = []
    for w in words:
        for item in ex.words(w, state.env):
            ports.extend(parse_port(item))
    exposed = state.cc.get("ExposedPorts") or {}
    for p in ports:
        exposed[p] = {}
    state.cc["ExposedPorts"] = exposed
    return f"EXPOSE {go_list(ports)}"


def do_volume(state: ImageState, instr, ex: Expander) -> str:
    from builder.dockerfile.syntax import volume_paths

    paths = [ex.word(p, state.env) for p in volume_paths(instr)]
    volumes = state.cc.get("Volumes") or {}
    for p in paths:
        if not p:
            raise BuildError("VOLUME specified can not be an empty string")
        volumes[p] = {}
    state.cc["Volumes"] = volumes
    return f"VOLUME {go_list(paths)}"


def do_user(state: ImageState, instr, ex: Expander) -> str:
    user = ex.word(_rest(instr), state.env)
    state.cc["User"] = user
    return f"USER {user}"


def check_signal(text: str) -> None:
    """Accept what docker's signal.ParseSignal accepts: a number or a (SIG-prefixed) name."""
    try:
        parse_signal(text)
    except ValueError:
        raise BuildError(f"Invalid signal: {text}") from None


def do_stopsignal(state: ImageState, instr, ex: Expander) -> str:
    sig = ex.word(_rest(instr), state.env)
    check_signal(sig)
    state.cc["StopSignal"] = sig
    return f"STOPSIGNAL {sig}"


def do_healthcheck(state: ImageState, instr, ex: Expander) -> str:
    from builder.dockerfile.syntax import healthcheck_config

    hc = healthcheck_config(instr)
    state.cc["Healthcheck"] = hc
    return ("HEALTHCHECK {Test:" + go_list(hc["Test"]) + f" Interval:{format_go_duration(hc.get('Interval', 0))}"
            f" Timeout:{format_go_duration(hc.get('Timeout', 0))} StartPeriod:{format_go_duration(hc.get('StartPeriod', 0))}"
            f" StartInterval:{format_go_duration(hc.get('StartInterval', 0))} Retries:{hc.get('Retries', 0)}}}")


def do_shell(state: ImageState, instr, ex: Expander) -> str:
    if not instr.json_form:
        raise BuildError("SHELL requires the arguments to be in JSON form")
    state.cc["Shell"] = [str(a) for a in instr.args]
    return f"SHELL {go_list(state.cc['Shell'])}"


def do_onbuild(state: ImageState, instr, ex: Expander) -> None:
    state.cc.setdefault("OnBuild", []).append(instr.onbuild_expression)
    return None


def do_arg(state: ImageState, instr, ex: Expander, *, build_args: dict[str, str],
           global_args: dict[str, str]) -> str:
    """ARG inside a stage: --build-arg wins, then the default (expanded), then the global value."""
    from builder.dockerfile.syntax import parse_arg

    texts = []
    for key, default in parse_arg(_rest(instr), ex.escape):
        if key in build_args:
            value: str | None = build_args[key]
        elif default is not None:
            value = ex.word(default, state.env)
        else:
            value = global_args.get(key)
        if value is not None:
            state.env[key] = value
        state.build_args.append((key, value))
        texts.append(key if value is None else f"{key}={value}")
    return "ARG " + " ".join(texts)


METADATA = {
    "ENV": do_env, "LABEL": do_label, "MAINTAINER": do_maintainer, "CMD": do_cmd, "ENTRYPOINT": do_entrypoint,
    "EXPOSE": do_expose, "VOLUME": do_volume, "USER": do_user, "STOPSIGNAL": do_stopsignal,
    "HEALTHCHECK": do_healthcheck, "SHELL": do_shell, "ONBUILD": do_onbuild,
}


# What `docker import --change` (and commit) accepts: the instructions that only edit the config.
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


def config_from_changes(lines: list[str], base: dict | None = None) -> dict:
    """An image's "config" section from `--change` lines, each applied as its Dockerfile instruction to
    base (import: nothing; commit: the container's config)."""
    from builder.dockerfile.parser import parse

    # The parser wants a build stage first; "FROM scratch" is dropped again below.
    dockerfile = parse("FROM scratch\n" + "\n".join(lines), filename="--change")
    base = copy.deepcopy(base or {})
    state = ImageState({"config": base}, [], "", env=env_from_config(base))
    ex = Expander(dockerfile.escape)
    for instr in dockerfile.instructions[1:]:
        if instr.cmd not in CHANGE_INSTRUCTIONS:
            raise BuildError(f"--change: {instr.cmd} is not supported (use CMD, ENTRYPOINT, ENV, "
                             "EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR)")
        if instr.cmd == "WORKDIR":
            state.cc["WorkingDir"] = normalize_workdir(state.workdir, ex.word(_rest(instr), state.env))
        else:
            METADATA[instr.cmd](state, instr, ex)
    state.cc.pop("ArgsEscaped", None)  # docker's import does not set it (BuildKit's CMD does)
    return state.cc


def normalize_workdir(current: str, path: str) -> str:
    """WORKDIR: relative paths are taken from the current working dir; the result is clean."""
    if not path.startswith("/"):
        path = posixpath.join(current or "/", path)
    return posixpath.normpath(path) if path != "/" else "/"


def dest_path(workdir: str, dest: str) -> str:
    """A COPY/ADD destination made absolute against WORKDIR, keeping a trailing "/" (dir meaning)."""
    trailing = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    dest = posixpath.normpath(dest)
    if dest.startswith("//"):
        dest = "/" + dest.lstrip("/")
    if trailing and not dest.endswith("/"):
        dest += "/"
    return dest


def run_history(args: list[str], state: ImageState) -> str:
    """BuildKit's RUN history text: "|N K=V ... " before the command when the stage declared ARGs."""
    seen: dict[str, int] = {}
    pairs: list[str] = []
    for key, value in state.build_args:
        v = state.env.get(key, value if value is not None else "")
        if key in seen:
            pairs[seen[key]] = f"{key}={v}"
        else:
            seen[key] = len(pairs)
            pairs.append(f"{key}={v}")
    prefix = [f"|{len(pairs)}", *pairs] if pairs else []
    return "RUN " + " ".join(prefix + list(args))
