"""oci_runtime.validate agrees with jsonschema, names the field at fault, and stays off the heavy imports.

Agreement is checked on the documents of test_schemas.py and on thousands of mutations of them
(wrong types, missing required fields, bad enum values and patterns, values moved from elsewhere),
plus random documents from hypothesis when it is installed.
"""

from __future__ import annotations

import atexit
import copy
import json
import random
import shutil
import subprocess
import sys
import tempfile

import pytest

import spec
from oci_runtime.validate import load_schema
from oci_runtime import validate as v
from oci_runtime.errors import ConfigInvalid
from test_schemas import (BROKEN_CONFIGS, DELETE, UPDATE_RESOURCES, containerd_config, docker_config, exec_process,
                          feature_documents, full_linux_config, image_documents, jsonschema_validator,
                          podman_config, runtime_configs, state_documents)


def _jsonschema_errors(instance, schema_name: str) -> list:
    return list(jsonschema_validator(schema_name).iter_errors(instance))


def _error_paths(errors) -> set[tuple]:
    """Paths of jsonschema's errors and of the errors inside their anyOf/oneOf branches."""
    paths = set()
    stack = list(errors)
    while stack:
        error = stack.pop()
        paths.add(tuple(error.absolute_path))
        stack.extend(error.context or ())
    return paths


def _ours(instance, schema_name: str):
    """None if our validator accepts, else its ValidationError."""
    try:
        v.validate(instance, schema_name)
    except v.ValidationError as e:
        return e
    return None


def assert_agrees(instance, schema_name: str, what: str = "") -> bool:
    """Both accept, or both refuse and our path is one jsonschema reports (or a field directly under one)."""
    theirs = _jsonschema_errors(instance, schema_name)
    ours = _ours(instance, schema_name)
    label = f"{schema_name} {what}: {json.dumps(instance)[:300]}"
    if not theirs:
        assert ours is None, f"we refused what jsonschema accepts ({ours}) for {label}"
        return True
    assert ours is not None, f"we accepted what jsonschema refuses ({theirs[0].message}) for {label}"
    paths = _error_paths(theirs)
    segments = tuple(ours.segments)
    assert segments in paths or segments[:-1] in paths, (
        f"our path {segments} ({ours}) is not among jsonschema's {sorted(map(str, paths))} for {label}")
    return False


def _small_docker_config() -> dict:
    """docker's shape with a short syscall list, so that jsonschema checks thousands of mutations quickly."""
    config = docker_config()
    config["linux"]["seccomp"]["syscalls"][0]["names"] = config["linux"]["seccomp"]["syscalls"][0]["names"][:8]
    return config


def _mutation_bases() -> list[tuple[str, str, dict]]:
    bases = [("config.schema.json", "docker", _small_docker_config()),
             ("config.schema.json", "containerd", containerd_config()),
             ("config.schema.json", "every-linux-field", full_linux_config()),
             ("config.schema.json#/$defs/process", "podman-exec", exec_process("podman")),
             ("config.schema.json#/$defs/resources", "docker-update", UPDATE_RESOURCES[0]),
             ("state.schema.json", "state", state_documents()[0]),
             ("features.schema.json", "features", feature_documents()[0])]
    podman = podman_config()
    podman["linux"]["seccomp"]["syscalls"] = podman["linux"]["seccomp"]["syscalls"][1:]
    bases.append(("config.schema.json", "podman", podman))
    for name, docs in image_documents().items():
        bases += [(name, f"{name}[{i}]", doc) for i, doc in enumerate(docs)]
    return bases


# -- mutations ----------------------------------------------------------------------------------------

REPLACEMENTS = [None, True, False, 0, -1, 1, 7, 1.5, 2.0, 100, 101, 1000, 1001, 2 ** 16, 2 ** 31, 2 ** 32 - 1,
                2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63, -2 ** 63 - 1, "", "x", "/abs",
                "relative/path", "CAP_SYS_ADMIN", "cap_kill", "MB:0=1", "L3:0=1", "a\nb", "1.0.2-dev", "1.0",
                "01.0.0", "SCMP_ACT_ALLOW", "SCMP_ARCH_X86_64", "RLIMIT_NOFILE", "pid", "rwm", "rwx", "0-3,7",
                "0-3;7", "2MB", "2M", "sha256:" + "a" * 64, "sha256:" + "A" * 64, "application/json", "not a type",
                "2024-01-02T03:04:05Z", "yesterday", "layers", "p", "c", [], [1], ["x"], [None], {}, {"x": 1},
                {"type": "pid"}]


