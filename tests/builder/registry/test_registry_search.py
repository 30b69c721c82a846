"""pydock search against a search API answering as Docker Hub's /v1/search does (served on loopback: Hub
itself is out of reach here; the catalog fallback is tested against the real registry in
test_pull_push.py): docker's columns, truncation, --limit, --filter, --no-trunc, --format."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from registry_support import Client, free_port, one_line_error

REPOSITORIES = [
    {"name": "redis", "description": "Redis is the world's fastest data platform for caching, vector search, "
                                     "and NoSQL databases.", "star_count": 13000, "is_official": True,
     "is_automated": False},
    {"name": "bitnami/redis", "description": "Bitnami container image\nfor Redis", "star_count": 330,
     "is_official": False, "is_automated": True},
    {"name": "someone/redis-tools", "description": "", "star_count": 2, "is_official": False,
     "is_automated": False},
    {"name": "busybox", "description": "Busybox base image.", "star_count": 3300, "is_official": True,
     "is_automated": False},
]


class SearchIndex:
    """GET /v1/search?q=TERM&n=LIMIT as Hub answers it; `queries` keeps every (q, n) asked."""

    def __init__(self):
        self.queries: list[tuple[str, str]] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                if url.path != "/v1/search":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                q = parse_qs(url.query)
                term, n = q.get("q", [""])[0], q.get("n", ["25"])[0]
                index.queries.append((term, n))
                hits = [r for r in REPOSITORIES if term in r["name"]][:int(n)]
                body = json.dumps({"num_pages": 1, "num_results": len(hits), "page_size": int(n), "page": 1,
                                   "query": term, "results": hits}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.host = f"127.0.0.1:{free_port()}"
        self.server = ThreadingHTTPServer(("127.0.0.1", int(self.host.split(":")[1])), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def index():
    i = SearchIndex()
    yield i
    i.stop()


@pytest.fixture
def client(tmp_path):
    return Client(tmp_path / "store", tmp_path / "docker")


def test_search_api_table(index, client):
    out = client("search", f"{index.host}/redis", check=True).stdout.splitlines()
    assert index.queries[-1] == ("redis", "25")
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    assert [line.split()[0] for line in out[1:]] == ["redis", "bitnami/redis", "someone/redis-tools"]
    first = out[1]
    assert "Redis is the world's fastest data platform f…" in first  # 45 characters, as docker cuts
    assert first.split()[-2:] == ["13000", "[OK]"]
    assert out[2].split()[-2:] == ["330", "[OK]"]
    assert "Bitnami container image for Redis" in out[2]  # newlines become spaces
    assert out[3].split() == ["someone/redis-tools", "2"]
    # columns line up: every row's STARS starts under the header's
    column = out[0].index("STARS")
    assert all(line[column - 1] == " " and line[column] != " " for line in out[1:])


def test_search_api_options(index, client):
    names = lambda *args: [line.split()[0] for line in client("search", *args, check=True).stdout.splitlines()[1:]]
    assert names("--limit", "2", f"{index.host}/redis") == ["redis", "bitnami/redis"]
    assert index.queries[-1] == ("redis", "2")
    assert names("--filter", "stars=100", f"{index.host}/redis") == ["redis", "bitnami/redis"]
    assert names("--filter", "is-official=true", f"{index.host}/redis") == ["redis"]
    assert names("-f", "is-official=false", "-f", "is-automated=true", f"{index.host}/redis") == ["bitnami/redis"]
    assert names("--filter", "stars=100000", f"{index.host}/redis") == []
    out = client("search", "--no-trunc", f"{index.host}/redis", check=True).stdout
    assert REPOSITORIES[0]["description"] in out
    out = client("search", "--format", "{{.Name}}: {{.StarCount}} {{.IsOfficial}}", f"{index.host}/r",
                 check=True).stdout
    assert out.splitlines() == ["redis: 13000 [OK]", "bitnami/redis: 330 ", "someone/redis-tools: 2 "]
    out = client("search", "--format", "table {{.Name}}\\t{{.StarCount}}", f"{index.host}/busy",
                 check=True).stdout.splitlines()
    assert [line.split() for line in out] == [["NAME", "STARS"], ["busybox", "3300"]]


@pytest.mark.parametrize("args, message", [
    (["--filter", "color=red"], "invalid filter 'color'"),
    (["--filter", "stars=many"], "invalid filter 'stars=many'"),
    (["--filter", "is-official=maybe"], "invalid filter 'is-official=maybe'"),
    (["--limit", "0"], "limit 0 is outside the range of [1, 100]"),
    (["--limit", "101"], "limit 101 is outside the range of [1, 100]"),
])
def test_search_refuses_bad_options(index, client, args, message):
    asked = len(index.queries)
    assert message in one_line_error(client("search", *args, f"{index.host}/redis"))
    assert len(index.queries) == asked


def test_search_term_names_the_registry():
    from builder.registry.reference import split_search_term

    assert split_search_term("busybox") == ("docker.io", "busybox")
    assert split_search_term("library/busybox") == ("docker.io", "busybox")
    assert split_search_term("bitnami/redis") == ("docker.io", "bitnami/redis")
    assert split_search_term("index.docker.io/redis") == ("docker.io", "redis")
    assert split_search_term("localhost/x") == ("localhost", "x")
    assert split_search_term("127.0.0.1:5000/busy") == ("127.0.0.1:5000", "busy")
