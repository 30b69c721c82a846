"""pydock commit -c/--change, -m, -a and --pause against real containers: the Dockerfile instructions
applied on the container's config, the message and author recorded as docker records them."""

from __future__ import annotations

import json

import pytest

from builder_support import Pydock

pytestmark = pytest.mark.root


def image_doc(dock: Pydock, ref: str) -> dict:
    return json.loads(dock("inspect", ref, check=True).stdout)[0]


def test_changes_apply_on_the_containers_config(dock):
    cid = dock("run", "-d", "-e", "A=1", "busybox", "sh", "-c", "echo made > /made; sleep 60",
               check=True).stdout.strip()
    image_id = dock("commit", "-c", "ENV B=2 C=$A", "-c", 'CMD ["cat", "/made"]', "-c", "EXPOSE 8080/udp",
                    "-c", "WORKDIR /tmp", "-c", "LABEL team=blue", "-c", "USER nobody", "-c", "VOLUME /cache",
                    "-m", "my message", "-a", "Jo <jo@example.com>", cid, "changed:1", check=True).stdout.strip()
    doc = image_doc(dock, "changed:1")
    assert doc["Id"] == image_id
    config = doc["Config"]
    assert [e for e in config["Env"] if not e.startswith("PATH=")] == ["A=1", "B=2", "C=1"]
    assert config["Cmd"] == ["cat", "/made"]
    assert config["ExposedPorts"] == {"8080/udp": {}}
    assert (config["WorkingDir"], config["User"]) == ("/tmp", "nobody")
    assert config["Labels"] == {"team": "blue"} and config["Volumes"] == {"/cache": {}}
    assert (doc["Comment"], doc["Author"]) == ("my message", "Jo <jo@example.com>")
    history = dock("history", "--no-trunc", "changed:1", check=True).stdout
    assert "my message" in history.splitlines()[1]  # the newest entry, first
    assert dock("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout == "running\n"  # thawed again
    proc = dock("run", "--rm", "-u", "root", "changed:1")
    assert (proc.returncode, proc.stdout) == (0, "made\n")


def test_entrypoint_change_drops_the_containers_cmd_as_docker_does(dock):
    cid = dock("create", "busybox", "echo", "from-cmd", check=True).stdout.strip()
    dock("commit", "-c", 'ENTRYPOINT ["echo", "from-entrypoint"]', cid, "ep:1", check=True)
    config = image_doc(dock, "ep:1")["Config"]
    assert (config["Entrypoint"], config["Cmd"]) == (["echo", "from-entrypoint"], None)
    assert dock("run", "--rm", "ep:1", check=True).stdout == "from-entrypoint\n"


def test_no_pause_commits_a_running_container_without_freezing_it(dock):
    cid = dock("run", "-d", "busybox", "sh", "-c", "echo live > /live; sleep 60", check=True).stdout.strip()
    dock("commit", "--pause=false", cid, "nopause:1", check=True)
    assert dock("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout == "running\n"
    assert dock("run", "--rm", "nopause:1", "cat", "/live", check=True).stdout == "live\n"


def test_bad_changes_are_refused_and_make_no_image(dock):
    cid = dock("create", "busybox", "true", check=True).stdout.strip()
    before = dock("images", "-q", "--no-trunc").stdout
    for change, words in (("RUN true", "--change: RUN is not supported"),
                          ("FROM busybox", "--change: FROM is not supported"),
                          ("BOGUS x", "unknown instruction: BOGUS"),
                          ("STOPSIGNAL NOPE", "NOPE")):
        proc = dock("commit", "-c", change, cid, "bad:1")
        assert proc.returncode == 125 and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert dock("images", "-q", "--no-trunc").stdout == before


def test_a_missing_working_directory_is_made_at_start(dock):
    """As docker does (a committed WORKDIR, or -w, naming a directory the image lacks)."""
    assert dock("run", "--rm", "-w", "/made/at/start", "busybox", "sh", "-c", "pwd; stat -c %u:%a .",
                check=True).stdout == "/made/at/start\n0:755\n"
    proc = dock("run", "--rm", "-w", "/bin/busybox/below", "busybox", "true")  # a file in the way
    assert proc.returncode == 125 and "not a directory" in proc.stderr
