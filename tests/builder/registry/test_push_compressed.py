"""A built image keeps plain-tar layers in the store and goes to a registry gzip-compressed: the pushed
manifest names gzip blobs that unpack to the config's diff_ids, the same digest on every push, and a pull
gives back the same image (ID, layers' content)."""

from __future__ import annotations

import gzip
import hashlib
import json

import requests

from builder.image import mediatypes as mt
from builder_support import make_context
from registry_support import Client, Registry


def test_built_image_is_pushed_gzip_compressed_once(tmp_path, busybox_tar):
    registry = Registry(tmp_path / "registry")
    try:
        source = Client(tmp_path / "source", tmp_path / "docker")
        source("import", busybox_tar, "busybox:latest", check=True)
        ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY data /data/\nRUN echo made > /made\n",
                           {"data/a.txt": "a" * 5000, "data/b.bin": bytes(range(256)) * 40})
        ref = f"{registry.host}/built:v1"
        source("build", "-q", "-t", ref, ctx, check=True)
        local = json.loads(source("inspect", ref, check=True).stdout)[0]

        out = source("push", ref, check=True).stdout
        digest = out.rsplit("digest: ", 1)[1].split()[0]
        r = requests.get(f"http://{registry.host}/v2/built/manifests/v1",
                         headers={"Accept": mt.OCI_MANIFEST}, timeout=10)
        assert r.headers["Docker-Content-Digest"] == digest == "sha256:" + hashlib.sha256(r.content).hexdigest()
        manifest = r.json()
        assert manifest["config"]["digest"] == local["Id"]
        config = json.loads(registry.blob_data(local["Id"]).read_bytes())
        assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER_GZIP] * 3
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
            blob = registry.blob_data(layer["digest"]).read_bytes()
            assert len(blob) == layer["size"] and "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
            assert "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest() == diff_id

        again = source("push", ref, check=True).stdout
        assert f"v1: digest: {digest} " in again and "Pushed" not in again  # compressed once, the same bytes

        fresh = Client(tmp_path / "fresh", tmp_path / "docker")
        fresh("pull", ref, check=True)
        pulled = json.loads(fresh("inspect", ref, check=True).stdout)[0]
        assert pulled["Id"] == local["Id"] and pulled["RootFS"] == local["RootFS"]
        assert fresh("run", "--rm", ref, "cat", "/made", "/data/a.txt", check=True).stdout == "made\n" + "a" * 5000
    finally:
        registry.stop()