def _locations(doc, path=()):
    """Every (path, value) in a document, the root included."""
    yield path, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _locations(value, path + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _locations(value, path + (i,))


def _replace(doc, path: tuple, value):
    doc = copy.deepcopy(doc)
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


_DELETE = object()


def _variants(value, rng: random.Random, locations: list) -> list:
    """Values to try in place of one value: targeted tweaks of its kind plus random others."""
    out = [rng.choice(REPLACEMENTS), rng.choice(REPLACEMENTS), copy.deepcopy(rng.choice(locations)[1])]
    if isinstance(value, bool):
        out += [int(value), str(value).lower()]
    elif isinstance(value, int):
        out += [-value - 1, value + 2 ** 32, value + 2 ** 64, float(value), value + 0.5, str(value)]
    elif isinstance(value, str):
        out += [value.lower(), value.upper() + "X", value + "\n", value.lstrip("/"), "/" + value, value[:-1], ""]
    elif isinstance(value, list):
        out += [[], value + value[:1], value + [rng.choice(REPLACEMENTS)], value[1:], [value]]
    elif isinstance(value, dict):
        extra = dict(value)
        extra["zzUnknown"] = rng.choice(REPLACEMENTS)
        out += [{}, extra, list(value.values())]
    return out


def _mutations(doc, seed: int, count: int):
    rng = random.Random(seed)
    locations = list(_locations(doc))
    for _ in range(count):
        path, value = rng.choice(locations)
        if path and isinstance(path[-1], str) and rng.random() < 0.25:
            yield path, "delete", _replace(doc, path, _DELETE)
        else:
            new = rng.choice(_variants(value, rng, locations))
            yield path, new, _replace(doc, path, new)


@pytest.mark.parametrize("schema_name,label,doc", _mutation_bases(), ids=[b[1] for b in _mutation_bases()])
def test_agrees_with_jsonschema_on_mutations(schema_name, label, doc):
    assert_agrees(doc, schema_name, "unmutated")
    count = 250 if schema_name.startswith("config.schema.json") else 120
    verdicts = []
    for path, change, mutated in _mutations(doc, seed=hash(label) & 0xFFFF ^ 0x5EED, count=count):
        verdicts.append(assert_agrees(mutated, schema_name, f"with {list(path)} -> {change!r}"))
    # The mutations must exercise both sides, or this test proves little.
    assert verdicts.count(False) > len(verdicts) // 4
    assert verdicts.count(True) > 5


@pytest.mark.parametrize("name", list(runtime_configs()))
def test_agrees_on_every_accepted_config(name):
    assert assert_agrees(runtime_configs()[name], "config.schema.json", name)


@pytest.mark.parametrize("what", list(BROKEN_CONFIGS))
def test_broken_configs_are_refused_at_the_broken_field(what):
    path, value = BROKEN_CONFIGS[what]
    config = _replace(docker_config(), path, _DELETE if value is DELETE else value)
    assert not assert_agrees(config, "config.schema.json", what)
    with pytest.raises(v.ConfigError) as caught:
        v.validate_config(config)
    # The broken field itself, a field inside it, or (for a pair like uid/gidMappings) its missing sibling.
    segments = caught.value.segments
    assert segments[:len(path)] == path or segments[:-1] == path[:-1], f"{what}: {caught.value}"
    assert str(caught.value) == f"config.json: {v.format_path(segments)}: {caught.value.message}"


def test_agrees_on_the_other_documents():
    for doc in state_documents():
        assert assert_agrees(doc, "state.schema.json")
    for doc in feature_documents():
        assert assert_agrees(doc, "features.schema.json")
    for engine in ("docker", "podman", "containerd"):
        assert assert_agrees(exec_process(engine), "config.schema.json#/$defs/process")
    for resources in UPDATE_RESOURCES:
        assert assert_agrees(resources, "config.schema.json#/$defs/resources")


@pytest.mark.parametrize("instance,schema_name", [
    (1.0, "defs.schema.json#/$defs/uint32"),               # integral floats are integers in JSON Schema
    (True, "defs.schema.json#/$defs/uint32"),              # booleans are not
    (2 ** 64, "defs.schema.json#/$defs/uint64"),
    (-2 ** 63, "defs.schema.json#/$defs/int64"),
    ("1.0.0+build.5", "defs.schema.json#/$defs/ociVersion"),
    ("1.0.0-", "defs.schema.json#/$defs/ociVersion"),
    ("", "defs.schema.json#/$defs/cpuList"),
    ("0-7:2/4", "defs.schema.json#/$defs/cpuList"),
    ({"": "x"}, "defs.schema.json#/$defs/annotations"),
    ([{"allow": True}, {"allow": True}], "config.schema.json#/$defs/resources/properties/devices"),
    ({"type": "p", "path": "/dev/f"}, "config.schema.json#/$defs/device"),
    ({"type": "c", "path": "/dev/f", "major": 1}, "config.schema.json#/$defs/device"),
    ("MB:0=20\n", "config.schema.json#/$defs/intelRdt/properties/memBwSchema"),
    ({"mlx": {"hcaHandles": 1}}, "config.schema.json#/$defs/resources/properties/rdma"),
    ({"mlx": {}}, "config.schema.json#/$defs/resources/properties/rdma"),
    ({"ociVersion": "1.0.0", "id": "a", "status": "created", "bundle": "/b"}, "state.schema.json"),
    (None, "features.schema.json#/$defs/linux"),
    ({"enabled": None, "extra": 1}, "features.schema.json#/$defs/enabledOnly"),
    ({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                                     "digest": "sha256:" + "4" * 64}, "layers": []}, "manifest.schema.json"),
    ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "descriptor.schema.json#/$defs/digest"),
    ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "descriptor.schema.json#/$defs/digest"),
    ("e30", "descriptor.schema.json#/$defs/descriptor/properties/data"),
    ({"80/tcp": {}, "http": {}}, "image-config.schema.json#/$defs/execution/properties/ExposedPorts"),
])
def test_agrees_on_edge_cases(instance, schema_name):
    assert_agrees(instance, schema_name)


