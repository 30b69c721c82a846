"""oci_runtime.jsonio must read and write exactly what the json module does (it is json's own C core)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oci_runtime import jsonio
from oci_runtime.specgen import default_spec
from support import REPO

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text()
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                         st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_round_trips_like_json(doc):
    assert jsonio.dumps(doc) == json.dumps(doc)
    assert jsonio.dumps(doc, compact=True) == json.dumps(doc, separators=(",", ":"))
    assert jsonio.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    assert jsonio.dumps(doc, indent="\t") == json.dumps(doc, indent="\t")
    assert jsonio.dumps(doc, sort_keys=True) == json.dumps(doc, sort_keys=True)  # the seccomp cache key
    text = json.dumps(doc)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode()) == json.loads(text)


def test_real_documents():
    spec = default_spec()
    assert jsonio.loads(jsonio.dumps(spec, indent=2)) == spec
    assert jsonio.dumps(spec, indent="\t") == json.dumps(spec, indent="\t")


@pytest.mark.parametrize("bad", ['{"a": ', "[1, 2", '{"a": 1} x', "", "   ", "{'a': 1}", '{"a": NaX}'])
def test_errors_are_value_errors(bad):
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError) as info:
        jsonio.loads(bad)
    assert "line 1 column" in str(info.value)


def test_not_serializable():
    with pytest.raises(TypeError):
        jsonio.dumps({"x": object()})


def test_no_re_or_enum_on_import():
    code = "import sys; import oci_runtime.jsonio; print(sorted(m for m in ('re', 'enum', 'json') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr
