"""Pass 1 of the Dockerfile parser and the words of instructions: text -> raw nodes, and the node types.

It follows `docker build` (BuildKit's Dockerfile frontend) closely: BOM, parser directives at the very
top (`# escape=`, `# syntax=`, `# check=`), comments, line continuations with the escape character
(continuation lines that are blank or comments are skipped), instruction flags (`--name=value` words
right after the instruction), exec (JSON array) or shell form, ENV/LABEL pairs, and heredocs (`<<EOF`,
`<<-EOF`, `<<'EOF'`) for RUN, COPY, ADD (and ONBUILD of those).

Also here: the Instruction type pass 2 (checks.py) makes of each node, and the small parsers of
instruction words (ARG, ENV/LABEL pairs, heredoc markers, ADD/COPY operands, VOLUME, HEALTHCHECK)
that both the checks and the engine use. parser.py runs both passes.

Nothing is expanded here: `$VAR` stays as written (see builder.dockerfile.expand).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from builder.dockerfile.expand import ShellLexer, is_go_space
from builder.errors import BuildError, DockerfileError
from oci_runtime.units import go_duration, go_quote

DEFAULT_ESCAPE = "\\"

INSTRUCTIONS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)

# Directives docker knows; any other `# name=value` line is a comment and ends the
# directive block.
KNOWN_DIRECTIVES = ("syntax", "escape", "check")

_DIRECTIVE_LINE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_SPLIT_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_HEREDOC_COMMANDS = ("ADD", "COPY", "RUN")


@dataclass
class Heredoc:
    """An inline file: `<<NAME` on the instruction line, its body on the lines after.

    content is the body exactly as written (each line with its newline);
    expand is False when any part of the delimiter was quoted (`<<'EOF'`, `<<"EOF"`,
    `<<E"O"F`): then docker expands no variables in the body.  chomp is `<<-`:
    leading tabs of every body line are dropped (see text).  fd is the file
    descriptor number written before `<<` (`3<<EOF`), 0 when none.
    """

    name: str
    content: str
    expand: bool
    chomp: bool
    fd: int = 0

    @property
    def text(self) -> str:
        """The body as the command sees it: leading tabs removed for `<<-`."""
        return chomp_heredoc(self.content) if self.chomp else self.content


@dataclass
class Instruction:
    """One instruction, unexpanded.

    cmd is upper-case.  flags maps a flag name to its values in order ("--from=x" ->
    {"from": ["x"]}); bool flags are normalised to "true"/"false"; flags docker ignores
    (on ARG, STOPSIGNAL, HEALTHCHECK NONE) are left out.
    args is the exec-form array when json_form, else [the rest of the line after the
    flags] ([] when there is none).  words is the argument list as docker's parser
    splits it: the JSON array; whitespace-separated words for ADD, COPY, VOLUME, EXPOSE
    and FROM (quotes are not special there); ARG's words (quotes kept);
    [TYPE, *command] for HEALTHCHECK; otherwise the same as args.
    For ONBUILD, trigger is the parsed inner instruction.
    lineno/end_lineno are 1-based and include heredoc bodies; original is the
    instruction line with continuations joined.
    """

    cmd: str
    args: list[str]
    flags: dict[str, list[str]]
    json_form: bool
    heredocs: list[Heredoc]
    lineno: int
    end_lineno: int
    original: str
    words: list[str] = field(default_factory=list)
    trigger: Instruction | None = None

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The last value of a flag, or default when it was not given."""
        values = self.flags.get(name)
        return values[-1] if values else default

    @property
    def onbuild_expression(self) -> str:
        """For ONBUILD: the trigger as docker stores it in the image config's OnBuild
        list (heredoc bodies appended); parse() of it gives the trigger back."""
        if self.cmd != "ONBUILD":
            raise ValueError(f"{self.cmd} is not an ONBUILD instruction")
        text = _ONBUILD_PREFIX.sub("", self.original, count=1)
        for heredoc in self.heredocs:
            text += "\n" + heredoc.content + heredoc.name
        return text



@dataclass
class CopyParts:
    """The operands of ADD/COPY: file sources, inline (heredoc) sources, destination."""

    sources: list[str]
    heredocs: list[Heredoc]
    dest: str


# ---------------------------------------------------------------------------
# small helpers (checks.py uses some)


def _lstrip(text: str) -> str:
    i = 0
    while i < len(text) and is_go_space(text[i]):
        i += 1
    return text[i:]


def strip_go_space(text: str) -> str:
    text = _lstrip(text)
    j = len(text)
    while j > 0 and is_go_space(text[j - 1]):
        j -= 1
    return text[:j]


def _split_whitespace(text: str) -> list[str]:
    return _SPLIT_WHITESPACE.split(text) if text else []


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def chomp_heredoc(content: str) -> str:
    """Drop the leading tabs of every line (the `<<-` heredoc form)."""
    return _LEADING_TABS.sub("", content)


