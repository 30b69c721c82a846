"""pydock build --cache-to / --cache-from: a build's cache exported from one store (an OCI layout directory,
or a registry on loopback) gives a fresh store cache hits: its RUN steps do not run again and the image
digest is the same. mode=min/max, docker's classic `--cache-from IMAGE`, and bad specs."""

from __future__ import annotations

import json

import pytest

from builder_support import make_context
from registry_support import Client, push_busybox

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def base(tmp_path_factory, registry, busybox_tar) -> str:
    """busybox pushed to the registry: every store pulls the same base image (same digest)."""
    ref = f"{registry.host}/busybox:latest"
    push_busybox(tmp_path_factory, busybox_tar, ref)
    return ref


@pytest.fixture
def store_of(tmp_path, base):
    """store_of(name): a new store (its own client) that has pulled the base image."""
    def make(name: str) -> Client:
        client = Client(tmp_path / name / "store", tmp_path / name / "docker")
        client("pull", base, check=True)
        return client
    return make


def dockerfile(base: str) -> str:
    return (f"FROM {base}\n"
            "RUN echo first-run-$((1+1)) && date +%s%N > /stamp\n"
            "COPY f /f\n"
            "RUN cat /f /stamp > /out\n"
            "ENV DONE=1\n")


def image_ids(client, ref: str) -> tuple[str, str]:
    info = json.loads(client("inspect", ref, check=True).stdout)[0]
    return info["Id"], info["Descriptor"]["digest"]


def ran(proc) -> int:
    """How many RUN steps ran (each prints "Running in" before its command)."""
    return proc.stdout.count(" ---> Running in ")


