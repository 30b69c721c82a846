"""pydock push and pull against a real registry on loopback: byte-identical round trips, manifest lists,
docker schema 2 manifests, mounts, and failures that leave the store as it was."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from builder.image import mediatypes as mt
from builder.image.platform import host_platform
from registry_support import Client, one_line_error, push_busybox


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, registry, busybox_tar):
    """A store with busybox, pushed as HOST/busybox:latest; returns (client, manifest digest)."""
    client, push = push_busybox(tmp_path_factory, busybox_tar, f"{registry.host}/busybox:latest")
    out = push.stdout
    assert f"The push refers to repository [{registry.host}/busybox]" in out
    assert ": Pushed" in out
    digest = json.loads(client("inspect", "busybox:latest", check=True).stdout)[0]["Descriptor"]["digest"]
    assert f"latest: digest: {digest} size: " in out
    return client, digest


@pytest.fixture
def fresh(tmp_path):
    client = Client(tmp_path / "store", tmp_path / "docker")
    client("images", check=True)  # an empty store, so that a snapshot has something to compare
    return client


def manifest_digest(client, ref):
    return json.loads(client("inspect", ref, check=True).stdout)[0]["Descriptor"]["digest"]


def test_pushed_image_pulls_back_identical(registry, pushed, fresh):
    source, digest = pushed
    r = requests.get(f"http://{registry.host}/v2/busybox/manifests/latest", headers={"Accept": mt.OCI_MANIFEST})
    assert r.headers["Docker-Content-Digest"] == digest
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest
    out = fresh("pull", f"{registry.host}/busybox", check=True).stdout.splitlines()
    assert out[0] == "latest: Pulling from busybox"
    assert any(line.endswith(": Pull complete") for line in out)
    assert f"Digest: {digest}" in out
    assert out[-2:] == [f"Status: Downloaded newer image for {registry.host}/busybox:latest",
                        f"{registry.host}/busybox:latest"]
    assert manifest_digest(fresh, f"{registry.host}/busybox:latest") == digest
    assert manifest_digest(fresh, f"{registry.host}/busybox@{digest}") == digest
    inspected = json.loads(fresh("inspect", f"{registry.host}/busybox", check=True).stdout)[0]
    assert inspected["RepoDigests"] == [f"{registry.host}/busybox@{digest}"]
    assert (json.loads(fresh("inspect", f"{registry.host}/busybox", check=True).stdout)[0]["Id"]
            == json.loads(source("inspect", "busybox", check=True).stdout)[0]["Id"])
    # the image is usable: its layer unpacks to the diff_id its config names
    fresh("bundle", f"{registry.host}/busybox", fresh.root.parent / "bundle", check=True)
    assert (fresh.root.parent / "bundle/rootfs/bin/busybox").is_file()
    again = fresh("pull", f"{registry.host}/busybox:latest", check=True).stdout
    assert f"Status: Image is up to date for {registry.host}/busybox:latest" in again
    quiet = fresh("pull", "-q", f"{registry.host}/busybox@{digest}", check=True).stdout
    assert quiet == f"{registry.host}/busybox@{digest}\n"


def test_push_again_and_mount_into_another_repository(registry, pushed):
    source, _ = pushed
    out = source("push", f"{registry.host}/busybox:latest", check=True).stdout
    assert ": Layer already exists" in out and ": Pushed" not in out
    source("tag", "busybox:latest", f"{registry.host}/other/bb:v1", check=True)
    out = source("push", f"{registry.host}/other/bb:v1", check=True).stdout
    assert ": Mounted from busybox" in out and ": Pushed" not in out
    r = requests.get(f"http://{registry.host}/v2/other/bb/manifests/v1", headers={"Accept": mt.OCI_MANIFEST})
    assert r.status_code == 200


def test_pull_by_digest_from_a_list_picks_the_platform(registry, pushed, fresh):
    source, digest = pushed
    size = len(requests.get(f"http://{registry.host}/v2/busybox/manifests/latest",
                            headers={"Accept": mt.OCI_MANIFEST}).content)
    host = host_platform()
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": size}
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {**entry, "platform": {"os": "linux", "architecture": "s390x"}},
        {**entry, "platform": {"os": host.os, "architecture": host.architecture, **({"variant": host.variant} if host.variant else {})}},
    ]}
    body = json.dumps(index).encode()
    r = requests.put(f"http://{registry.host}/v2/multi/manifests/v1", data=body,
                     headers={"Content-Type": mt.OCI_INDEX})
    if r.status_code == 400:  # the registry wants the children in the repository first
        source("tag", "busybox:latest", f"{registry.host}/multi:child", check=True)
        source("push", f"{registry.host}/multi:child", check=True)
        r = requests.put(f"http://{registry.host}/v2/multi/manifests/v1", data=body,
                         headers={"Content-Type": mt.OCI_INDEX})
    assert r.status_code == 201, r.text
    index_digest = "sha256:" + hashlib.sha256(body).hexdigest()
    out = fresh("pull", f"{registry.host}/multi:v1", check=True).stdout
    assert f"Digest: {index_digest}" in out
    assert manifest_digest(fresh, f"{registry.host}/multi:v1") == digest
    # the list's digest names the image pulled from it, as the registry's digest does
    assert manifest_digest(fresh, f"{registry.host}/multi@{index_digest}") == digest
    inspected = json.loads(fresh("inspect", f"{registry.host}/multi:v1", check=True).stdout)[0]
    assert f"{registry.host}/multi@{index_digest}" in inspected["RepoDigests"]
    assert fresh("pull", "--platform", "linux/s390x", f"{registry.host}/multi@{index_digest}", check=True)
    before = fresh.snapshot()
    line = one_line_error(fresh("pull", "--platform", "linux/riscv64", f"{registry.host}/multi:v1"))
    assert "no matching manifest for linux/riscv64" in line and "linux/s390x" in line
    assert fresh.snapshot() == before
    fresh("rmi", f"{registry.host}/multi:v1", check=True)
    before = fresh.snapshot()
    line = one_line_error(fresh("pull", "--platform", "linux/s390x", f"{registry.host}/busybox"))
    assert f"is for {host.format()}, not the requested linux/s390x" in line
    assert fresh.snapshot() == before


def test_docker_schema2_manifest_round_trips(registry, pushed, fresh):
    source, digest = pushed
    oci = requests.get(f"http://{registry.host}/v2/busybox/manifests/latest",
                       headers={"Accept": mt.OCI_MANIFEST}).json()
    layer_types = {mt.OCI_LAYER_TAR: mt.DOCKER_LAYER_TAR, mt.OCI_LAYER_GZIP: mt.DOCKER_LAYER_GZIP}
    docker = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
              "config": {**oci["config"], "mediaType": mt.DOCKER_CONFIG},
              "layers": [{**layer, "mediaType": layer_types[layer["mediaType"]]} for layer in oci["layers"]]}
    body = json.dumps(docker, indent=3).encode()
    docker_digest = "sha256:" + hashlib.sha256(body).hexdigest()
    r = requests.put(f"http://{registry.host}/v2/dockerfmt/manifests/v2", data=body,
                     headers={"Content-Type": mt.DOCKER_MANIFEST})
    if r.status_code == 400:  # blobs must be in the repository: mount them
        for d in (oci["config"], *oci["layers"]):
            requests.post(f"http://{registry.host}/v2/dockerfmt/blobs/uploads/?mount={d['digest']}&from=busybox")
        r = requests.put(f"http://{registry.host}/v2/dockerfmt/manifests/v2", data=body,
                         headers={"Content-Type": mt.DOCKER_MANIFEST})
    assert r.status_code == 201, r.text
    fresh("pull", f"{registry.host}/dockerfmt:v2", check=True)
    assert manifest_digest(fresh, f"{registry.host}/dockerfmt:v2") == docker_digest
    fresh("tag", f"{registry.host}/dockerfmt:v2", f"{registry.host}/dockerfmt:copy", check=True)
    out = fresh("push", f"{registry.host}/dockerfmt:copy", check=True).stdout
    assert f"copy: digest: {docker_digest} size: {len(body)}" in out
    back = requests.get(f"http://{registry.host}/v2/dockerfmt/manifests/copy",
                        headers={"Accept": mt.DOCKER_MANIFEST})
    assert back.content == body and back.headers["Content-Type"] == mt.DOCKER_MANIFEST


def test_a_corrupt_blob_is_refused_and_nothing_is_kept(registry, pushed, fresh, tmp_path):
    source, _ = pushed
    source("tag", "busybox:latest", f"{registry.host}/corrupt:latest", check=True)
    source("push", f"{registry.host}/corrupt:latest", check=True)
    oci = requests.get(f"http://{registry.host}/v2/corrupt/manifests/latest",
                       headers={"Accept": mt.OCI_MANIFEST}).json()
    data = registry.blob_data(oci["layers"][0]["digest"])
    original = data.read_bytes()
    try:
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0xFF
        data.write_bytes(bytes(flipped))
        before = fresh.snapshot()
        line = one_line_error(fresh("pull", f"{registry.host}/corrupt"))
        assert oci["layers"][0]["digest"] in line and "does not match" in line
        assert fresh.snapshot() == before
        assert "corrupt" not in fresh("images", check=True).stdout
    finally:
        data.write_bytes(original)


@pytest.mark.parametrize("args,message", [
    (["pull", "Busybox"], "must be lowercase"),
    (["pull", "busybox@sha256:12"], "bad digest"),
    (["push", "busybox@sha256:" + "a" * 64], "cannot push a digest reference"),
    (["pull", "--platform", "a/b/c/d", "127.0.0.1:1/x"], "invalid platform"),
])
def test_bad_input_is_one_line(fresh, args, message):
    assert message in one_line_error(fresh(*args))


def test_missing_tag_and_unreachable_registry(registry, pushed, fresh):
    before = fresh.snapshot()
    assert "not found" in one_line_error(fresh("pull", f"{registry.host}/busybox:nope"))
    assert "not found" in one_line_error(fresh("pull", f"{registry.host}/nothing-here"))
    assert "cannot reach 127.0.0.1:1" in one_line_error(fresh("pull", "127.0.0.1:1/busybox"))
    assert fresh.snapshot() == before
    assert "image not found" in one_line_error(fresh("push", f"{registry.host}/busybox"))


def test_search_lists_the_catalog(registry, pushed, fresh):
    out = fresh("search", f"{registry.host}/busy", check=True).stdout.splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    assert [line.split()[0] for line in out[1:]] == [f"{registry.host}/busybox"]
    out = fresh("search", "--limit", "1", f"{registry.host}/", check=True).stdout.splitlines()
    assert len(out) == 2
    # distribution has no /v1/search: the catalog answered, so there are no stars and no one is official
    out = fresh("search", "--format", "{{.Name}}|{{.StarCount}}|{{.IsOfficial}}", f"{registry.host}/box",
                check=True).stdout
    assert out == f"{registry.host}/busybox|0|\n"
    assert fresh("search", "--filter", "stars=1", f"{registry.host}/busy", check=True).stdout.splitlines()[1:] == []


def test_from_pulls_a_missing_image_and_build_pull_refreshes(registry, pushed, fresh, tmp_path, busybox_tar):
    from builder_support import make_context

    source, _ = pushed
    source("import", "-c", "ENV V=one", busybox_tar, f"{registry.host}/base:latest", check=True)
    source("push", f"{registry.host}/base:latest", check=True)
    ctx = make_context(tmp_path / "ctx", f"FROM {registry.host}/base\nENV MINE=1\n")

    def env_of(ref):
        return json.loads(fresh("inspect", ref, check=True).stdout)[0]["Config"]["Env"]

    fresh("build", "-t", "out:1", ctx, check=True)
    assert "V=one" in env_of("out:1") and "MINE=1" in env_of("out:1")
    assert f"{registry.host}/base" in fresh("images", check=True).stdout
    source("import", "-c", "ENV V=two", busybox_tar, f"{registry.host}/base:latest", check=True)
    source("push", f"{registry.host}/base:latest", check=True)
    fresh("build", "-t", "out:2", ctx, check=True)
    assert "V=one" in env_of("out:2")  # the store's copy, without --pull
    fresh("build", "--pull", "-t", "out:3", ctx, check=True)
    assert "V=two" in env_of("out:3")
    failing = make_context(tmp_path / "failing", f"FROM {registry.host}/busybox\nCOPY missing /\n")
    assert fresh("build", failing).returncode == 1
    assert f"{registry.host}/busybox" in fresh("images", check=True).stdout  # the pulled base stays
    before = fresh.snapshot()
    bad = make_context(tmp_path / "bad", f"FROM {registry.host}/no-such-image\n")
    proc = fresh("build", bad)
    assert proc.returncode == 1 and "not found" in proc.stderr
    assert fresh.snapshot() == before


class FlakyProxy:
    """Forwards to the registry (with the client's Host, so that upload locations lead back here), but
    `policy(method, key, n)` may make the n-th request for a key "drop" (close without an answer),
    "503", "cut" (half the body, then close), "lost" (forwarded, then closed without the answer) or
    "corrupt" (the body with its first byte changed). The key
    is the path, or the digest being uploaded. `ranges` lists (key, Range header) of every GET."""

    def __init__(self, upstream: str, policy):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse
        import threading

        from registry_support import free_port

        self.seen: dict[tuple[str, str], int] = {}
        self.ranges: list[tuple[str, str | None]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                method = self.command
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = parse_qs(urlparse(self.path).query).get("digest", [urlparse(self.path).path])[0]
                n = proxy.seen[method, key] = proxy.seen.get((method, key), 0) + 1
                if method == "GET":
                    proxy.ranges.append((key, self.headers.get("Range")))
                action = policy(method, key, n)
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "503":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {h: self.headers[h] for h in ("Accept", "Content-Type", "Host", "Authorization",
                                                        "Range", "Content-Range")
                           if self.headers.get(h)}
                r = requests.request(method, f"http://{upstream}{self.path}", headers=headers, data=body,
                                     allow_redirects=False)
                if action == "lost":
                    self.close_connection = True
                    return
                self.send_response(r.status_code)
                for h in ("Content-Type", "Docker-Content-Digest", "Location", "Range", "Docker-Upload-UUID",
                          "WWW-Authenticate", "Content-Range", "Accept-Ranges"):
                    if h in r.headers:
                        self.send_header(h, r.headers[h])
                length = r.headers.get("Content-Length", "0") if method == "HEAD" else str(len(r.content))
                self.send_header("Content-Length", length)
                self.end_headers()
                if method == "HEAD":
                    return
                if action == "cut":
                    self.wfile.write(r.content[:len(r.content) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if action == "corrupt" and r.content:
                    self.wfile.write(bytes([r.content[0] ^ 0xFF]) + r.content[1:])
                    return
                self.wfile.write(r.content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = handle_any

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _pull_policy(method, key, n):
    if "/manifests/" in key and n == 1:
        return "drop"
    if "/blobs/" in key and method == "GET":
        return {1: "503", 2: "cut"}.get(n)
    return None


def test_pull_retries_5xx_and_dropped_connections(registry, pushed, fresh):
    _, digest = pushed
    proxy = FlakyProxy(registry.host, _pull_policy)
    try:
        fresh("pull", f"127.0.0.1:{proxy.port}/busybox", check=True)
    finally:
        proxy.stop()
    assert manifest_digest(fresh, f"127.0.0.1:{proxy.port}/busybox") == digest
    blob_gets = [n for (method, key), n in proxy.seen.items() if method == "GET" and "/blobs/" in key]
    assert blob_gets and all(n == 3 for n in blob_gets)


def test_push_starts_a_failed_upload_again(registry, busybox_tar, tmp_path):
    client = Client(tmp_path / "store", tmp_path / "docker")
    client("import", "-c", "ENV FLAKY=1", busybox_tar, "flaky:latest", check=True)
    proxy = FlakyProxy(registry.host, lambda method, key, n: (
        "503" if method == "PUT" and key.startswith("sha256:") and n == 1 else
        "drop" if method == "PUT" and key.startswith("sha256:") and n == 2 else None))
    try:
        target = f"127.0.0.1:{proxy.port}/flaky:latest"
        client("tag", "flaky:latest", target, check=True)
        out = client("push", target, check=True).stdout
    finally:
        proxy.stop()
    assert "latest: digest:" in out
    puts = [n for (method, key), n in proxy.seen.items() if method == "PUT" and key.startswith("sha256:")]
    assert puts and all(n == 3 for n in puts)
    fresh = Client(tmp_path / "store2", tmp_path / "docker")
    fresh("pull", f"{registry.host}/flaky", check=True)
    assert manifest_digest(fresh, f"{registry.host}/flaky") == manifest_digest(client, "flaky:latest")


def test_all_tags(registry, pushed, fresh):
    source, _ = pushed
    for tag in ("a", "b"):
        source("tag", "busybox:latest", f"{registry.host}/alltags:{tag}", check=True)
    out = source("push", "-a", f"{registry.host}/alltags", check=True).stdout
    assert "a: digest:" in out and "b: digest:" in out
    assert "cannot push" not in out
    assert "no tag or digest here" in one_line_error(source("push", "-a", f"{registry.host}/alltags:a"))
    out = fresh("pull", "-a", f"{registry.host}/alltags", check=True).stdout.splitlines()
    assert out[-1] == f"{registry.host}/alltags"
    names = fresh("images", check=True).stdout
    assert names.count(f"{registry.host}/alltags") == 2


def _blob_gets(proxy):
    return [(key, rng) for key, rng in proxy.ranges if "/blobs/" in key]


def _layer(client, ref):
    return json.loads(client("inspect", ref, check=True).stdout)[0]


def test_a_cut_download_goes_on_with_a_range_request(registry, pushed, fresh):
    _, digest = pushed
    manifest = requests.get(f"http://{registry.host}/v2/busybox/manifests/latest",
                            headers={"Accept": mt.OCI_MANIFEST}).json()
    sizes = {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}
    proxy = FlakyProxy(registry.host, lambda method, key, n: "cut" if "/blobs/" in key and n == 1 else None)
    try:
        fresh("pull", f"127.0.0.1:{proxy.port}/busybox", check=True)
    finally:
        proxy.stop()
    assert manifest_digest(fresh, f"127.0.0.1:{proxy.port}/busybox") == digest
    for blob, size in sizes.items():
        asked = [rng for key, rng in _blob_gets(proxy) if key.endswith(blob)]
        assert asked == [None, f"bytes={size // 2}-"], (blob, asked)
    assert list((fresh.root / "partial").iterdir()) == []
    fresh("bundle", f"127.0.0.1:{proxy.port}/busybox", fresh.root.parent / "bundle", check=True)
    assert (fresh.root.parent / "bundle/rootfs/bin/busybox").is_file()


def test_the_next_pull_resumes_what_a_failed_one_kept(registry, pushed, fresh):
    _, digest = pushed
    layer = requests.get(f"http://{registry.host}/v2/busybox/manifests/latest",
                         headers={"Accept": mt.OCI_MANIFEST}).json()["layers"][0]
    cutting = True
    proxy = FlakyProxy(registry.host,
                       lambda method, key, n: "cut" if cutting and key.endswith(layer["digest"]) else None)
    try:
        name = f"127.0.0.1:{proxy.port}/busybox"
        before = fresh.snapshot()
        line = one_line_error(fresh("pull", name))
        assert "kept for the next pull" in line
        kept = fresh.root / "partial" / layer["digest"][7:]
        assert kept.is_file() and 0 < kept.stat().st_size < layer["size"]
        assert fresh("images", "-q", check=True).stdout == ""
        assert {k for k in fresh.snapshot() if not k.startswith("partial/")} == {k for k in before if k != "partial/"}
        got_before = kept.stat().st_size
        proxy.ranges.clear()
        cutting = False
        fresh("pull", name, check=True)
    finally:
        proxy.stop()
    assert [rng for key, rng in _blob_gets(proxy) if key.endswith(layer["digest"])] == [f"bytes={got_before}-"]
    assert manifest_digest(fresh, name) == digest
    assert not kept.exists()
    assert fresh.root.joinpath("blobs/sha256", layer["digest"][7:]).stat().st_size == layer["size"]


def test_a_resumed_blob_that_does_not_match_is_refused_and_dropped(registry, pushed, fresh):
    layer = requests.get(f"http://{registry.host}/v2/busybox/manifests/latest",
                         headers={"Accept": mt.OCI_MANIFEST}).json()["layers"][0]
    # the first answer is cut, the rest of the blob comes back with a changed byte
    proxy = FlakyProxy(registry.host, lambda method, key, n: (
        {1: "cut", 2: "corrupt"}.get(n) if key.endswith(layer["digest"]) else None))
    try:
        before = fresh.snapshot()
        line = one_line_error(fresh("pull", f"127.0.0.1:{proxy.port}/busybox"))
    finally:
        proxy.stop()
    assert "does not match its digest" in line and layer["digest"] in line
    assert [rng for key, rng in _blob_gets(proxy) if key.endswith(layer["digest"])][1].startswith("bytes=")
    assert fresh.snapshot() == before


def test_a_big_blob_goes_in_chunks_and_a_failed_chunk_goes_on(registry, busybox_tar, tmp_path):
    client = Client(tmp_path / "store", tmp_path / "docker")
    client("import", "-c", "ENV CHUNKED=1", busybox_tar, "chunky:latest", check=True)
    image = json.loads(client("inspect", "chunky:latest", check=True).stdout)[0]
    manifest = json.loads((client.root / "blobs/sha256" / image["Descriptor"]["digest"][7:]).read_bytes())
    layer = manifest["layers"][0]
    chunk = 128 * 1024
    assert layer["size"] > 4 * chunk and manifest["config"]["size"] < chunk

    patches = []

    def policy(method, key, n):
        if method != "PATCH":
            return None
        patches.append(key)
        # the 2nd chunk never arrives (503 from the proxy); the 4th arrives but its answer is lost
        return {2: "503", 4: "lost"}.get(len(patches))

    proxy = FlakyProxy(registry.host, policy)
    try:
        target = f"127.0.0.1:{proxy.port}/chunky:latest"
        client("tag", "chunky:latest", target, check=True)
        out = client("push", target, env={"PYDOCK_PUSH_CHUNK_SIZE": str(chunk)}, check=True).stdout
    finally:
        proxy.stop()
    assert "latest: digest: " + image["Descriptor"]["digest"] in out
    chunks = -(-layer["size"] // chunk)
    status_gets = [key for key, _ in proxy.ranges if "/blobs/uploads/" in key]
    # after each failure it asked where the upload stood: after the 503, it went on with the 2nd chunk;
    # after the lost answer, distribution cannot go on with an upload from a stale location (its state
    # token is behind the data it has), so a new upload sent everything again
    assert len(status_gets) == 2
    first, second = sorted(set(patches), key=patches.index)
    assert patches.count(first) == 4 and patches.count(second) == chunks
    # the config (small) went in one PUT with its body; the layer's PUT only closed the upload
    assert proxy.seen[("PUT", manifest["config"]["digest"])] == 1
    assert proxy.seen[("PUT", layer["digest"])] == 1
    assert hashlib.sha256(registry.blob_data(layer["digest"]).read_bytes()).hexdigest() == layer["digest"][7:]
    fresh = Client(tmp_path / "store2", tmp_path / "docker")
    fresh("pull", f"{registry.host}/chunky", check=True)
    assert manifest_digest(fresh, f"{registry.host}/chunky") == image["Descriptor"]["digest"]
    bad = client("push", f"{registry.host}/chunky:latest", env={"PYDOCK_PUSH_CHUNK_SIZE": "lots"})
    assert "invalid PYDOCK_PUSH_CHUNK_SIZE 'lots'" in one_line_error(bad) and bad.stdout == ""


def _put_list(registry, repo, tag, manifests: dict[str, str]) -> tuple[bytes, str]:
    """PUT an OCI index of {platform: manifest digest} (manifests already in `repo`) as repo:tag."""
    entries = []
    for platform, d in manifests.items():
        size = len(requests.get(f"http://{registry.host}/v2/{repo}/manifests/{d}",
                                headers={"Accept": mt.OCI_MANIFEST}).content)
        os_, arch, *variant = platform.split("/")
        entries.append({"mediaType": mt.OCI_MANIFEST, "digest": d, "size": size, "platform": {
            "os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}})
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}, indent=1).encode()
    r = requests.put(f"http://{registry.host}/v2/{repo}/manifests/{tag}", data=body,
                     headers={"Content-Type": mt.OCI_INDEX})
    assert r.status_code == 201, r.text
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


def test_a_pulled_list_is_kept_and_pushed_back_as_it_is(registry, pushed, fresh, busybox_tar):
    source, digest = pushed
    host = host_platform()
    source("tag", "busybox:latest", f"{registry.host}/multi2:host", check=True)
    source("push", f"{registry.host}/multi2:host", check=True)
    source("import", "-c", "ENV OTHER=1", busybox_tar, f"{registry.host}/multi2:other", check=True)
    source("push", f"{registry.host}/multi2:other", check=True)
    other = manifest_digest(source, f"{registry.host}/multi2:other")

    body, list_digest = _put_list(registry, "multi2", "v1", {"linux/s390x": other, host.format(): digest})

    fresh("pull", f"{registry.host}/multi2:v1", check=True)
    assert (fresh.root / "blobs/sha256" / list_digest[7:]).read_bytes() == body  # the list, byte for byte
    rows = fresh("images", "--digests", check=True).stdout.splitlines()
    assert any(f"{registry.host}/multi2" in row and list_digest in row for row in rows), rows
    assert manifest_digest(fresh, f"{registry.host}/multi2@{list_digest}") == digest

    # pushed where the other platform's manifest is: the same list, under the new tag
    fresh("tag", f"{registry.host}/multi2:v1", f"{registry.host}/multi2:copy", check=True)
    out = fresh("push", f"{registry.host}/multi2:copy", check=True).stdout
    assert f"copy: digest: {list_digest} size: {len(body)}" in out
    got = requests.get(f"http://{registry.host}/v2/multi2/manifests/copy", headers={"Accept": mt.OCI_INDEX})
    assert got.headers["Docker-Content-Digest"] == list_digest and got.content == body

    # pushed where it is not: only the image the store has
    fresh("tag", f"{registry.host}/multi2:v1", f"{registry.host}/single:v1", check=True)
    out = fresh("push", f"{registry.host}/single:v1", check=True).stdout
    assert f"v1: digest: {digest} size: " in out
    got = requests.get(f"http://{registry.host}/v2/single/manifests/v1",
                       headers={"Accept": f"{mt.OCI_INDEX}, {mt.OCI_MANIFEST}"})
    assert got.headers["Docker-Content-Digest"] == digest

    # the repo digests stay with the image while it has a name; the list goes with its last name
    fresh("rmi", f"{registry.host}/multi2:v1", check=True)
    inspected = json.loads(fresh("inspect", f"{registry.host}/single:v1", check=True).stdout)[0]
    assert f"{registry.host}/multi2@{list_digest}" in inspected["RepoDigests"]
    for name in ("multi2:copy", "single:v1"):
        fresh("rmi", f"{registry.host}/{name}", check=True)
    assert not (fresh.root / "blobs/sha256" / list_digest[7:]).exists()


def _push_for_another_platform(registry, repo, digest, arch, env) -> str:
    """The image `digest` of `repo` again, its config saying `arch` and with ENV `env`, put in `repo` by
    digest (as an image built for that platform would be); returns its manifest digest."""
    base = f"http://{registry.host}/v2/{repo}"
    manifest = requests.get(f"{base}/manifests/{digest}", headers={"Accept": mt.OCI_MANIFEST}).json()
    config = requests.get(f"{base}/blobs/{manifest['config']['digest']}").json()
    config["architecture"] = arch
    config["config"]["Env"] = [*(config["config"].get("Env") or []), env]
    data = json.dumps(config).encode()
    config_digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = requests.post(f"{base}/blobs/uploads/").headers["Location"]
    r = requests.put(location, params={"digest": config_digest}, data=data,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    manifest["config"] = {**manifest["config"], "digest": config_digest, "size": len(data)}
    body = json.dumps(manifest).encode()
    manifest_digest_ = "sha256:" + hashlib.sha256(body).hexdigest()
    r = requests.put(f"{base}/manifests/{manifest_digest_}", data=body, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return manifest_digest_


def test_from_platform_picks_that_platform_from_a_list(registry, pushed, fresh, busybox_tar, tmp_path):
    from builder_support import make_context

    source, digest = pushed
    host = host_platform()
    source("tag", "busybox:latest", f"{registry.host}/plat:host", check=True)
    source("push", f"{registry.host}/plat:host", check=True)
    foreign = _push_for_another_platform(registry, "plat", digest, "s390x", "FOREIGN=s390x")
    _put_list(registry, "plat", "v1", {"linux/s390x": foreign, host.format(): digest})

    def env_of(ref):
        return json.loads(fresh("inspect", ref, check=True).stdout)[0]["Config"]["Env"] or []

    # the store has the host's image under the name: FROM --platform wants the other one, and gets it
    fresh("pull", f"{registry.host}/plat:v1", check=True)
    ctx = make_context(tmp_path / "ctx", f"FROM --platform=linux/s390x {registry.host}/plat:v1\nENV MINE=1\n")
    fresh("build", "-t", "foreign:1", ctx, check=True)
    assert "FOREIGN=s390x" in env_of("foreign:1") and "MINE=1" in env_of("foreign:1")
    assert json.loads(fresh("inspect", "foreign:1", check=True).stdout)[0]["Architecture"] == "s390x"
    # pull --platform too; and a platform the list does not have is refused, naming what it has
    fresh("pull", "--platform", host.format(), f"{registry.host}/plat:v1", check=True)
    assert manifest_digest(fresh, f"{registry.host}/plat:v1") == digest
    fresh("pull", "--platform", "linux/s390x", f"{registry.host}/plat:v1", check=True)
    assert manifest_digest(fresh, f"{registry.host}/plat:v1") == foreign
    bad = make_context(tmp_path / "bad", f"FROM --platform=linux/riscv64 {registry.host}/plat:v1\n")
    proc = fresh("build", bad)
    assert proc.returncode == 1 and "no matching manifest for linux/riscv64" in proc.stderr


def test_run_pulls_a_missing_image_as_docker_does(registry, pushed, fresh):
    ref = f"{registry.host}/busybox"
    never = fresh("run", "--rm", "--network", "none", "--pull", "never", ref, "true")
    assert never.returncode == 125 and never.stderr == f"pydock: error: image not found: {ref}\n"
    run = fresh("run", "--rm", "--network", "none", ref, "echo", "ran", check=True)
    assert run.stdout == "ran\n"  # the pull's lines go to stderr, the container's output alone to stdout
    lines = run.stderr.splitlines()
    assert lines[0] == f"Unable to find image '{ref}:latest' locally"
    assert lines[-1] == f"Status: Downloaded newer image for {ref}:latest"
    assert fresh("images", check=True).stdout.splitlines()[1].split()[:2] == [ref, "latest"]
    again = fresh("run", "--rm", "--network", "none", ref, "true", check=True)
    assert again.stderr == ""  # in the store now: no pull
    always = fresh("create", "--pull", "always", "--network", "none", ref, check=True)
    assert always.stderr.splitlines()[-1] == f"Status: Image is up to date for {ref}:latest"
    fresh("rm", always.stdout.strip(), check=True)


def test_run_of_an_image_no_registry_has_leaves_nothing(registry, fresh):
    before = fresh.snapshot()
    proc = fresh("run", "--network", "none", f"{registry.host}/nosuch:1", "true")
    lines = proc.stderr.splitlines()
    assert proc.returncode == 125 and len(lines) == 2, proc.stderr
    assert lines[0] == f"Unable to find image '{registry.host}/nosuch:1' locally" and lines[1].startswith("pydock: error: ")
    assert {k: v for k, v in fresh.snapshot().items() if k != "containers/"} == before  # (an empty dir: no record)
