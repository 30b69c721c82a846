"""Round trips with skopeo through a real registry on loopback: an image pydock built and pushed is
copied out by `skopeo copy docker://... oci:DIR` with its digest, config and files; one that skopeo
pushed (from a docker-archive, re-packed by skopeo into its own manifest and gzip layers) is pulled by
pydock with skopeo's digest and runs."""

from __future__ import annotations

import json
import tarfile

from builder_support import make_context
from registry_support import Client, Registry, skopeo


def _file_in_layers(layout, manifest: dict, name: str) -> bytes | None:
    """The content of `name` in the last layer of an OCI layout's image that holds it."""
    found = None
    for layer in manifest["layers"]:
        algorithm, hexpart = layer["digest"].split(":")
        with tarfile.open(layout / "blobs" / algorithm / hexpart, "r:*") as tar:
            for member in tar:
                if member.name.lstrip("./") == name and member.isfile():
                    found = tar.extractfile(member).read()
    return found


def test_pydock_push_then_skopeo_copy(tmp_path, busybox_tar):
    registry = Registry(tmp_path / "registry")
    try:
        client = Client(tmp_path / "store", tmp_path / "docker")
        client("import", busybox_tar, "busybox:latest", check=True)
        ref = f"{registry.host}/interop/made:v1"
        client("build", "-q", "-t", ref, make_context(tmp_path / "ctx", "FROM busybox\n"
                                                       "RUN echo made by pydock > /made\n", {}), check=True)
        image_id = json.loads(client("inspect", ref, check=True).stdout)[0]["Id"]
        pushed = client("push", ref, check=True).stdout.rsplit("digest: ", 1)[1].split()[0]

        remote = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)
        assert remote["Digest"] == pushed
        layout = tmp_path / "layout"
        skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:v1")
        manifest = json.loads(skopeo("inspect", "--raw", f"oci:{layout}:v1").stdout)
        assert manifest["config"]["digest"] == image_id  # the same image: its config is untouched
        assert _file_in_layers(layout, manifest, "made") == b"made by pydock\n"
        config = json.loads(skopeo("inspect", "--config", f"oci:{layout}:v1").stdout)
        assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == 2
    finally:
        registry.stop()


def test_skopeo_push_then_pydock_pull_and_run(tmp_path, busybox_tar):
    registry = Registry(tmp_path / "registry")
    try:
        source = Client(tmp_path / "source", tmp_path / "docker")
        source("import", busybox_tar, "busybox:latest", check=True)
        source("build", "-q", "-t", "skopeo-src:v1", make_context(tmp_path / "ctx", "FROM busybox\n"
               "RUN echo pushed by skopeo > /made\nCMD [\"cat\", \"/made\"]\n", {}), check=True)
        archive = tmp_path / "image.tar"
        source("save", "-o", archive, "skopeo-src:v1", check=True)
        ref = f"{registry.host}/interop/by-skopeo:v1"
        skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{ref}")
        remote = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)

        fresh = Client(tmp_path / "fresh", tmp_path / "docker")
        out = fresh("pull", ref, check=True).stdout
        assert f"Digest: {remote['Digest']}" in out
        pulled = json.loads(fresh("inspect", ref, check=True).stdout)[0]
        raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)
        assert pulled["Id"] == raw["config"]["digest"]
        assert len(pulled["RootFS"]["Layers"]) == len(raw["layers"]) == 2
        assert pulled["RepoDigests"] == [f"{registry.host}/interop/by-skopeo@{remote['Digest']}"]
        run = fresh("run", "--rm", "--network", "none", ref, check=True)
        assert run.stdout == "pushed by skopeo\n"
        run = fresh("run", "--rm", "--network", "none", ref, "sh", "-c", "cat /made; echo $0", check=True)
        assert run.stdout == "pushed by skopeo\nsh\n"
    finally:
        registry.stop()
