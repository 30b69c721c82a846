"""The store's entry point for pulled images: exact manifest bytes, checked digest, repo digests."""

from __future__ import annotations

import json

import pytest

from builder.errors import BuildError
from builder.image import mediatypes as mt
from builder.image.digest import sha256_digest


def _manifest(store) -> bytes:
    layer = store.put_blob(b"not really a tar", mt.OCI_LAYER_TAR)
    config = store.put_json({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}, mt.OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
           "config": {"mediaType": mt.DOCKER_CONFIG, "digest": config.digest, "size": config.size},
           "layers": [{"mediaType": mt.DOCKER_LAYER_TAR, "digest": layer.digest, "size": layer.size}]}
    return json.dumps(doc, indent=2).encode()  # not canonical: the bytes must be kept as they are


def test_add_pulled_keeps_bytes_and_repo_digests(store):
    data = _manifest(store)
    digest = sha256_digest(data)
    index_digest = "sha256:" + "1" * 64
    image = store.add_pulled(data, mt.DOCKER_MANIFEST, digest, "reg.example/app:v1", f"reg.example/app@{index_digest}")
    assert image.digest == digest and store.read_blob(digest) == data
    assert store.resolve("reg.example/app:v1").digest == digest
    assert store.resolve(f"reg.example/app@{index_digest}").digest == digest
    assert store.inspect("reg.example/app:v1")["RepoDigests"] == [f"reg.example/app@{index_digest}"]
    assert store.inspect("reg.example/app:v1")["Descriptor"]["mediaType"] == mt.DOCKER_MANIFEST
    store.add_pulled(data, mt.DOCKER_MANIFEST, digest, None, f"reg.example/app@{digest}")
    assert store.repo_digests(image) == [f"reg.example/app@{index_digest}", f"reg.example/app@{digest}"]


def test_add_pulled_refuses_a_digest_mismatch(store):
    data = _manifest(store)
    before = sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir())
    with pytest.raises(BuildError, match="does not match its digest"):
        store.add_pulled(data, mt.DOCKER_MANIFEST, "sha256:" + "2" * 64, "x:1", "x@sha256:" + "2" * 64)
    assert sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir()) == before
    assert store.images() == []


def test_a_partial_blob_is_kept_resumed_verified_and_collected(store):
    data = b"0123456789" * 1000
    digest = sha256_digest(data)
    partial = store.partial_blob(digest)
    partial.write(data[:4000])
    assert store.partial_blob(digest) is None  # another download of it is going on
    partial.keep()
    again = store.partial_blob(digest)
    assert again.size == 4000
    again.write(data[4000:])
    again.commit(mt.OCI_LAYER_TAR)
    assert store.read_blob(digest) == data and list(store.partial_dir.iterdir()) == []

    wrong = store.partial_blob("sha256:" + "0" * 64)
    wrong.write(data)
    with pytest.raises(BuildError, match="does not match its digest"):
        wrong.commit(mt.OCI_LAYER_TAR)
    assert list(store.partial_dir.iterdir()) == []

    left = store.partial_blob("sha256:" + "3" * 64)
    left.write(b"abc")
    left.keep()
    assert store.gc()["tmp"] == 1 and list(store.partial_dir.iterdir()) == []
