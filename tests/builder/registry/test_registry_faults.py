"""Faults of a real registry: its process killed in the middle of a pull and of a push (a one-line error,
the store as it was but for the start of a blob kept for the next pull, which goes on from it once the
registry is back), and a manifest over the 4 MiB limit docker and containerd put on them (refused
before it is read, nothing stored)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import pytest

from builder.image import mediatypes as mt
from registry_support import Client, Registry, free_port, one_line_error

BIG = 8 << 20  # the random layer: long enough at RATE to kill the registry in the middle of it
RATE = 2 << 20  # bytes per second through the relay, each way


class SlowRelay:
    """A TCP relay to the registry at RATE bytes/s each way that calls `when_passed()` once
    `threshold` bytes have gone through it in one direction (then: the registry is killed mid-transfer)."""

    def __init__(self, upstream_port: int, threshold: int, when_passed):
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.upstream_port = upstream_port
        self.threshold, self.when_passed = threshold, when_passed
        self.passed = {"up": 0, "down": 0}
        self.fired = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()  # the registry is gone: the client sees its connection closed
                continue
            threading.Thread(target=self._pump, args=(client, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "down"), daemon=True).start()

    def _pump(self, source, dest, direction):
        try:
            while data := source.recv(64 << 10):
                dest.sendall(data)
                with self.lock:
                    self.passed[direction] += len(data)
                    due = self.passed[direction] >= self.threshold and not self.fired.is_set()
                    if due:
                        self.fired.set()
                if due:
                    self.when_passed()
                time.sleep(len(data) / RATE)
        except OSError:
            pass
        finally:
            for s in (source, dest):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self):
        self.listener.close()


def _killer(registry: Registry):
    def kill():
        os.kill(registry.proc.pid, signal.SIGKILL)
        registry.proc.wait()
    return kill


def _big_image(client: Client, tmp_path, name: str) -> None:
    """An image of busybox and one layer of BIG random bytes, built by pydock."""
    from builder_support import make_context

    ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY random.bin /random.bin\n",
                       {"random.bin": os.urandom(BIG)})
    client("build", "-q", "-t", name, ctx, check=True)


def _without_partial(snapshot: dict) -> dict:
    return {path: v for path, v in snapshot.items() if not path.startswith("partial/")}


def test_registry_killed_mid_pull_then_the_next_pull_goes_on(tmp_path, busybox_tar):
    registry = Registry(tmp_path / "registry")
    source = Client(tmp_path / "source", tmp_path / "docker")
    source("import", busybox_tar, "busybox:latest", check=True)
    _big_image(source, tmp_path, f"{registry.host}/big:v1")
    source("push", f"{registry.host}/big:v1", check=True)
    relay = SlowRelay(registry.port, BIG // 4, _killer(registry))
    try:
        fresh = Client(tmp_path / "fresh", tmp_path / "docker")
        fresh("images", check=True)
        before = fresh.snapshot()
        ref = f"127.0.0.1:{relay.port}/big:v1"
        line = one_line_error(fresh("pull", ref))
        assert relay.fired.is_set() and registry.proc.returncode == -signal.SIGKILL
        assert "failed after" in line and "kept for the next pull" in line, line
        after = fresh.snapshot()
        assert _without_partial(after) == _without_partial(before)  # no image, no blob, no name
        kept = [size for path, (size,) in ((p, v) for p, v in after.items() if v) if path.startswith("partial/")]
        assert kept and 0 < max(kept) < BIG  # the start of the layer, for the next pull
        assert "big" not in fresh("images", check=True).stdout

        back = Registry(tmp_path / "registry-again", storage=registry.storage)
        try:
            fresh("pull", f"{back.host}/big:v1", check=True)
            run = fresh("run", "--rm", "--network", "none", f"{back.host}/big:v1", "wc", "-c", "/random.bin",
                        check=True)
            assert run.stdout.split()[0] == str(BIG)
            assert not any(p.startswith("partial/") and v for p, v in fresh.snapshot().items())
        finally:
            back.stop()
    finally:
        relay.stop()
        registry.stop()


def test_registry_killed_mid_push_is_a_clear_error_and_the_store_is_unchanged(tmp_path, busybox_tar):
    registry = Registry(tmp_path / "registry")
    other = Registry(tmp_path / "other")
    relay = SlowRelay(registry.port, BIG // 4, _killer(registry))
    try:
        client = Client(tmp_path / "store", tmp_path / "docker")
        client("import", busybox_tar, "busybox:latest", check=True)
        _big_image(client, tmp_path, "big:v1")
        # pushed once elsewhere first: what a push may keep (the layers' gzip forms) is there before
        client("tag", "big:v1", f"{other.host}/big:v1", check=True)
        client("push", f"{other.host}/big:v1", check=True)
        ref = f"127.0.0.1:{relay.port}/big:v1"
        client("tag", "big:v1", ref, check=True)
        before = client.snapshot()
        line = one_line_error(client("push", ref))
        assert relay.fired.is_set() and registry.proc.returncode == -signal.SIGKILL
        assert f"127.0.0.1:{relay.port}" in line, line
        assert client.snapshot() == before
    finally:
        relay.stop()
        registry.stop()
        other.stop()


class HugeManifestServer:
    """A registry that serves a 5 MiB manifest for every tag, with its Content-Length or without one (the
    body then ends when the connection closes). Distribution itself refuses to store or serve one (it has
    the same 4 MiB cap), so a registry that does is a broken or hostile one, played here."""

    def __init__(self, say_length: bool):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "annotations": {"padding": "x" * (5 << 20)},
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "0" * 64, "size": 2},
                           "layers": []}).encode()
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                if "/manifests/" not in self.path:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_header("Content-Type", mt.OCI_MANIFEST)
                if say_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(0, len(body), 1 << 16):
                        self.wfile.write(body[i:i + (1 << 16)])
                        server.sent += min(1 << 16, len(body) - i)
                except OSError:
                    pass  # the client stopped reading

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("say_length", [True, False], ids=["content-length", "until-close"])
def test_a_manifest_over_4_mib_is_refused(tmp_path, say_length):
    server = HugeManifestServer(say_length)
    try:
        fresh = Client(tmp_path / "fresh", tmp_path / "docker")
        fresh("images", check=True)
        before = fresh.snapshot()
        line = one_line_error(fresh("pull", f"{server.host}/huge:big"))
        assert f"manifest for {server.host}/huge:big is " in line and "over the 4 MiB limit on manifests" in line
        assert fresh.snapshot() == before
    finally:
        server.stop()