# -- messages ------------------------------------------------------------------------------------------

def _config_error(edit) -> str:
    config = docker_config()
    edit(config)
    with pytest.raises(v.ConfigError) as caught:
        v.validate_config(config)
    return str(caught.value)


def test_messages_name_the_field():
    assert _config_error(lambda c: c["process"].update(args=[])) == \
        "config.json: process.args: must be a non-empty array"
    assert _config_error(lambda c: c["linux"]["namespaces"][2].update(type="foo")) == (
        'config.json: linux.namespaces[2].type: "foo" is not one of "pid", "network", "mount", "ipc", "uts", '
        '"user", "cgroup", "time"')
    assert _config_error(lambda c: c.pop("ociVersion")) == "config.json: ociVersion: required field is missing"
    assert _config_error(lambda c: c.update(ociVersion="1.0")) == \
        'config.json: ociVersion: "1.0" is not a SemVer 2.0.0 version like 1.0.2-dev'
    assert _config_error(lambda c: c["process"]["user"].update(uid=-1)) == \
        "config.json: process.user.uid: must be between 0 and 4294967295, got -1"
    assert _config_error(lambda c: c["process"].update(cwd="tmp")) == \
        'config.json: process.cwd: "tmp" is not an absolute path'
    assert _config_error(lambda c: c["linux"]["sysctl"].update({"net.ipv4.ip_forward": 1})) == \
        'config.json: linux.sysctl["net.ipv4.ip_forward"]: must be a string, got 1'
    assert _config_error(lambda c: c["mounts"][3].pop("destination")) == \
        "config.json: mounts[3].destination: required field is missing"
    assert _config_error(lambda c: c["linux"]["resources"].update(
        blockIO={"weightDevice": [{"major": 8, "minor": 0}]})) == \
        'config.json: linux.resources.blockIO.weightDevice[0]: must set at least one of "weight", "leafWeight"'
    assert _config_error(lambda c: c["linux"]["seccomp"]["syscalls"][3]["args"][0].update(op="EQ")).startswith(
        'config.json: linux.seccomp.syscalls[3].args[0].op: "EQ" is not one of "SCMP_CMP_NE"')
    assert _config_error(lambda c: c["mounts"][0].update(uidMappings=[])) == \
        'config.json: mounts[0].gidMappings: required when "uidMappings" is set'
    assert _config_error(lambda c: c["linux"].update(intelRdt={"memBwSchema": "MB:1\n"})) == \
        "config.json: linux.intelRdt.memBwSchema: must not be a string containing a newline"
    assert _config_error(lambda c: c["annotations"].update({"": "x"}) if "annotations" in c else
                         c.update(annotations={"": "x"})) == \
        'config.json: annotations[""]: invalid field name: must not be empty'
    assert _config_error(lambda c: c.update(linux=[])) == "config.json: linux: must be an object, got an array"


