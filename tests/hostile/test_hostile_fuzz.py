"""Fuzzing the parsers that face users on the pydock side: Dockerfiles (parse and plan), image archives and
layouts (load), and image references. In-process, a few thousand generated inputs: only BuildError or
success. Through the CLI, a small sample: one error line, no traceback, the store unchanged."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import subprocess
import time


from builder.dockerfile.parser import parse
from builder.dockerfile.stages import make_plan
from builder.errors import BuildError
from builder.image import mediatypes as mt
from builder.image.archive import load
from builder.image.store import ImageStore, normalize_name, split_ref
from support import PYDOCK, tar_bytes

SEED = int(os.environ.get("PYDOCK_FUZZ_SEED", "20261202"))

DOCKERFILE_SEED = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM --platform=$BUILDPLATFORM ${BASE:-busybox} AS build
ENV A=1 B="two words" C=${A:+set}
WORKDIR /src/${A}
COPY --chown=1:1 --chmod=755 a* b/ /dst/
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 x.tar /x
RUN --mount=type=cache,target=/cache echo "$B" \\
    && echo done
RUN <<EOF
echo heredoc
EOF
LABEL k="v" k2=v2
USER 1000:1000
EXPOSE 80/tcp 443
HEALTHCHECK --interval=5s CMD true
SHELL ["/bin/sh", "-c"]
FROM scratch
COPY --from=build /dst /dst
ONBUILD RUN true
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/app"]
CMD ["--help"]
"""

PIECES = ["${", "}", "$", ":-", ":+", ":?", "#", "%", "/", "\\", "\n", "\\\n", "\"", "'", "[", "]", "{", "}",
          "--", "=", " ", "\t", "\x00", "\udcff", "é", "<<", "EOF", "FROM", "RUN", "COPY", "ARG", "ENV",
          "--platform=", "--from=", "--mount=", "--chown=", "AS", "${A:-${B:-x}}", "*", "?", "..", "\r"]


def mutate_text(rnd: random.Random, text: str) -> str:
    for _ in range(rnd.randrange(1, 6)):
        i = rnd.randrange(len(text) + 1)
        op = rnd.random()
        if op < 0.5:
            text = text[:i] + rnd.choice(PIECES) + text[i:]
        elif op < 0.8:
            text = text[:i] + text[i + rnd.randrange(1, 20):]
        else:
            j = rnd.randrange(len(text) + 1)
            text = text[:i] + text[j:j + rnd.randrange(1, 40)] + text[i:]
    return text


def test_fuzz_dockerfiles_in_process():
    rnd = random.Random(SEED)
    start = time.monotonic()
    ok = 0
    for n in range(2500):
        text = mutate_text(rnd, DOCKERFILE_SEED) if n % 5 else "".join(
            rnd.choice(PIECES) for _ in range(rnd.randrange(1, 60)))
        try:
            df = parse(text, "Dockerfile")
            make_plan(df, {"BASE": rnd.choice(["", "busybox", "${X}", "a b"])}, rnd.choice([None, "build"]))
            ok += 1
        except BuildError:
            pass
    assert ok > 100  # the mutations are not all refused: the fuzz reaches the planner
    assert time.monotonic() - start < 20


def test_fuzz_references():
    rnd = random.Random(SEED + 1)
    alphabet = "abcXYZ019._-/:@ \x00é" + "sha256:" + "0123456789abcdef"
    for n in range(3000):
        ref = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 80)))
        split_ref(ref)
        try:
            name = normalize_name(ref)
        except BuildError:
            continue
        assert normalize_name(name) == name


LAYER = tar_bytes({"f": b"x"})
DIFF_ID = "sha256:" + hashlib.sha256(LAYER).hexdigest()
HOSTILE_VALUES = [None, True, 0, -1, 2**70, 1.5, "", "x", "sha256:" + "0" * 64, "../../etc/passwd", [], {},
                  [None], {"a": []}, "linux/amd64", ["a:b"], "evil:latest"]


def mutate_json(rnd: random.Random, doc):
    """A copy of doc with one value somewhere replaced (or a key dropped) by something hostile."""
    doc = copy.deepcopy(doc)
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])

    walk(doc, [])
    path = rnd.choice(paths)
    if not path:
        return rnd.choice(HOSTILE_VALUES)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if isinstance(parent, dict) and rnd.random() < 0.2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rnd.choice(HOSTILE_VALUES)
    return doc