# ---------------------------------------------------------------------------
# pass 1: lines -> raw nodes


class _Directives:
    """Parser directives: only at the top, before any instruction, comment or blank line."""

    def __init__(self) -> None:
        self.done = False
        self.values: dict[str, str] = {}
        self.escape = DEFAULT_ESCAPE
        self.continuation = _continuation_regex(DEFAULT_ESCAPE)

    def parse_line(self, line: str) -> bool:
        """True if line is a directive; raises BuildError for a repeated or bad one."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE_LINE.match(_lstrip(line[1:]))
        if not match or match.group(1).lower() not in KNOWN_DIRECTIVES:
            self.done = True
            return False
        name, value = match.group(1).lower(), match.group(2)
        if name in self.values:
            raise BuildError(f"only one {name} parser directive can be used")
        if name == "escape":
            if value not in ("`", "\\"):
                raise BuildError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = _continuation_regex(value)
        self.values[name] = value
        return True


def _continuation_regex(escape: str) -> re.Pattern[str]:
    # The escape character as the last non-blank character continues the line,
    # unless it is itself escaped ("foo \\" ends the line).
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


@dataclass
class Node:
    """An instruction line as pass 1 sees it, before any checking."""

    cmd: str  # as written
    raw_flags: list[str]
    rest: str
    words: list[str]
    json_form: bool
    original: str
    lineno: int
    end_lineno: int = 0
    heredocs: list[Heredoc] = field(default_factory=list)
    pairs: list[tuple[str, str]] | None = None
    child: Node | None = None


def _split_lines(text: str) -> list[str]:
    """Split at \\n only (as docker does), keeping the line endings."""
    lines = text.split("\n")
    result = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        result.append(lines[-1])
    return result


def read_nodes(text: str, filename: str) -> tuple[list[Node], _Directives]:
    """Pass 1: the instructions of text as raw nodes, and the parser directives at its top."""
    directives = _Directives()
    lines = _split_lines(text[1:] if text.startswith("\ufeff") else text)
    nodes: list[Node] = []
    lineno = 0
    i = 0

    def fail(message: str, line: int) -> DockerfileError:
        return DockerfileError(filename, line, message)

    while i < len(lines):
        raw = lines[i]
        i += 1
        lineno += 1
        line = _lstrip(raw.rstrip("\r\n"))
        try:
            directives.parse_line(line)
        except BuildError as err:
            raise fail(str(err), lineno) from None
        if _is_comment(line):
            line = ""
        start = lineno
        line, ended = _trim_continuation(line, directives)
        if ended and not line:
            continue
        parts = [line]
        while not ended and i < len(lines):
            raw = lines[i]
            i += 1
            lineno += 1
            if _is_comment(raw):
                continue
            line = raw.rstrip("\r\n")
            if not _lstrip(line):
                continue  # blank continuation lines are skipped
            line, ended = _trim_continuation(line, directives)
            parts.append(line)
        joined = "".join(parts)
        try:
            node = _node_from_line(joined, directives.escape, start)
        except BuildError as err:
            raise fail(str(err), start) from None

        target = node.child if node.cmd.upper() == "ONBUILD" and node.child else node
        if target.cmd.upper() in _HEREDOC_COMMANDS and not target.json_form and "<<" in joined:
            try:
                wanted = _heredocs_from_line(joined)
            except BuildError as err:
                raise fail(str(err), start) from None
            for heredoc in wanted:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    lineno += 1
                    candidate = raw.rstrip("\r\n")
                    if heredoc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == heredoc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise fail(f"unterminated heredoc {heredoc.name}", start)
                heredoc.content = "".join(body)
                node.heredocs.append(heredoc)
            if node.child is not None:
                node.child.heredocs = node.heredocs
        node.end_lineno = lineno
        if node.child is not None:
            node.child.end_lineno = lineno
        nodes.append(node)
    return nodes, directives


def _trim_continuation(line: str, directives: _Directives) -> tuple[str, bool]:
    """Remove a trailing continuation character; the bool is True when the line ends."""
    trimmed, count = directives.continuation.subn(r"\1", line)
    return (trimmed, False) if count else (line, True)


def _node_from_line(line: str, escape: str, lineno: int) -> Node:
    stripped = strip_go_space(line)
    cmd_and_rest = _SPLIT_WHITESPACE.split(stripped, maxsplit=1)
    cmd = cmd_and_rest[0]
    raw_flags: list[str] = []
    rest = ""
    if len(cmd_and_rest) == 2:
        rest, raw_flags = _extract_flags(cmd_and_rest[1], escape)
        rest = strip_go_space(rest)
    node = Node(cmd=cmd, raw_flags=raw_flags, rest=rest, words=[], json_form=False, original=line, lineno=lineno)
    kind = cmd.upper()
    if kind in ("ADD", "COPY", "VOLUME"):
        node.words, node.json_form = _maybe_json_or_split(rest)
    elif kind in ("EXPOSE", "FROM"):
        node.words = _split_whitespace(rest)
    elif kind in ("CMD", "ENTRYPOINT", "RUN", "SHELL"):
        node.words, node.json_form = _maybe_json(rest)
    elif kind in ("ENV", "LABEL"):
        node.pairs = parse_key_values(rest, escape, cmd=kind) if rest else []
        node.words = [rest] if rest else []
    elif kind == "ARG":
        node.words = _parse_words(rest, escape)
    elif kind == "HEALTHCHECK":
        node.words, node.json_form = _healthcheck_words(rest)
    elif kind == "ONBUILD":
        node.words = [rest] if rest else []
        if rest:
            node.child = _node_from_line(rest, escape, lineno)
    else:
        node.words = [rest] if rest else []
    return node


def _extract_flags(text: str, escape: str) -> tuple[str, list[str]]:
    """Split leading `--flag[=value]` words off text; returns (rest, flags).

    Quotes and the escape character work inside flag words; a bare `--` ends them.
    """
    flags: list[str] = []
    n = len(text)
    pos = 0
    while True:
        while pos < n and is_go_space(text[pos]):
            pos += 1
        if pos == n:
            return "", flags
        if not text.startswith("--", pos):
            return text[pos:], flags
        word: list[str] = []
        quote = ""
        quoted = False
        while pos < n:
            ch = text[pos]
            if quote:
                if ch == quote:
                    quote = ""
                    pos += 1
                    continue
            elif is_go_space(ch):
                break
            elif ch in "'\"":
                quote = ch
                quoted = True
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    quote = ""
                    pos += 1
                    continue
                pos += 1
                ch = text[pos]
            word.append(ch)
            pos += 1
        flag = "".join(word)
        if flag == "--":
            return text[pos:], flags
        if flag or quoted:
            flags.append(flag)


def _parse_json_array(text: str) -> list[str] | None:
    """The JSON array of strings text holds, or None when text is not a JSON array.

    A valid array with a non-string item is an error, as in docker.
    """
    text = _lstrip(text)
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise BuildError("when using JSON array syntax, arrays must be comprised of strings only")
    return [_replace_lone_surrogates(item) for item in value]


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity are not JSON (Go refuses them)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_lone_surrogates(text: str) -> str:
    # Go decodes an unpaired \ud800 escape as U+FFFD; keep our strings encodable too.
    return _LONE_SURROGATE.sub("\ufffd", text)


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    array = _parse_json_array(rest)
    if array is not None:
        return array, True
    return [rest], False


def _maybe_json_or_split(rest: str) -> tuple[list[str], bool]:
    array = _parse_json_array(rest)
    if array is not None:
        return array, True
    return _split_whitespace(rest), False


def _healthcheck_words(rest: str) -> tuple[list[str], bool]:
    end = 0
    while end < len(rest) and not is_go_space(rest[end]):
        end += 1
    if end == 0:
        return [], False
    kind = rest[:end]
    command, json_form = _maybe_json(_lstrip(rest[end:]))
    return [kind, *command], json_form


def _parse_words(text: str, escape: str) -> list[str]:
    """Split text at blanks outside quotes, keeping quotes and escapes (ARG, ENV, LABEL)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    keep_empty = False
    in_word = False
    n = len(text)
    pos = 0
    while pos < n:
        ch = text[pos]
        if not in_word:
            if is_go_space(ch):
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = text[pos]
            word.append(ch)
            pos += 1
            continue
        if is_go_space(ch):
            if keep_empty or word:
                words.append("".join(word))
            word, keep_empty, in_word = [], False, False
            pos += 1
            continue
        if ch in "'\"":
            quote = ch
            keep_empty = True
        elif ch == escape:
            if pos + 1 == n:
                pos += 1
                continue
            # An escaped character (even a quote) is kept with its escape.
            word.append(ch)
            pos += 1
            ch = text[pos]
        word.append(ch)
        pos += 1
    if in_word and (keep_empty or word):
        words.append("".join(word))
    return words