def test_runtime_rules_beyond_the_schema():
    config = docker_config()
    del config["process"]
    v.validate_config(config)  # a container without a process can be created (it cannot run anything)
    assert _config_error(lambda c: c["linux"]["namespaces"].append({"type": "pid", "path": "/proc/1/ns/pid"})) == \
        'config.json: linux.namespaces[5].type: duplicate namespace type "pid"'
    assert _config_error(lambda c: c["process"].update(rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}])) == \
        'config.json: process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"'


def test_process_and_resources_documents():
    v.validate_process(exec_process("podman"))
    with pytest.raises(v.ConfigError, match=r'^process\.json: cwd: required field is missing$'):
        v.validate_process({"args": ["ls"]})
    with pytest.raises(v.ConfigError, match=r'^process\.json: rlimits\[1\]\.type: duplicate rlimit'):
        v.validate_process({"args": ["ls"], "cwd": "/", "rlimits": [{"type": "RLIMIT_AS", "soft": 1, "hard": 1}] * 2})
    for resources in UPDATE_RESOURCES:
        v.validate_resources(resources)
    with pytest.raises(v.ConfigError, match=r'^resources: memory\.limit: must be an integer, got "128m"$'):
        v.validate_resources({"memory": {"limit": "128m"}})


def test_generic_validate_and_error_types():
    v.validate(state_documents()[0], "state")
    v.validate({"imageLayoutVersion": "1.0.0"}, "oci-layout.schema.json")
    with pytest.raises(v.ValidationError, match=r"^state: pid: required field is missing$") as caught:
        v.validate({"ociVersion": "1.0.0", "id": "a", "status": "running", "bundle": "/b"}, "state")
    assert caught.value.path == "pid" and caught.value.segments == ("pid",)
    with pytest.raises(v.ValidationError, match=r"^index\.json: manifests: required field is missing$"):
        v.validate({"schemaVersion": 2}, "index", document="index.json")
    with pytest.raises(v.ValidationError, match=r"^features: annotations: must be null or an object, got 5$"):
        v.validate({"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.0", "annotations": 5}, "features")
    error = v.ConfigError("process.args", "must be a non-empty array")
    assert isinstance(error, ConfigInvalid) and isinstance(error, ValueError)
    assert str(error) == "config.json: process.args: must be a non-empty array"
    assert str(v.ConfigError("", "must be an object, got an array")) == "config.json: must be an object, got an array"
    with pytest.raises(FileNotFoundError):
        v.validate({}, "no-such-schema")


def test_format_path():
    assert v.format_path(["linux", "namespaces", 2, "type"]) == "linux.namespaces[2].type"
    assert v.format_path([0, "a"]) == "[0].a"
    assert v.format_path(["linux", "sysctl", "net.ipv4.ip_forward"]) == 'linux.sysctl["net.ipv4.ip_forward"]'
    assert v.format_path(["os.version"]) == '["os.version"]'
    assert v.format_path([]) == ""


