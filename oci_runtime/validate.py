"""Check config.json (and the other runtime documents) against spec/*.schema.json, fast.

`pyrunc create` validates every config, and importing jsonschema costs more than a whole
`runc run`. So this module interprets the subset of JSON Schema 2020-12 our schemas use. Each
schema node becomes a small closure the first time an instance reaches it (``$ref`` targets are
compiled on first use), and the first problem found is raised with the path of the field at fault:

    config.json: linux.namespaces[2].type: "foo" is not one of "pid", "network", ...

Accept/reject agrees with jsonschema (tests/runtime/config/test_validate.py checks that); unlike jsonschema,
only the first error is reported. Supported keywords: SUPPORTED_KEYWORDS; anything else in a
schema is refused when that node is compiled, so a schema can never be silently half-checked.
"""

from __future__ import annotations

import spec as _spec
from oci_runtime.errors import ConfigInvalid
from oci_runtime.jsonio import loads

_schemas: dict[str, dict] = {}


def load_schema(name: str) -> dict:
    """A schema of spec/, parsed once per process. The dict is shared: treat it as read-only."""
    filename = _spec.schema_filename(name)
    schema = _schemas.get(filename)
    if schema is None:
        with open(_spec.schema_path(filename), "rb") as f:
            schema = _schemas[filename] = loads(f.read())
    return schema


