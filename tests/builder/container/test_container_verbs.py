"""pydock version, info, container prune, image prune, history and cp, against real containers: docker's
output formats and exit statuses. One image store per module."""

from __future__ import annotations

import json
import os
import re

import pytest

from builder_support import Pydock

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def dock(tmp_path_factory, busybox_tar) -> Pydock:
    p = Pydock(tmp_path_factory.mktemp("container-verbs") / "store")
    p("import", busybox_tar, "busybox:latest", check=True)
    yield p
    for cid in p("ps", "-aq", "--no-trunc").stdout.split():
        p("rm", "-f", cid)


def full_id(dock: Pydock, ref: str) -> str:
    return json.loads(dock("inspect", ref, check=True).stdout)[0]["Id"]


def test_version_and_dash_dash_version(dock):
    proc = dock("version", check=True)
    assert proc.stdout.startswith("Client:\n Version:")
    assert "Server: pydock (daemonless)" in proc.stdout
    assert re.search(r"^ pyrunc:\n  Version: +\d+\.\d+\.\d+$", proc.stdout, re.M)
    assert "API version:       none (daemonless)" in proc.stdout
    short = dock("--version", check=True).stdout
    assert re.fullmatch(r"pydock version \d+\.\d+\.\d+\n", short)
    assert short.split()[-1] in proc.stdout


def info_fields(dock: Pydock) -> dict[str, str]:
    out = dock("info", check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def test_info_counts_containers_and_images(dock):
    before = info_fields(dock)
    running = dock("run", "-d", "busybox", "sleep", "60", check=True).stdout.strip()
    stopped = dock("create", "busybox", "true", check=True).stdout.strip()
    try:
        after = info_fields(dock)
        assert int(after["Containers"]) == int(before["Containers"]) + 2
        assert int(after["Running"]) == int(before["Running"]) + 1
        assert int(after["Stopped"]) == int(before["Stopped"]) + 1
        assert after["Paused"] == before["Paused"]
        assert int(after["Images"]) >= 1
        assert after["Pydock Root Dir"] == os.path.abspath(dock.root)
        assert after["Default Runtime"] == "pyrunc"
        assert after["Cgroup Version"] in ("1", "2")
        assert after["Kernel Version"] == os.uname().release
        assert after["Operating System"]
    finally:
        dock("rm", "-f", running, stopped)


def test_errors_of_the_new_verbs_are_one_line(dock):
    proc = dock("info", "--bogus")
    assert proc.returncode == 1 and proc.stderr.startswith("pydock: error: ") and proc.stderr.count("\n") == 1

