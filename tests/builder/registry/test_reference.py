"""docker's reference grammar and normalisation."""

from __future__ import annotations

import pytest

from builder.errors import BuildError
from builder.registry.reference import parse, parse_repository, registry_host

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,domain,path,tag,digest,familiar", [
    ("busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
    ("library/busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("user/app", "docker.io", "user/app", "latest", None, "user/app:latest"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("localhost:5000/a/b:v1", "localhost:5000", "a/b", "v1", None, "localhost:5000/a/b:v1"),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", None, "127.0.0.1:5000/busybox:latest"),
    ("example.com/x__y/a-b.c", "example.com", "x__y/a-b.c", "latest", None, "example.com/x__y/a-b.c:latest"),
    (f"busybox@{D}", "docker.io", "library/busybox", None, D, f"busybox@{D}"),
    (f"host:1/busybox:t@{D}", "host:1", "busybox", "t", D, f"host:1/busybox:t@{D}"),
    ("Registry.Example.com/app", "Registry.Example.com", "app", "latest", None, "Registry.Example.com/app:latest"),
])
def test_reference_normalisation(text, domain, path, tag, digest, familiar):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.familiar() == familiar
    assert str(ref) == f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def test_store_name_and_ref():
    assert parse("busybox").store_name == "busybox:latest"
    assert parse(f"busybox@{D}").ref == D
    assert parse("a:5/b:c").ref == "c"
    assert parse("busybox", default_tag=False).tag is None


@pytest.mark.parametrize("text,why", [
    ("", "empty"),
    ("Busybox", "must be lowercase"),
    ("docker.io/Library/busybox", "must be lowercase"),
    ("busybox:", "bad tag"),
    ("busybox:-x", "bad tag"),
    ("busybox:" + "a" * 129, "bad tag"),
    ("busybox@sha256:123", "bad digest"),
    ("busybox@sha256:" + "a" * 63, "bad digest"),
    ("a//b", "bad repository name"),
    ("a/b/", "bad repository name"),
    ("-host.com/a", "bad registry host"),
    ("a..b", "bad repository name"),
    (":tag", "empty"),
    ("ab" * 32, "64-byte hexadecimal"),
    ("host.com/" + "a" * 250, "longer than 255"),
])
def test_bad_references_are_refused_clearly(text, why):
    with pytest.raises(BuildError) as e:
        parse(text)
    assert why in str(e.value)
    assert "\n" not in str(e.value)


def test_repository_and_registry_host():
    assert parse_repository("127.0.0.1:5000/x").name == "127.0.0.1:5000/x"
    with pytest.raises(BuildError):
        parse_repository("x:1")
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("http://127.0.0.1:5000") == "127.0.0.1:5000"
    assert registry_host("localhost:5000/") == "localhost:5000"
    with pytest.raises(BuildError):
        registry_host("bad host")
