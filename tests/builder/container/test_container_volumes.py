"""pydock volume create/ls/inspect/rm/prune and the volumes containers make (named on first use,
anonymous for `-v /PATH` and the image's VOLUMEs, filled from the image at the first mount, removed by
`rm -v` and `run --rm`), against real containers: docker's output, filters and refusals."""

from __future__ import annotations

import json

import pytest

from builder_support import Pydock

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def dock(dock, tmp_path_factory) -> Pydock:
    """The shared busybox store, plus an image that declares VOLUME /data."""
    ctx = tmp_path_factory.mktemp("volume-image")
    (ctx / "Dockerfile").write_text("FROM busybox\n"
                                    "RUN mkdir /data && echo seeded > /data/seed && chown -R 1000:1000 /data\n"
                                    "VOLUME /data\n")
    dock("build", "-q", "-t", "withvol", ctx, check=True)
    return dock


def names(dock: Pydock, *args: str) -> list[str]:
    return dock("volume", "ls", "-q", *args, check=True).stdout.split()


def test_create_ls_inspect_rm(dock):
    assert dock("volume", "create", "--label", "team=a", "vol-a", check=True).stdout == "vol-a\n"
    assert dock("volume", "create", "vol-a", check=True).stdout == "vol-a\n"  # again: the same volume
    generated = dock("volume", "create", check=True).stdout.strip()
    assert len(generated) == 64
    table = dock("volume", "ls", check=True).stdout.splitlines()
    assert table[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert ["local", "vol-a"] in [line.split() for line in table[1:]]
    assert names(dock, "--filter", "name=vol-") == ["vol-a"]
    assert names(dock, "--filter", "label=team=a") == ["vol-a"]
    assert names(dock, "--filter", "label=team=b") == []
    doc = json.loads(dock("volume", "inspect", "vol-a", check=True).stdout)[0]
    assert doc["Name"] == "vol-a" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"team": "a"} and doc["Options"] == {}
    assert doc["Mountpoint"] == str(dock.root / "volumes" / "vol-a" / "_data")
    assert doc["CreatedAt"].endswith("Z")
    assert dock("volume", "inspect", "-f", "{{.Driver}}:{{.Name}}", "vol-a", check=True).stdout == "local:vol-a\n"
    assert dock("volume", "rm", "vol-a", generated, check=True).stdout.split() == ["vol-a", generated]
    assert "vol-a" not in names(dock)


def test_refusals_are_one_line_and_exit_1(dock):
    for args, words in ((("volume", "create", "-d", "nfs", "x1"), 'plugin "nfs" not found'),
                        (("volume", "create", "/abs"), "invalid volume name"),
                        (("volume", "inspect", "nope"), "No such volume: nope"),
                        (("volume", "rm", "nope"), "no such volume"),
                        (("volume", "ls", "--filter", "colour=red"), "invalid filter"),
                        (("volume", "create", "--name", "a1", "b1"), "conflicting options")):
        proc = dock(*args)
        assert proc.returncode == 1 and words in proc.stderr and proc.stderr.count("\n") == 1, (args, proc.stderr)
    assert dock("volume", "rm", "-f", "nope").returncode == 0
    assert not {"x1", "a1", "b1"} & set(names(dock))  # refused: nothing made


def test_a_volume_in_use_is_not_removed_and_dangling_tells(dock):
    cid = dock("create", "-v", "busy:/x", "busybox", "true", check=True).stdout.strip()
    dock("volume", "create", "idle", check=True)
    assert "busy" not in names(dock, "--filter", "dangling=true")
    assert "idle" in names(dock, "--filter", "dangling=true")
    assert names(dock, "--filter", "dangling=false") == ["busy"]
    proc = dock("volume", "rm", "busy")
    assert proc.returncode == 1 and f"volume is in use - [{cid}]" in proc.stderr
    assert dock("volume", "rm", "-f", "busy").returncode == 1  # -f does not remove a used one either
    proc = dock("volume", "prune", "-af", check=True)
    assert "idle" in proc.stdout and "busy" not in proc.stdout
    assert "busy" in names(dock)
    dock("rm", cid, check=True)
    assert "busy" in names(dock)  # a named volume outlives its container, even with rm -v
    dock("volume", "rm", "busy", check=True)


def test_named_volume_keeps_data_between_containers(dock):
    dock("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f", check=True)
    proc = dock("run", "--rm", "-v", "keep:/data:ro", "busybox", "cat", "/data/f", check=True)
    assert proc.stdout == "kept\n"
    dock("volume", "rm", "keep", check=True)


def test_image_volumes_become_anonymous_volumes_filled_from_the_image(dock):
    before = set(names(dock))
    cid = dock("run", "-d", "withvol", "sh", "-c", "cat /data/seed; stat -c %u:%g /data /data/seed",
               check=True).stdout.strip()
    dock("wait", cid, check=True)
    assert dock("logs", cid, check=True).stdout == "seeded\n1000:1000\n1000:1000\n"
    mounts = json.loads(dock("inspect", cid, check=True).stdout)[0]["Mounts"]
    assert [(m["Type"], m["Destination"], m["RW"]) for m in mounts] == [("volume", "/data", True)]
    anonymous = mounts[0]["Name"]
    assert set(names(dock)) - before == {anonymous} and len(anonymous) == 64
    labels = json.loads(dock("volume", "inspect", anonymous, check=True).stdout)[0]["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    dock("rm", "-v", cid, check=True)
    assert set(names(dock)) == before  # rm -v took it
    # a volume given for the same path replaces the image's, and a non-empty one is not filled again
    dock("run", "--rm", "-v", "mine:/data", "busybox", "sh", "-c", "echo own > /data/own", check=True)
    proc = dock("run", "--rm", "-v", "mine:/data", "withvol", "ls", "/data", check=True)
    assert proc.stdout == "own\n"
    assert set(names(dock)) == before | {"mine"}  # --rm took the anonymous ones (there were none)
    dock("volume", "rm", "mine", check=True)


def test_dash_v_path_and_run_rm_and_prune_of_anonymous_volumes(dock):
    before = set(names(dock))
    dock("run", "--rm", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/x", check=True)
    assert set(names(dock)) == before  # run --rm removes its anonymous volumes, as docker does
    cid = dock("run", "-d", "-v", "/scratch", "busybox", "true", check=True).stdout.strip()
    dock("wait", cid, check=True)
    anonymous = json.loads(dock("inspect", cid, check=True).stdout)[0]["Mounts"][0]["Name"]
    dock("volume", "create", "named-idle", check=True)
    proc = dock("volume", "prune", input="n\n", check=True)
    assert "anonymous local volumes not used by at least one container" in proc.stdout
    assert set(names(dock)) == before | {anonymous, "named-idle"}  # declined
    assert anonymous not in dock("volume", "prune", "-f", check=True).stdout  # still used by the container
    dock("rm", cid, check=True)  # without -v: the anonymous volume stays, unused
    proc = dock("volume", "prune", "-f", check=True)
    assert proc.stdout.startswith(f"Deleted Volumes:\n{anonymous}\n\nTotal reclaimed space: ")
    assert "named-idle" in names(dock)  # without -a named volumes stay
    dock("volume", "prune", "-a", "-f", check=True)
    assert "named-idle" not in names(dock)


def test_a_refused_create_leaves_no_volume(dock):
    dock("create", "--name", "taken-name", "busybox", "true", check=True)
    before = set(names(dock))
    proc = dock("create", "--name", "taken-name", "withvol", "true")
    assert proc.returncode == 125 and "already in use" in proc.stderr
    assert set(names(dock)) == before
    dock("rm", "taken-name", check=True)
