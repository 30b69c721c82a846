"""pydock build --platform and FROM --platform against a multi-platform image index in a real registry on
loopback: the stage's platform picks the index entry, only this host's platform can RUN, a stage for
another platform that runs nothing builds, and the predefined platform ARGs say what was asked."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
import requests

from builder.image import mediatypes as mt
from builder.image.platform import host_platform
from builder_support import make_context
from registry_support import Client, one_line_error, push_busybox

pytestmark = pytest.mark.root

FOREIGN = "linux/arm64/v8" if host_platform().architecture != "arm64" else "linux/amd64"


def _put_blob(registry, repo: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"http://{registry.host}/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    sep = "&" if "?" in location else "?"
    r = requests.put(f"{location}{sep}digest={digest}", data=data,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return {"digest": digest, "size": len(data)}


@pytest.fixture(scope="module")
def multi(tmp_path_factory, registry, busybox_tar) -> str:
    """HOST/multi:latest, an OCI index: busybox for this host, and the same files as an image for FOREIGN
    (its config says so; nothing in it is ever run)."""
    push_busybox(tmp_path_factory, busybox_tar, f"{registry.host}/multi:host")
    base = f"http://{registry.host}/v2/multi"
    host_manifest = requests.get(f"{base}/manifests/host", headers={"Accept": mt.OCI_MANIFEST}).content
    manifest = json.loads(host_manifest)
    config = requests.get(f"{base}/blobs/{manifest['config']['digest']}").json()
    os_, arch, *variant = FOREIGN.split("/")
    config.update(os=os_, architecture=arch)
    config.pop("variant", None)
    if variant:
        config["variant"] = variant[0]
    desc = _put_blob(registry, "multi", json.dumps(config).encode())
    manifest["config"] = {**manifest["config"], **desc}
    foreign_manifest = json.dumps(manifest).encode()
    r = requests.put(f"{base}/manifests/foreign", data=foreign_manifest, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status_code == 201, r.text
    host = host_platform()

    def entry(data: bytes, platform: dict) -> dict:
        return {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                "size": len(data), "platform": platform}

    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        entry(host_manifest, {"os": host.os, "architecture": host.architecture,
                              **({"variant": host.variant} if host.variant else {})}),
        entry(foreign_manifest, {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}),
    ]}
    r = requests.put(f"{base}/manifests/latest", data=json.dumps(index).encode(),
                     headers={"Content-Type": mt.OCI_INDEX})
    assert r.status_code == 201, r.text
    return f"{registry.host}/multi:latest"


@pytest.fixture
def fresh(tmp_path):
    return Client(tmp_path / "store", tmp_path / "docker")


def inspect(client, ref: str) -> dict:
    return json.loads(client("inspect", ref, check=True).stdout)[0]


def last_layer_file(client, tmp_path, ref: str, name: str) -> str:
    """A file of the image's last layer, read from `save --format oci` (the image may be for a platform
    this host cannot run)."""
    archive = tmp_path / f"{ref}.tar"
    client("save", "--format", "oci", "-o", str(archive), ref, check=True)
    with tarfile.open(archive) as outer:
        def blob(digest: str) -> bytes:
            return outer.extractfile("blobs/sha256/" + digest[7:]).read()

        index = json.loads(outer.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        with tarfile.open(fileobj=io.BytesIO(blob(manifest["layers"][-1]["digest"]))) as layer:
            return layer.extractfile(name).read().decode()


def test_foreign_platform_builds_when_no_step_runs(fresh, multi, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM {multi}\nARG TARGETPLATFORM TARGETARCH BUILDPLATFORM\n"
                                         "LABEL target=$TARGETPLATFORM arch=$TARGETARCH build=$BUILDPLATFORM\n"
                                         "ENV MODE=cross\nCOPY hello.txt /hello.txt\n", {"hello.txt": "hi\n"})
    fresh("build", "--platform", FOREIGN, "-t", "cross", str(ctx), check=True)
    info = inspect(fresh, "cross")
    os_, arch, *variant = FOREIGN.split("/")
    assert (info["Os"], info["Architecture"]) == (os_, arch)
    assert info["Config"]["Labels"] == {"target": FOREIGN, "arch": arch, "build": host_platform().format()}
    assert last_layer_file(fresh, tmp_path, "cross", "hello.txt") == "hi\n"


def test_run_for_a_foreign_platform_is_a_clear_error(fresh, multi, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM {multi}\nRUN echo ran-it\n")
    proc = fresh("build", "--platform", FOREIGN, str(ctx))
    line = one_line_error(proc)
    assert f"cannot run a command for platform {FOREIGN} on this {host_platform().format()} host" in line
    assert "\nran-it" not in proc.stdout and "Running in" not in proc.stdout
    # FROM --platform does the same for one stage, whatever --platform says
    ctx = make_context(tmp_path / "ctx2", f"FROM --platform={FOREIGN} {multi}\nRUN echo ran-it\n")
    line = one_line_error(fresh("build", str(ctx)))
    assert f"cannot run a command for platform {FOREIGN}" in line


def test_cross_build_pattern(fresh, multi, tmp_path):
    """The usual cross-compiling Dockerfile: a builder stage on $BUILDPLATFORM runs, told $TARGETARCH;
    the final stage, for the target platform, only copies."""
    ctx = make_context(tmp_path / "ctx", f"FROM --platform=$BUILDPLATFORM {multi} AS build\n"
                                         "ARG TARGETARCH BUILDARCH\n"
                                         "RUN echo \"built on $BUILDARCH for $TARGETARCH\" > /out\n"
                                         f"FROM {multi}\nCOPY --from=build /out /out\n")
    fresh("build", "--platform", FOREIGN, "-t", "cross2", str(ctx), check=True)
    assert inspect(fresh, "cross2")["Architecture"] == FOREIGN.split("/")[1]
    expected = f"built on {host_platform().architecture} for {FOREIGN.split('/')[1]}\n"
    assert last_layer_file(fresh, tmp_path, "cross2", "out") == expected
    # without --platform the same Dockerfile builds for (and runs on) this host
    fresh("build", "-t", "native", str(ctx), check=True)
    assert inspect(fresh, "native")["Architecture"] == host_platform().architecture
    arch = host_platform().architecture
    assert fresh("run", "--rm", "native", "cat", "/out", check=True).stdout == f"built on {arch} for {arch}\n"


def test_platform_errors(fresh, multi, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM {multi}\n")
    line = one_line_error(fresh("build", "--platform", "linux/s390x", str(ctx)))
    assert "no matching manifest for linux/s390x" in line
    line = one_line_error(fresh("build", "--platform", "plan10/amd64", str(ctx)))
    assert "invalid platform 'plan10/amd64'" in line
    line = one_line_error(fresh("build", "--platform", "linux/amd64,linux/arm64", str(ctx)))
    assert "multiple platforms" in line
    scratch = make_context(tmp_path / "scratch", "FROM scratch\nCOPY f /f\n", {"f": "x"})
    fresh("build", "--platform", FOREIGN, "-t", "scratch-cross", str(scratch), check=True)
    assert inspect(fresh, "scratch-cross")["Architecture"] == FOREIGN.split("/")[1]