# -- the interpreter covers the schemas, and stays light -----------------------------------------------

_SCHEMA_MAPS = {"properties", "$defs", "dependentRequired"}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf"}
_SCHEMA_VALUES = {"items", "additionalProperties", "propertyNames", "not", "if", "then", "else"}


def _schema_nodes(node):
    yield node
    for key, value in node.items():
        if key in _SCHEMA_MAPS and key != "dependentRequired":
            for sub in value.values():
                yield from _schema_nodes(sub)
        elif key in _SCHEMA_LISTS:
            for sub in value:
                yield from _schema_nodes(sub)
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            yield from _schema_nodes(value)


@pytest.mark.parametrize("name", spec.schema_names())
def test_every_keyword_in_spec_is_supported(name):
    known = v.SUPPORTED_KEYWORDS | v.ANNOTATION_KEYWORDS
    for node in _schema_nodes(load_schema(name)):
        assert set(node) <= known, f"{name}: {set(node) - known} in {node}"
        v._COMPILER.compile(node, name)  # compiling refuses unknown keywords too


def test_unsupported_keyword_is_refused_not_ignored():
    with pytest.raises(v.SchemaUnsupported, match="patternProperties"):
        v._Compiler().compile({"patternProperties": {"^a": {"type": "string"}}}, "test.schema.json")


def test_import_stays_off_heavy_modules():
    code = ("import sys; before = set(sys.modules); import oci_runtime.validate; "
            "print(sorted(set(sys.modules) - before))")
    new = json.loads(subprocess.run([sys.executable, "-c", code.replace("print(", "import json; print(json.dumps(")
                                     + ")"], check=True, capture_output=True, text=True).stdout)
    assert not [m for m in new if m.split(".")[0] in ("jsonschema", "referencing", "requests", "pyroute2", "tqdm")]
    stdlib = set(sys.stdlib_module_names)
    assert all(m.split(".")[0] in stdlib | {"oci_runtime", "spec"} for m in new), new


# -- the regex-free pattern predicates equal re --------------------------------------------------------

def _patterns_in_spec() -> set[str]:
    found = set()
    for name in spec.schema_names():
        for node in _schema_nodes(load_schema(name)):
            if "pattern" in node:
                found.add(node["pattern"])
    return found


_EXTRA_PATTERNS = ["^[a-]{2}$", "^[-a]+$", "^x[a-c]?$", "^[ab]{2,}$", "^[ab]*$", "^[.$]+$", "^pre[0-9]{1,3}$",
                   "^[a\n]{2}$", "^[^a]+$", "^a[bc]+d$", "^[bc]+$x", "^abc", "^a.c", "^[]a]$", "^[ab]{,2}$"]


def _strings_for(pattern: str, rng: random.Random) -> list[str]:
    alphabet = sorted(set(pattern) | set("0123456789azAZ-.+_:/\n \u0663\u00e9"))
    out = ["", "\n", "\n\n", "1.0.2-dev", "1.0.2-dev\n", "1.0.2-dev\n\n", "01.0.0", "1.0.0-", "1.0.0+",
           "1.0.0-a..b", "1.0.0-a.b+c.d", "1.0.0+b+c", "1.0.0-+", "1.2.3-0A-z.9+x-1", "\u0663.0.0", "1.0",
           "CAP_KILL", "CAP_KILL\n", "cap_kill", "CAP_", "rwm", "rwmr", "rw\n", "/abs", "MB:1", "x/abs", "aa", "a-",
           "xa", "x", "ab", "abab", "ad", "abcd", "pre1", "pre1234", "a\n", "a\nb"]
    for _ in range(2500):
        out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10))))
    for _ in range(500):  # near-misses of real versions
        text = rng.choice(["1.0.2-dev", "10.20.30+build.1", "1.0.0-alpha.1"])
        i = rng.randrange(len(text) + 1)
        out.append(text[:i] + rng.choice(alphabet) + text[i + rng.randint(0, 1):])
    return out