def docker_files(rnd: random.Random) -> dict[str, bytes]:
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["x"]},
              "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]}, "history": [{"created_by": "x"}]}
    manifest = [{"Config": "c.json", "RepoTags": ["fuzz:1"], "Layers": ["l/layer.tar"]}]
    which = rnd.random()
    if which < 0.5:
        config = mutate_json(rnd, config)
    else:
        manifest = mutate_json(rnd, manifest)
    return {"c.json": json.dumps(config).encode(), "l/layer.tar": LAYER, "manifest.json": json.dumps(manifest).encode()}


def oci_files(rnd: random.Random) -> dict[str, bytes]:
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "blobs/": b""}

    def put(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        files[f"blobs/sha256/{digest[7:]}"] = data
        return digest

    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]}}
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": "", "size": 0},
                "layers": [{"mediaType": mt.OCI_LAYER_TAR, "digest": put(LAYER), "size": len(LAYER)}]}
    which = rnd.random()
    if which < 0.33:
        config = mutate_json(rnd, config)
    cfg = json.dumps(config).encode()
    manifest["config"]["digest"], manifest["config"]["size"] = put(cfg), len(cfg)
    if 0.33 <= which < 0.66:
        manifest = mutate_json(rnd, manifest)
    raw = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": put(raw), "size": len(raw),
                                                "platform": {"os": "linux", "architecture": "amd64"},
                                                "annotations": {mt.ANNOTATION_REF_NAME: "fuzz:1"}}]}
    if which >= 0.66:
        index = mutate_json(rnd, index)
    files["index.json"] = json.dumps(index).encode()
    return files


def store_state(store: ImageStore) -> tuple:
    return ((store.root / "index.json").read_bytes(), sorted(os.listdir(store.root / "blobs" / "sha256")))


def test_fuzz_archives_in_process_and_a_cli_sample(tmp_path):
    rnd = random.Random(SEED + 2)
    store = ImageStore(tmp_path / "store")
    empty = store_state(store)
    start = time.monotonic()
    refused = []
    for n in range(400):
        files = docker_files(rnd) if n % 2 else oci_files(rnd)
        data = tar_bytes(files)
        if rnd.random() < 0.1:
            data = data[:rnd.randrange(1, len(data))]
        path = tmp_path / f"in-{n % 2}.tar"
        path.write_bytes(data)
        try:
            load(store, path)
        except BuildError as e:
            assert str(path) in str(e)
            assert store_state(store) == empty
            refused.append(data)
            continue
        for names, image in store.images():  # what was loaded is whole and usable
            assert len(image.diff_ids) == len(image.layers)
            store.remove(image.id, force=True)
        assert store_state(store) == empty
    assert len(refused) > 100
    assert time.monotonic() - start < 25
    for i, data in enumerate(rnd.sample(refused, 4)):
        path = tmp_path / f"cli-{i}.tar"
        path.write_bytes(data)
        proc = subprocess.run([*PYDOCK, "--root", str(store.root), "load", "-i", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pydock: error: ") and str(path) in lines[0], lines
        assert store_state(store) == empty


def test_fuzz_dockerfiles_through_the_cli(tmp_path):
    rnd = random.Random(SEED + 3)
    root = tmp_path / "store"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    ImageStore(root)
    store = ImageStore(root)
    before = store_state(store)
    refused = 0
    for n in range(60):
        text = mutate_text(rnd, DOCKERFILE_SEED)
        try:
            make_plan(parse(text), {}, None)
        except BuildError:
            refused += 1
            (ctx / "Dockerfile").write_bytes(text.encode("utf-8", "surrogateescape"))
            proc = subprocess.run([*PYDOCK, "--root", str(root), "build", str(ctx)], capture_output=True,
                                  text=True, timeout=60)
            assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
            errors = [l for l in proc.stderr.splitlines() if l.startswith("pydock: error: ")]
            assert len(errors) == 1 and ("Dockerfile" in errors[0]), proc.stderr
            assert store_state(store) == before
            if refused >= 4:
                break