SUPPORTED_KEYWORDS = frozenset({
    "type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    "properties", "required", "additionalProperties", "propertyNames", "dependentRequired", "minProperties",
    "items", "minItems", "maxItems", "uniqueItems",
    "pattern", "minLength", "maxLength",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
})
# Keywords that carry no assertion. "title" also completes messages: '"x" is not <title>'.
ANNOTATION_KEYWORDS = frozenset({
    "$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples", "deprecated",
})
# Which check builds on a keyword; "" for those that build none themselves ("then"/"else" act through "if").
_KEYWORD_GROUPS = {
    **{k: "object" for k in ("properties", "required", "additionalProperties", "propertyNames",
                             "dependentRequired", "minProperties")},
    **{k: "array" for k in ("items", "minItems", "maxItems", "uniqueItems")},
    **{k: "string" for k in ("pattern", "minLength", "maxLength")},
    **{k: "number" for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")},
    **{k: k for k in ("type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf", "not", "if")},
    "then": "", "else": "",
    **{k: "" for k in ANNOTATION_KEYWORDS},
}


class ValidationError(ValueError):
    """A document does not match its schema. str(): "<document>: <path>: <message>".

    path is the field as text ("linux.namespaces[2].type"); segments the same as keys and indices.
    """

    def __init__(self, path: str, message: str, document: str = "", *, segments: tuple = ()):
        self.path = path
        self.message = message
        self.document = document
        self.segments = tuple(segments)
        super().__init__(": ".join(part for part in (document, path, message) if part))


class ConfigError(ValidationError, ConfigInvalid):
    """config.json (or an exec process.json) is invalid; the CLI prints str() as the error."""

    def __init__(self, path: str, message: str, document: str = "config.json", *, segments: tuple = ()):
        super().__init__(path, message, document, segments=segments)


class SchemaUnsupported(Exception):
    """A schema uses a keyword this interpreter does not implement (a bug in spec/, not in the input)."""


def validate(instance: object, schema_name: str, *, document: str | None = None) -> None:
    """Raise ValidationError unless instance matches the schema.

    schema_name is "state", "state.schema.json", or a pointer into one such as
    "config.schema.json#/$defs/process". document labels the message (default: the schema's stem).
    """
    check = _COMPILER.entry(schema_name)
    try:
        check(instance)
    except _Invalid as e:
        if document is None:
            document = _spec.schema_filename(schema_name.split("#", 1)[0]).split(".", 1)[0]
        segments = e.path[::-1]
        raise ValidationError(format_path(segments), e.message, document, segments=segments) from None


def validate_config(config: object) -> None:
    """Check a bundle's config.json; raise ConfigError naming the field.

    Beyond the schema this applies the spec's rules JSON Schema cannot express: namespace types
    and rlimit types must not repeat. process stays optional (the spec needs it only to start).
    """
    _check_as_config(config, "config.schema.json", "config.json")
    _check_no_duplicates(config.get("linux", {}).get("namespaces", ()), "linux.namespaces", "namespace type",
                         "config.json")
    _check_no_duplicates(config.get("process", {}).get("rlimits", ()), "process.rlimits", "rlimit", "config.json")


def validate_process(process: object, document: str = "process.json") -> None:
    """Check the process document of `exec --process` (the shape of config.json's process)."""
    _check_as_config(process, "config.schema.json#/$defs/process", document)
    _check_no_duplicates(process.get("rlimits", ()), "rlimits", "rlimit", document)


def validate_resources(resources: object, document: str = "resources") -> None:
    """Check the LinuxResources document of `update --resources` (zeros mean 'unchanged' there)."""
    _check_as_config(resources, "config.schema.json#/$defs/resources", document)


def _check_as_config(instance: object, schema_name: str, document: str) -> None:
    check = _COMPILER.entry(schema_name)
    try:
        check(instance)
    except _Invalid as e:
        segments = e.path[::-1]
        raise ConfigError(format_path(segments), e.message, document, segments=segments) from None


def _check_no_duplicates(entries, where: str, what: str, document: str) -> None:
    seen = set()
    for i, entry in enumerate(entries):
        kind = entry["type"]
        if kind in seen:
            raise ConfigError(f"{where}[{i}].type", f"duplicate {what} {_show(kind)}", document,
                              segments=(*where.split("."), i, "type"))
        seen.add(kind)


def format_path(segments) -> str:
    """["linux", "namespaces", 2, "type"] -> "linux.namespaces[2].type"; odd keys are quoted: sysctl["net.ipv4.x"]."""
    out = []
    for seg in segments:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif seg.isidentifier():
            out.append(f".{seg}" if out else seg)
        else:
            out.append(f"[{_json_text(seg)}]")
    return "".join(out)


class _Invalid(Exception):
    """Internal: one failed assertion. path holds segments innermost first (appended while unwinding)."""

    __slots__ = ("message", "path", "missing", "expected")

    def __init__(self, message: str, path: list | None = None, missing: bool = False,
                 expected: tuple | None = None):
        self.message = message
        self.path = path if path is not None else []
        self.missing = missing      # a "required" failure: path[0] is the absent field
        self.expected = expected    # a "type" failure: the type names wanted


def _json_text(value: object) -> str:
    import json  # error messages only: `json` (with `re`) is too slow to import on every container start

    return json.dumps(value, ensure_ascii=False)


def _show(value: object, limit: int = 60) -> str:
    """A short JSON rendering of a value for messages."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = _json_text(value)
    return text if len(text) <= limit else text[:limit - 4] + '..."'


_TYPE_WORDS = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "a boolean", "null": "null"}


def _is_integer(x) -> bool:
    t = type(x)
    return t is int or (t is float and x.is_integer())


_TYPE_TESTS = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": lambda x: type(x) is int or type(x) is float,
    "boolean": lambda x: x is True or x is False,
    "null": lambda x: x is None,
}


def _is_number(x) -> bool:
    t = type(x)
    return t is int or t is float


def _equal(a, b) -> bool:
    """JSON equality as jsonschema defines it: 1 == 1.0, but true != 1; containers compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return False
    return a == b


def _unique_key(x):
    """A hashable form of a JSON value under _equal (booleans kept apart from numbers)."""
    if x is True or x is False:
        return ("b", x)
    if isinstance(x, list):
        return ("a", tuple(_unique_key(v) for v in x))
    if isinstance(x, dict):
        return ("o", frozenset((k, _unique_key(v)) for k, v in x.items()))
    return ("v", x)


_REGEX_SPECIALS = frozenset("\\.^$*+?{}[]|()")


def _compile_pattern(source: str):
    """A predicate equal to `re.search(source, x) is not None` (the pattern keyword: searched, not anchored).

    Compiling a regex costs 0.1-0.4 ms on a slow machine, the largest part of a cold validation, so
    the shapes our schemas use most get exact hand-made equivalents: a literal prefix ("^/"), one
    character class ("^CAP_[A-Z0-9_]+$", "^[rwm]{0,3}$") and the SemVer pattern. Anything else, or
    a SemVer pattern edited in spec/, simply goes to re. tests/runtime/config/test_validate.py checks them against re.
    """
    fast = _FAST_PATTERNS.get(source) or _literal_prefix(source) or _single_class(source)
    if fast is not None:
        return fast
    import re  # only for patterns without a hand-made equivalent: `re` is slow to import

    search = re.compile(source).search
    return lambda x: search(x) is not None


def _literal_prefix(source: str):
    """^abc with no special characters -> startswith."""
    if source.startswith("^") and len(source) > 1 and not (_REGEX_SPECIALS & set(source[1:])):
        prefix = source[1:]
        return lambda x: x.startswith(prefix)
    return None


def _single_class(source: str):
    """^<literal>[<chars and ranges>]<quantifier>$ -> a predicate; None for any other shape."""
    if not (source.startswith("^") and source.endswith("$")):
        return None
    opening = source.find("[")
    closing = source.find("]", opening + 1)
    if opening < 0 or closing < 0:
        return None
    prefix, members, quantifier = source[1:opening], source[opening + 1:closing], source[closing + 1:-1]
    if _REGEX_SPECIALS & set(prefix) or not members or members[0] == "^" or "\\" in members or "[" in members:
        return None
    allowed, i = set(), 0
    while i < len(members):
        if i + 2 < len(members) and members[i + 1] == "-":
            if members[i] > members[i + 2]:
                return None
            allowed.update(map(chr, range(ord(members[i]), ord(members[i + 2]) + 1)))
            i += 3
        else:
            allowed.add(members[i])
            i += 1
    if "\n" in allowed or "\n" in prefix:
        return None  # keep the trailing-newline rule below exact
    bounds = _QUANTIFIERS.get(quantifier)
    if bounds is None:
        low, comma, high = quantifier[1:-1].partition(",")
        if not (quantifier[:1] == "{" and quantifier[-1:] == "}" and _is_count(low) and (not high or _is_count(high))):
            return None
        bounds = (int(low), (int(high) if high else None) if comma else int(low))
    least, most = bounds
    allowed = frozenset(allowed)
    size = len(prefix)

    def match(x: str) -> bool:
        if x.endswith("\n"):  # Python's "$" also matches just before a final newline
            x = x[:-1]
        n = len(x) - size
        return (x.startswith(prefix) and n >= least and (most is None or n <= most)
                and allowed.issuperset(x[size:]))
    return match


_QUANTIFIERS = {"": (1, 1), "?": (0, 1), "*": (0, None), "+": (1, None)}


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit()


SEMVER_PATTERN = ("^(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)"
                  "(?:-[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$")
_DIGITS = frozenset("0123456789")
_IDENTIFIER = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")


def _is_semver(x: str) -> bool:
    """SEMVER_PATTERN without re: major.minor.patch, optional -prerelease and +build identifiers."""
    if x.endswith("\n"):
        x = x[:-1]
    x, plus, build = x.partition("+")
    core, dash, prerelease = x.partition("-")
    parts = core.split(".")
    return (len(parts) == 3 and all(p and set(p) <= _DIGITS and (p == "0" or p[0] != "0") for p in parts)
            and (not dash or _dotted_identifiers(prerelease)) and (not plus or _dotted_identifiers(build)))


def _dotted_identifiers(text: str) -> bool:
    return all(part and set(part) <= _IDENTIFIER for part in text.split("."))


_FAST_PATTERNS = {SEMVER_PATTERN: _is_semver}


def _accept(x) -> None:
    return None


def _reject(x) -> None:
    raise _Invalid("no value is allowed here")


def _fuse(checks: list):
    """One closure running every check in order."""
    if not checks:
        return _accept
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(x):
            first(x)
            second(x)
        return both
    checks = tuple(checks)

    def all_of(x):
        for check in checks:
            check(x)
    return all_of


def _best(errors: list) -> _Invalid:
    """The error to report when no branch of anyOf/oneOf matched."""
    if all(e.missing and len(e.path) == 1 for e in errors):
        names = ", ".join(_show(e.path[0]) for e in errors)
        return _Invalid(f"must set at least one of {names}")
    deepest = max(len(e.path) for e in errors)
    if deepest:
        return next(e for e in errors if len(e.path) == deepest)
    if all(e.expected for e in errors):
        wanted = []
        for e in errors:
            wanted += [w for w in e.expected if w not in wanted]
        return _Invalid(errors[0].message.replace(
            _expected_words(errors[0].expected), _expected_words(tuple(wanted)), 1), expected=tuple(wanted))
    return _Invalid("; or ".join(dict.fromkeys(e.message for e in errors)))


def _expected_words(types: tuple) -> str:
    words = [_TYPE_WORDS[t] for t in types]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class _Compiler:
    """Turns schema nodes into check closures, once per node, loading referenced files on demand."""

    def __init__(self):
        self._compiled: dict[int, object] = {}
        self._entries: dict[str, object] = {}

    def entry(self, schema_name: str):
        check = self._entries.get(schema_name)
        if check is None:
            filename, _, pointer = schema_name.partition("#")
            filename = _spec.schema_filename(filename)
            check = self.compile(self._resolve_pointer(filename, pointer), filename)
            self._entries[schema_name] = check
        return check

    def _resolve_pointer(self, filename: str, pointer: str):
        node = load_schema(filename)
        for token in pointer.split("/")[1:] if pointer else ():
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node

    def compile(self, node, filename: str):
        if node is True:
            return _accept
        if node is False:
            return _reject
        check = self._compiled.get(id(node))
        if check is None:
            check = self._compile_node(node, filename)
            self._compiled[id(node)] = check
        return check

    def _compile_node(self, node: dict, filename: str):
        groups = set()
        for keyword in node:
            group = _KEYWORD_GROUPS.get(keyword)
            if group is None:
                raise SchemaUnsupported(f"{filename}: unsupported keyword {keyword!r} in {node}")
            groups.add(group)
        checks = []
        if "type" in groups:
            checks.append(self._type(node))
        if "object" in groups:
            checks.append(self._object(node, filename))
        if "array" in groups:
            checks.append(self._array(node, filename))
        if "string" in groups:
            checks.append(self._string(node))
        if "number" in groups:
            checks.append(self._number(node))
        if "enum" in groups:
            checks.append(self._enum(node["enum"]))
        if "const" in groups:
            checks.append(self._const(node["const"]))
        if "$ref" in groups:
            checks.append(self._ref(node["$ref"], filename))
        if "allOf" in groups:
            checks += [self.compile(sub, filename) for sub in node["allOf"]]
        if "anyOf" in groups:
            checks.append(self._any_of([self.compile(s, filename) for s in node["anyOf"]]))
        if "oneOf" in groups:
            checks.append(self._one_of([self.compile(s, filename) for s in node["oneOf"]]))
        if "not" in groups:
            checks.append(self._not(node["not"], filename))
        if "if" in groups:
            checks.append(self._if(node, filename))
        return _fuse(checks)

    # -- keywords --------------------------------------------------------------------------------

    def _type(self, node: dict):
        types = node["type"]
        types = (types,) if isinstance(types, str) else tuple(types)
        non_empty_array = types == ("array",) and node.get("minItems", 0) >= 1
        tests = tuple(_TYPE_TESTS[t] for t in types)
        if len(tests) == 1:
            test = tests[0]
        else:
            def test(x):
                return any(t(x) for t in tests)

        def check_type(x):
            if not test(x):
                wanted = "a non-empty array" if non_empty_array else _expected_words(types)
                raise _Invalid(f"must be {wanted}, got {_show(x)}", expected=types)
        return check_type

    def _object(self, node: dict, filename: str):
        props = node.get("properties", {})
        compiled = {}  # property checks, compiled when an instance first has that property
        required = tuple(node.get("required", ()))
        extra = node.get("additionalProperties", True)
        extra_check = None if extra is True else self.compile(extra, filename)
        names_check = self.compile(node["propertyNames"], filename) if "propertyNames" in node else None
        dependent = tuple(node.get("dependentRequired", {}).items())
        min_props = node.get("minProperties", 0)

        def check_object(x):
            if not isinstance(x, dict):
                return
            for name in required:
                if name not in x:
                    raise _Invalid("required field is missing", [name], missing=True)
            if len(x) < min_props:
                raise _Invalid("must not be empty" if min_props == 1 else f"must have at least {min_props} fields")
            for key, value in x.items():
                if names_check is not None:
                    try:
                        names_check(key)
                    except _Invalid as e:
                        raise _Invalid(f"invalid field name: {e.message}", [key]) from None
                check = compiled.get(key)
                if check is None:
                    if key in props:
                        check = compiled[key] = self.compile(props[key], filename)
                    elif extra_check is None:
                        continue
                    elif extra is False:
                        raise _Invalid("is not an allowed field", [key])
                    else:
                        check = extra_check
                try:
                    check(value)
                except _Invalid as e:
                    e.path.append(key)
                    raise
            for name, needs in dependent:
                if name in x:
                    for need in needs:
                        if need not in x:
                            raise _Invalid(f"required when {_show(name)} is set", [need], missing=True)
        return check_object

    def _array(self, node: dict, filename: str):
        items = node.get("items")
        item_check = None if items is None or items is True else self.compile(items, filename)
        strings_only = items == {"type": "string"}
        min_items = node.get("minItems", 0)
        max_items = node.get("maxItems")
        unique = node.get("uniqueItems", False)

        def check_array(x):
            if not isinstance(x, list):
                return
            if len(x) < min_items:
                raise _Invalid("must be a non-empty array" if min_items == 1 else
                               f"must have at least {min_items} items, got {len(x)}")
            if max_items is not None and len(x) > max_items:
                raise _Invalid(f"must have at most {max_items} items, got {len(x)}")
            if strings_only:
                for i, v in enumerate(x):
                    if not isinstance(v, str):
                        raise _Invalid(f"must be a string, got {_show(v)}", [i], expected=("string",))
            elif item_check is not None:
                for i, v in enumerate(x):
                    try:
                        item_check(v)
                    except _Invalid as e:
                        e.path.append(i)
                        raise
            if unique:
                seen = {}
                for i, v in enumerate(x):
                    first = seen.setdefault(_unique_key(v), i)
                    if first != i:
                        raise _Invalid(f"duplicates item [{first}]", [i])
        return check_array

    def _string(self, node: dict):
        source = node.get("pattern")
        pattern = None if source is None else _compile_pattern(source)
        title = node.get("title")
        min_len = node.get("minLength", 0)
        max_len = node.get("maxLength")

        def check_string(x):
            if not isinstance(x, str):
                return
            if len(x) < min_len:
                raise _Invalid("must not be empty" if min_len == 1 else f"must be at least {min_len} characters")
            if max_len is not None and len(x) > max_len:
                raise _Invalid(f"must be at most {max_len} characters")
            if pattern is not None and not pattern(x):
                raise _Invalid(f"{_show(x)} is not {title}" if title else
                               f"{_show(x)} does not match the pattern {source!r}")
        return check_string

    def _number(self, node: dict):
        low, high = node.get("minimum"), node.get("maximum")
        low_excl, high_excl = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        both = low is not None and high is not None
        too_low = f"must be between {low} and {high}" if both else f"must be at least {low}"
        too_high = f"must be between {low} and {high}" if both else f"must be at most {high}"

        def check_number(x):
            if not _is_number(x):
                return
            if low is not None and x < low:
                raise _Invalid(f"{too_low}, got {_show(x)}")
            if high is not None and x > high:
                raise _Invalid(f"{too_high}, got {_show(x)}")
            if low_excl is not None and x <= low_excl:
                raise _Invalid(f"must be greater than {low_excl}, got {_show(x)}")
            if high_excl is not None and x >= high_excl:
                raise _Invalid(f"must be less than {high_excl}, got {_show(x)}")
        return check_number

    def _enum(self, values: list):
        def fail(x):
            shown = ", ".join(_show(v) for v in values[:12]) + (", ..." if len(values) > 12 else "")
            return _Invalid(f"{_show(x)} is not one of {shown}")

        if all(isinstance(v, str) for v in values):
            allowed = frozenset(values)

            def check_enum(x):
                if not (isinstance(x, str) and x in allowed):
                    raise fail(x)
        else:
            def check_enum(x):
                if not any(_equal(x, v) for v in values):
                    raise fail(x)
        return check_enum

    def _const(self, value):
        def check_const(x):
            if not _equal(x, value):
                raise _Invalid(f"must be {_show(value)}, got {_show(x)}")
        return check_const

    def _ref(self, ref: str, filename: str):
        target_file, _, pointer = ref.partition("#")
        target_file = _spec.schema_filename(target_file) if target_file else filename
        target = None

        def check_ref(x):
            nonlocal target
            if target is None:  # resolved on first use: unused parts of a schema cost nothing
                target = self.compile(self._resolve_pointer(target_file, pointer), target_file)
            target(x)
        return check_ref

    def _any_of(self, branches: list):
        def check_any_of(x):
            errors = []
            for branch in branches:
                try:
                    branch(x)
                    return
                except _Invalid as e:
                    errors.append(e)
            raise _best(errors)
        return check_any_of

    def _one_of(self, branches: list):
        def check_one_of(x):
            errors, matched = [], 0
            for branch in branches:
                try:
                    branch(x)
                    matched += 1
                except _Invalid as e:
                    errors.append(e)
            if matched == 0:
                raise _best(errors)
            if matched > 1:
                raise _Invalid(f"matches {matched} of the allowed forms, must match exactly one")
        return check_one_of

    def _not(self, sub, filename: str):
        excluded = self.compile(sub, filename)
        title = sub.get("title") if isinstance(sub, dict) else None
        message = f"must not be {title}" if title else "matches a form that is not allowed"

        def check_not(x):
            try:
                excluded(x)
            except _Invalid:
                return
            raise _Invalid(message)
        return check_not

    def _if(self, node: dict, filename: str):
        condition = self.compile(node["if"], filename)
        then = self.compile(node.get("then", True), filename)
        otherwise = self.compile(node.get("else", True), filename)

        def check_if(x):
            try:
                condition(x)
            except _Invalid:
                otherwise(x)
                return
            then(x)
        return check_if


_COMPILER = _Compiler()