@pytest.mark.parametrize("pattern", sorted(_patterns_in_spec()) + _EXTRA_PATTERNS)
def test_pattern_predicates_equal_re(pattern):
    import re

    predicate = v._compile_pattern(pattern)
    search = re.compile(pattern).search
    for text in _strings_for(pattern, random.Random(pattern)):
        assert predicate(text) == (search(text) is not None), f"{pattern!r} on {text!r}"


def test_fast_paths_are_in_use():
    """The patterns a docker config meets are matched without compiling a regex (that is their point)."""
    for pattern in (v.SEMVER_PATTERN, "^/", "^CAP_[A-Z0-9_]+$", "^[rwm]{0,3}$"):
        assert pattern in _patterns_in_spec()
        assert "search" not in v._compile_pattern(pattern).__code__.co_freevars, pattern


# -- random documents (hypothesis, when installed) ------------------------------------------------------

try:
    from hypothesis import HealthCheck, given, settings, strategies as st
    from hypothesis.configuration import set_hypothesis_home_dir
except ImportError:  # an optional test dependency: everything above still runs without it
    st = None
else:
    # hypothesis caches data in ./.hypothesis, some of it while tests are collected: keep it out of the tree.
    _HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="pyrunc-test-hypothesis-")
    set_hypothesis_home_dir(_HYPOTHESIS_HOME)
    atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)


def _harvest(node, strings: set, names: set):
    """Strings and property names a schema mentions, so random documents hit enums, keys and patterns."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                names.update(value)
            if key in ("enum", "const"):
                for item in value if key == "enum" else [value]:
                    if isinstance(item, str):
                        strings.add(item)
            _harvest(value, strings, names)
    elif isinstance(node, list):
        for value in node:
            _harvest(value, strings, names)


_STRINGS, _NAMES = {"/abs", "rel", "", "1.0.2-dev", "0-3", "MB:1", "CAP_KILL", "sha256:" + "0" * 64, "2MB",
                    "a\n", "rwm", "2024-01-02T03:04:05Z", "application/vnd.oci.image.layer.v1.tar"}, set()
for _name in spec.schema_names():
    _harvest(load_schema(_name), _STRINGS, _NAMES)

_TARGETS = [
    "config.schema.json#/$defs/" + d for d in (
        "root", "mount", "user", "capabilities", "rlimit", "scheduler", "hook", "hooks", "namespace",
        "timeOffset", "device", "deviceRule", "memory", "cpu", "blockIO", "throttleDevice", "seccomp", "syscall",
        "syscallArg", "intelRdt", "idMapping")
] + ["config.schema.json#/$defs/process/properties/ioPriority",
     "config.schema.json#/$defs/linux/properties/memoryPolicy", "config.schema.json#/$defs/resources/properties/rdma",
     "state.schema.json", "features.schema.json",
     "descriptor.schema.json", "descriptor.schema.json#/$defs/platform", "oci-layout.schema.json",
     "image-config.schema.json#/$defs/execution", "manifest.schema.json", "index.schema.json"]

if st is not None:
    _LEAVES = st.one_of(
        st.none(), st.booleans(),
        st.sampled_from([0, 1, -1, 7, 8, 100, 101, 1000, 1001, 2 ** 16 - 1, 2 ** 16, 2 ** 32 - 1, 2 ** 32,
                         2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63, -2 ** 63 - 1, 2.0, 0.5]),
        st.integers(min_value=-5, max_value=5),
        st.sampled_from(sorted(_STRINGS)), st.text(alphabet="aZ0/:.-\n é", max_size=4),
    )
    _KEYS = st.sampled_from(sorted(_NAMES) + ["zz", ""])
    _JSON = st.recursive(_LEAVES, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=5)), max_leaves=12)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
              database=None)
    @given(document=_JSON)
    @pytest.mark.parametrize("schema_name", _TARGETS)
    def test_agrees_on_random_documents(schema_name, document):
        assert_agrees(document, schema_name, "random")
else:
    @pytest.mark.parametrize("schema_name", _TARGETS)
    def test_agrees_on_random_documents(schema_name):
        pytest.skip("hypothesis is not installed (optional test dependency)")
