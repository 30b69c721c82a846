"""Output the way docker prints it: sizes, ages, tables, Go-template fields, `inspect` documents and the
report of a `prune`."""

from __future__ import annotations

import json

from builder.cli.shared import UsageError


def human_size(size: float) -> str:
    """docker's units.HumanSize: decimal units, 3 significant digits ("4.26MB", "712kB", "0B")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    text = f"{size:.3g}"
    if "e" in text:
        text = f"{size:.0f}"
    return f"{text}{units[i]}"


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def ellipsis(text: str, width: int) -> str:
    """docker's truncation of a long cell: `width` characters at most, the last one "…"."""
    return text if len(text) <= width else text[:width - 1] + "…"


def print_table(rows: list[list[str]]) -> None:
    """Columns padded like docker's tabwriter (minwidth 10, padding 3: at least 3 spaces between columns)."""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    for r in rows:
        cells = [c.ljust(max(widths[i] + 3, 10)) if i < len(r) - 1 else c for i, c in enumerate(r)]
        print("".join(cells).rstrip())


def print_formatted(fmt: str, rows: list[dict], headers: dict[str, str], default_table: str) -> None:
    """docker's --format for a list command: "table [TEMPLATE]" (a header row, columns aligned), "json"
    (one JSON object a line) or a plain Go template a line; \\t and \\n in it are a tab and a newline."""
    if fmt == "json":  # the fields, not the methods (a `.Label "key"` takes an argument)
        for row in rows:
            print(json.dumps({k: v for k, v in row.items() if not callable(v)}, sort_keys=True, ensure_ascii=False,
                             separators=(",", ":")))
        return
    table = fmt.startswith("table")
    template = (fmt[len("table"):].strip() or default_table) if table else fmt
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    if not table:
        for row in rows:
            print(render_template(template, row))
        return
    # docker ignores an error in the header row (a `.Label "key"` has no header): it keeps what came before
    lines = [render_template(template, headers, partial=True)] + [render_template(template, row) for row in rows]
    print_table([line.split("\t") for line in lines])


def _go_format(value) -> str:
    """fmt.Sprint of a decoded JSON value, as docker's templates print it."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def render_template(template: str, data: dict, partial: bool = False) -> str:
    """The small part of Go templates people use with inspect and the list commands: {{.A.B}},
    {{json .A.B}}, {{index .A "k"}}, {{range .A}}...{{end}} (not nested), and a method with string arguments,
    {{.Label "k"}} (a callable in data). partial: on an error, the text rendered before it."""
    import re

    def lookup(path: str):
        value = data
        for part in [p for p in path.split(".") if p]:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def repl(action: str) -> str:
        expr = action.strip()
        if expr.startswith("json "):
            return json.dumps(lookup(expr[5:].strip()), separators=(",", ":"), ensure_ascii=False)
        idx = re.fullmatch(r'index\s+(\S+)\s+"([^"]*)"', expr)
        if idx:
            base = lookup(idx.group(1))
            return _go_format(base.get(idx.group(2)) if isinstance(base, dict) else None)
        call = re.fullmatch(r'(\.\S*)((?:\s+"[^"]*")+)', expr)
        if call:
            method = lookup(call.group(1))
            if not callable(method):
                raise UsageError(f"template: can't give argument to non-function {call.group(1)}")
            return _go_format(method(*re.findall(r'"([^"]*)"', call.group(2))))
        if expr.startswith("."):
            value = lookup(expr)
            if callable(value):
                raise UsageError(f"template: wrong number of args for {expr[1:]}: want 1 got 0")
            return _go_format(value)
        raise UsageError(f"unsupported template expression {{{{{expr}}}}}")

    check_template(template)  # an unclosed action is an error, never text printed back

    def each(m: re.Match) -> str:  # {{range .X}}...{{end}}: the body once per element (a map's by sorted key)
        items = lookup(m.group(1).strip())
        if isinstance(items, dict):
            items = [items[k] for k in sorted(items)]
        return "".join(render_template(m.group(2), item) for item in items or [])

    template = re.sub(r"\{\{\s*range\s+([^}]*?)\s*\}\}(.*?)\{\{\s*end\s*\}\}", each, template, flags=re.S)
    out = []
    for text, action in _parse(template):
        try:
            out.append(text if action is None else repl(action))
        except UsageError:
            if not partial:
                raise
            break
    return "".join(out)


def check_template(template: str) -> None:
    """A template's syntax errors, before any data is read (docker parses --format first)."""
    _parse(template)


def _parse(template: str) -> list[tuple[str, str | None]]:
    """The template as (text, None) and (text, action) pieces; Go's errors for a malformed action."""
    pieces, pos = [], 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            pieces.append((template[pos:], None))
            return pieces
        end = template.find("}}", start + 2)
        line = template.count("\n", 0, start) + 1
        if end < 0:  # Go's text/template refuses it; printing the template back would hide the mistake
            raise UsageError(f"template parsing error: template: :{line}: unclosed action")
        if not template[start + 2:end].strip():
            raise UsageError(f"template parsing error: template: :{line}: missing value for command")
        pieces += [(template[pos:start], None), (template[start:end + 2], template[start + 2:end])]
        pos = end + 2


def print_inspect(docs: list[dict], template: str | None) -> None:
    """`inspect` output: each document through the -f template, or all of them as one JSON list."""
    if template:
        for doc in docs:
            print(render_template(template, doc))
    else:
        print(json.dumps(docs, indent=4))


def print_prune_report(kind: str, deleted: list[str], reclaimed: int) -> None:
    """A `prune`'s report: what went ("Deleted Volumes:" and one line each), then the space it freed."""
    if deleted:
        print(f"Deleted {kind}:")
        for line in deleted:
            print(line)
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