def parse_key_values(text: str, escape: str = DEFAULT_ESCAPE, *, cmd: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of an ENV or LABEL argument text, unexpanded.

    `k=v k2="v 2"` gives one pair per word (quotes kept, for expand() to remove);
    the legacy `ENV k some value` gives one pair whose value is the rest of the line.
    """
    words = _parse_words(text, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _SPLIT_WHITESPACE.split(text, maxsplit=1)
        if len(parts) < 2:
            raise BuildError(f"{cmd} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise BuildError(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        key, value = word.split("=", 1)
        pairs.append((key, value))
    return pairs


def parse_arg(text: str, escape: str = DEFAULT_ESCAPE) -> list[tuple[str, str | None]]:
    """The (name, default) pairs of an ARG argument text; default None when not given."""
    pairs: list[tuple[str, str | None]] = []
    for word in _parse_words(text, escape):
        if "=" in word:
            key, value = word.split("=", 1)
            if not key:
                raise BuildError("ARG names can not be blank")
            pairs.append((key, value))
        else:
            pairs.append((word, None))
    return pairs


def parse_heredoc_word(word: str) -> Heredoc | None:
    """The heredoc a word like `<<EOF`, `<<-'EOF'` or `3<<EOF` opens, else None.

    The returned Heredoc has empty content.
    """
    match = _HEREDOC_WORD.match(word)
    if not match or not match.group(3):
        return None
    fd, chomp, rest = match.groups()
    names = ShellLexer("\\", skip_unset=True).process_words(rest, {})
    if len(names) != 1:
        return None
    raw = ShellLexer("\\", skip_unset=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != 1:
        raise BuildError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = names[0]
    # Any quoting in the delimiter turns expansion off: compare with and without quotes.
    quoted = raw[0].count("'") + raw[0].count('"') != name.count("'") + name.count('"')
    return Heredoc(name=name, content="", expand=not quoted, chomp=chomp == "-", fd=int(fd or 0))


def heredoc_marker(word: str) -> Heredoc | None:
    """parse_heredoc_word, with a malformed marker counting as no marker (as in docker)."""
    try:
        return parse_heredoc_word(word)
    except BuildError:
        return None


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lexer = ShellLexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process_words(line, {})
    except BuildError:
        return []  # docker ignores a line it cannot split here; the shell will complain
    found = []
    for word in words:
        heredoc = parse_heredoc_word(word)
        if heredoc is not None:
            found.append(heredoc)
    return found


# ---------------------------------------------------------------------------
# typed views of some instructions, for the checks and the engine



def copy_parts(inst: Instruction) -> CopyParts:
    """ADD/COPY operands; `<<NAME` sources become the heredocs of that name."""
    if inst.cmd not in ("ADD", "COPY"):
        raise ValueError(f"{inst.cmd} is not ADD or COPY")
    by_name = {heredoc.name: heredoc for heredoc in inst.heredocs}
    sources: list[str] = []
    inline: list[Heredoc] = []
    for word in inst.words[:-1]:
        marker = heredoc_marker(word)
        if marker is None:
            sources.append(word)
        else:
            found = by_name.get(marker.name)
            inline.append(Heredoc(marker.name, found.content if found else "", marker.expand, marker.chomp, marker.fd))
    return CopyParts(sources=sources, heredocs=inline, dest=inst.words[-1])


def volume_paths(inst: Instruction) -> list[str]:
    """VOLUME's paths (each trimmed, as docker does), unexpanded."""
    if inst.cmd != "VOLUME":
        raise ValueError(f"{inst.cmd} is not VOLUME")
    return [strip_go_space(word) for word in inst.words]


def _interval(inst_flags: dict[str, list[str]], name: str) -> int:
    values = inst_flags.get(name)
    if not values or values[-1] == "":
        return 0
    try:
        nanos = go_duration(values[-1])
    except ValueError as e:
        raise BuildError(str(e)) from None
    if nanos == 0:
        return 0
    if nanos < 10**6:
        raise BuildError(f"Interval {go_quote(name)} cannot be less than 1ms")
    return nanos


def _parse_int32(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise BuildError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise BuildError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def healthcheck_config(inst: Instruction) -> dict:
    """HEALTHCHECK as docker's image config "Healthcheck" object.

    Keys: Test (["NONE"], ["CMD", ...] or ["CMD-SHELL", "cmd"]), Interval, Timeout,
    StartPeriod, StartInterval (nanoseconds), Retries; zero values are left out, as
    docker's JSON does.
    """
    if inst.cmd != "HEALTHCHECK":
        raise ValueError(f"{inst.cmd} is not HEALTHCHECK")
    if not inst.words:
        raise BuildError("HEALTHCHECK requires at least one argument")
    kind = inst.words[0].upper()
    command = inst.words[1:]
    if kind == "NONE":
        if command:
            raise BuildError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise BuildError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    if not command:
        raise BuildError("Missing command after HEALTHCHECK CMD")
    config: dict = {"Test": ["CMD", *command] if inst.json_form else ["CMD-SHELL", " ".join(command)]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        nanos = _interval(inst.flags, flag)
        if nanos:
            config[key] = nanos
    retries = inst.flag("retries", "")
    if retries:
        count = _parse_int32(retries)
        if count < 0:
            raise BuildError(f"--retries cannot be negative ({count})")
        if count:
            config["Retries"] = count
    return config