def test_local_cache_round_trip(store_of, base, tmp_path):
    ctx = make_context(tmp_path / "ctx", dockerfile(base), {"f": "data\n"})
    cache = tmp_path / "cache"
    first = store_of("a")
    proc = first("build", "-t", "app", "--cache-to", f"type=local,dest={cache}", str(ctx), check=True)
    assert ran(proc) == 2
    # an OCI image layout: index.json names the cache manifest, whose layers are the steps' layers
    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((cache / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert manifest["config"]["mediaType"] == "application/vnd.pydock.buildcache.config.v1+json"
    assert len(manifest["layers"]) == 3
    assert json.loads((cache / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}

    second = store_of("b")
    proc = second("build", "-t", "app", "--cache-from", f"type=local,src={cache}", str(ctx), check=True)
    assert ran(proc) == 0 and "first-run-2" not in proc.stdout
    assert proc.stdout.count(" ---> Using cache") == 3
    assert image_ids(second, "app") == image_ids(first, "app")
    # the imported steps are now the store's own cache: no --cache-from needed any more
    again = second("build", "-t", "app", str(ctx), check=True)
    assert ran(again) == 0

    # a changed file: the steps before it still come from the cache, the ones after run
    (ctx / "f").write_text("changed\n")
    third = store_of("c")
    proc = third("build", "--cache-from", f"type=local,src={cache}", str(ctx), check=True)
    assert ran(proc) == 1 and "first-run-2" not in proc.stdout


def test_mode_max_exports_every_stage(store_of, base, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM {base} AS build\nRUN echo built > /artifact\n"
                                         f"FROM {base}\nCOPY --from=build /artifact /artifact\n")
    first = store_of("a")
    first("build", "--cache-to", f"type=local,dest={tmp_path / 'min'}", str(ctx), check=True)
    first("build", "--cache-to", f"type=local,dest={tmp_path / 'max'},mode=max", str(ctx), check=True)
    with_min = store_of("b")("build", "--cache-from", f"type=local,src={tmp_path / 'min'}", str(ctx), check=True)
    assert ran(with_min) == 1  # the build stage's RUN was not exported
    with_max = store_of("c")("build", "--cache-from", f"type=local,src={tmp_path / 'max'}", str(ctx), check=True)
    assert ran(with_max) == 0


def test_registry_cache_round_trip(store_of, base, registry, tmp_path):
    ctx = make_context(tmp_path / "ctx", dockerfile(base), {"f": "data\n"})
    cache_ref = f"{registry.host}/app-cache:main"
    first = store_of("a")
    first("build", "-t", "app", "--cache-to", f"type=registry,ref={cache_ref},mode=max", str(ctx), check=True)
    second = store_of("b")
    proc = second("build", "-t", "app", "--cache-from", f"type=registry,ref={cache_ref}", str(ctx), check=True)
    assert ran(proc) == 0
    assert image_ids(second, "app") == image_ids(first, "app")
    # the plain form names the same cache
    proc = store_of("c")("build", "--cache-from", cache_ref, str(ctx), check=True)
    assert ran(proc) == 0


def test_image_as_cache_source(store_of, base, registry, tmp_path):
    """docker's classic --cache-from IMAGE: steps whose history and layers match the image's are reused."""
    ctx = make_context(tmp_path / "ctx", dockerfile(base), {"f": "data\n"})
    first = store_of("a")
    app = f"{registry.host}/app:1"
    first("build", "-t", app, str(ctx), check=True)
    first("push", app, check=True)
    second = store_of("b")
    proc = second("build", "-t", "app", "--cache-from", app, str(ctx), check=True)
    steps = proc.stdout.split("Step ")
    assert " ---> Using cache" in steps[2] and "first-run-2" not in proc.stdout  # the first RUN
    assert "Running in" not in steps[2]
    # buildx's spelling of the same: an image in a registry named as a registry cache
    proc = store_of("c")("build", "--cache-from", f"type=registry,ref={app}", str(ctx), check=True)
    assert " ---> Using cache" in proc.stdout.split("Step ")[2]
    # a different instruction history is not a match
    other = make_context(tmp_path / "other", dockerfile(base).replace("date", "date -u"), {"f": "data\n"})
    proc = second("build", "--cache-from", app, str(other), check=True)
    assert ran(proc) == 2


def test_bad_cache_specs(store_of, base, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM {base}\nRUN true\n")
    client = store_of("a")
    for flag, value, message in [
        ("--cache-to", "type=s3,bucket=x", "unsupported --cache-to type 's3'"),
        ("--cache-to", "type=local", "type=local needs dest=DIR"),
        ("--cache-to", f"type=local,dest={tmp_path / 'c'},mode=all", "invalid --cache-to mode 'all'"),
        ("--cache-from", "type=local", "type=local needs src=DIR"),
        ("--cache-from", "type=gha", "unsupported --cache-from type 'gha'"),
    ]:
        proc = client("build", flag, value, str(ctx))
        assert proc.returncode == 1 and message in proc.stderr, (value, proc.stderr)
        assert "Traceback" not in proc.stderr
    # a cache that is not there yet (a pipeline's first build) is a warning, not a failure
    proc = client("build", "--cache-from", f"type=local,src={tmp_path / 'none'}", str(ctx), check=True)
    assert "cache from" in proc.stderr and "not used" in proc.stderr


def _rewrite_cache(cache, edit) -> None:
    """Let `edit` change the cache's config (a list of steps), then write config, manifest and index anew."""
    import hashlib

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (cache / "blobs/sha256" / digest).write_bytes(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    index = json.loads((cache / "index.json").read_text())
    manifest = json.loads((cache / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((cache / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    edit(config["steps"])
    manifest["config"].update(put(json.dumps(config).encode()))
    index["manifests"][0].update(put(json.dumps(manifest).encode()))
    (cache / "index.json").write_text(json.dumps(index))


def test_a_lying_cache_is_refused(store_of, base, tmp_path):
    """A cache step whose layer does not unpack to the diff_id it claims never reaches an image."""
    ctx = make_context(tmp_path / "ctx", dockerfile(base), {"f": "data\n"})
    cache = tmp_path / "cache"
    store_of("a")("build", "--cache-to", f"type=local,dest={cache}", str(ctx), check=True)

    def swap(steps):
        steps[0]["layer"] = steps[1]["layer"]  # the COPY's layer, under the first RUN's key and diff_id

    _rewrite_cache(cache, swap)
    victim = store_of("b")
    before = victim.snapshot()
    proc = victim("build", "-t", "app", "--cache-from", f"type=local,src={cache}", str(ctx))
    assert proc.returncode == 1 and "unpacks to" in proc.stderr and "Traceback" not in proc.stderr
    assert victim("images", "-q", "app", check=True).stdout == ""
    assert victim.snapshot() == before
