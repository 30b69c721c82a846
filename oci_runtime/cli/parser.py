"""A small command-line parser with runc's conventions (urfave/cli style), for the hot path.

argparse imports `re` and `gettext`, which together cost more than the rest of `pyrunc state`. This
parser knows exactly what runc accepts: global flags before the command; `--flag value`, `--flag=value`,
`-f value`; boolean flags; flags before the positional arguments; `--` ends the flags.
"""

from __future__ import annotations

from oci_runtime.errors import RuntimeFailure


class UnknownCommand(RuntimeFailure):
    """runc's words and exit status (3) for a command it does not know."""

    exit_status = 3


class UsageError(RuntimeFailure):
    pass


class Opt:
    """One flag. kind: "bool", "str", "int" or "list" (repeatable)."""

    def __init__(self, names: str, kind: str = "bool", default=None, help: str = "", dest: str | None = None,
                 choices: tuple[str, ...] | None = None, hidden: bool = False):
        self.names = names.split()
        self.kind = kind
        self.dest = dest or self.names[-1].lstrip("-").replace("-", "_")
        self.default = [] if kind == "list" and default is None else (False if kind == "bool" and default is None
                                                                         else default)
        self.help = help
        self.choices = choices
        self.hidden = hidden


class Cmd:
    """A command: its flags, its positional arguments ("name", "name?" optional, "name..." the rest)."""

    def __init__(self, name: str, func, help: str, opts: list[Opt] = (), args: tuple[str, ...] = (),
                 aliases: tuple[str, ...] = (), failure_status: int = 1):
        self.failure_status = failure_status  # the exit status when the command fails (runc's exec: 255)
        self.name = name
        self.func = func
        self.help = help
        self.opts = list(opts) + [Opt("-h --help", help="show help")]
        self.args = args
        self.aliases = aliases


class Args:
    """The parsed values, as attributes."""

    def __init__(self, **values):
        self.__dict__.update(values)


def _parse_flags(words: list[str], opts: list[Opt], values: dict, where: str, stop_at_positional: bool) -> list[str]:
    """Consume leading flags from words into values; return what is left."""
    table = {name: opt for opt in opts for name in opt.names}
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return words[i + 1:]
        if not word.startswith("-") or word == "-":
            if stop_at_positional:
                return words[i:]
            break
        name, eq, inline = word.partition("=")
        opt = table.get(name)
        if opt is None and not name.startswith("--") and len(name) > 2:
            opt = table.get("-" + name)  # Go's flag package also takes -flag for --flag
        if opt is None:
            raise UsageError(f"{where}: flag provided but not defined: {name}")
        if opt.kind == "bool":
            if eq:
                if inline.lower() not in ("true", "false", "1", "0"):
                    raise UsageError(f"{where}: invalid boolean value {inline!r} for {name}")
                values[opt.dest] = inline.lower() in ("true", "1")
            else:
                values[opt.dest] = True
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(words):
                raise UsageError(f"{where}: flag needs an argument: {name}")
            value = words[i + 1]
            i += 2
        if opt.choices and value not in opt.choices:
            raise UsageError(f"{where}: invalid value {value!r} for {name} (choose from {', '.join(opt.choices)})")
        if opt.kind == "int":
            try:
                value = int(value)
            except ValueError:
                raise UsageError(f"{where}: invalid value {value!r} for {name}: not a number") from None
        if opt.kind == "list":
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
    return words[i:]


def parse(argv: list[str], global_opts: list[Opt], find_command, prog: str) -> tuple[Args, Cmd | None]:
    """Global flags, then the command (find_command(name) -> Cmd or None), its flags and arguments."""
    values = {opt.dest: opt.default for opt in global_opts}
    rest = _parse_flags(argv, global_opts + [Opt("-h --help")], values, prog, stop_at_positional=True)
    if values.pop("help", False) or not rest:
        return Args(**values, command=None), None
    cmd = find_command(rest[0])
    if cmd is None:
        raise UnknownCommand(f"No help topic for '{rest[0]}'")
    values["command"] = cmd.name
    for opt in cmd.opts:
        values[opt.dest] = list(opt.default) if opt.kind == "list" else opt.default
    where = f"{prog} {cmd.name}"
    if any(a.endswith("...") for a in cmd.args):  # a command line to run follows: its flags are its own
        positionals = _parse_flags(rest[1:], cmd.opts, values, where, stop_at_positional=True)
    else:  # runc's CLI takes flags after the arguments too (`runc update ID --memory 64m`)
        positionals = _parse_interleaved(rest[1:], cmd.opts, values, where)
    if values.get("help"):
        return Args(**values), cmd
    required = [a for a in cmd.args if not a.endswith(("?", "..."))]
    if len(positionals) < len(required):
        raise UsageError(f"{where}: requires {' '.join(_arg_usage(a) for a in cmd.args)}; missing "
                         f"{', '.join(required[len(positionals):])}")
    for name in cmd.args:
        key = name.rstrip("?.")
        if name.endswith("..."):
            values[key] = positionals
            positionals = []
        else:
            values[key] = positionals.pop(0) if positionals else None
    if positionals:
        raise UsageError(f"{where}: unexpected argument(s): {' '.join(positionals)}")
    return Args(**values), cmd


def _parse_interleaved(words: list[str], opts: list[Opt], values: dict, where: str) -> list[str]:
    """Flags anywhere among the positional arguments (all positional after "--")."""
    tail: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, tail = words[:cut], words[cut + 1:]
    positionals: list[str] = []
    while words:
        words = _parse_flags(words, opts, values, where, stop_at_positional=True)
        if words:
            positionals.append(words[0])
            words = words[1:]
    return positionals + tail


def _arg_usage(name: str) -> str:
    if name.endswith("..."):
        return f"[{name[:-3].upper()}...]"
    if name.endswith("?"):
        return f"[{name[:-1].upper()}]"
    return name.upper()


def _opt_usage(opt: Opt) -> str:
    names = ", ".join(opt.names)
    if opt.kind != "bool":
        names += " " + (("{" + "|".join(opt.choices) + "}") if opt.choices else "VALUE")
    return names


def help_text(prog: str, description: str, global_opts: list[Opt], commands: list[Cmd], cmd: Cmd | None) -> str:
    """runc's help layout (NAME, USAGE, COMMANDS or OPTIONS), which scripts and its test suite read."""
    if cmd is not None:
        usage = f"{prog} {cmd.name} [command options] {' '.join(_arg_usage(a) for a in cmd.args)}".rstrip()
        lines = ["NAME:", f"   {prog} {cmd.name} - {cmd.help}", "", "USAGE:", f"   {usage}", "", "OPTIONS:"]
        opts = cmd.opts
    else:
        lines = ["NAME:", f"   {prog} - {description}", "", "USAGE:",
                 f"   {prog} [global options] command [command options] [arguments...]", "", "COMMANDS:"]
        lines += [f"   {', '.join((c.name, *c.aliases)):<12} {c.help}" for c in commands]
        lines += ["", "GLOBAL OPTIONS:"]
        opts = global_opts
    lines += [f"   {_opt_usage(o):<32} {o.help}" for o in opts if not o.hidden]
    return "\n".join(lines)
