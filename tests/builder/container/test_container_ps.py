"""pydock ps against real containers: --format (table, table TEMPLATE, json, Go templates with docker's
placeholders), --filter with each of docker's keys, -s, -n and -l, with docker's output, errors and exit
statuses. One store per module, holding four containers made once, oldest first: web (running, labels, a
named volume), done (exited 3 after writing 3 bytes), fresh (created) and child (created, from an image
committed from done)."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.root

NAMES = "{{.Names}}"


@pytest.fixture(scope="module")
def box(dock):
    """The module's containers by name, their full ids as values."""
    ids = {}
    ids["web"] = dock("run", "-d", "--name", "web", "-l", "a=1", "-l", "b=2", "-v", "a-rather-long-volume-name:/data",
                      "busybox", "sleep", "1000", check=True).stdout.strip()
    dock("run", "--name", "done", "busybox", "sh", "-c", "printf hi! > /f; exit 3")
    ids["done"] = full_id(dock, "done")
    ids["fresh"] = dock("create", "--name", "fresh", "busybox", "true", check=True).stdout.strip()
    dock("commit", "done", "derived:1", check=True)
    ids["child"] = dock("create", "--name", "child", "derived:1", "true", check=True).stdout.strip()
    return ids


def full_id(dock, ref: str) -> str:
    return json.loads(dock("inspect", ref, check=True).stdout)[0]["Id"]


def names(dock, *args) -> list[str]:
    proc = dock("ps", "--format", NAMES, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def columns(line: str) -> list[str]:
    return re.split(r" {3,}", line.strip())


def test_the_default_table_is_unchanged(dock, box):
    lines = dock("ps", check=True).stdout.splitlines()
    assert columns(lines[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 2
    assert columns(lines[1])[:3] == [box["web"][:12], "busybox", '"sleep 1000"']
    assert re.fullmatch(r"Up .+", columns(lines[1])[4]) and columns(lines[1])[-1] == "web"
    assert dock("ps", "--format", "table", check=True).stdout == dock("ps", check=True).stdout


def test_go_template_placeholders(dock, box):
    fmt = "{{.Names}}|{{.State}}|{{.Label \"a\"}}|{{.Labels}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Networks}}|{{.Image}}"
    out = dock("ps", "-a", "--format", fmt, check=True).stdout.splitlines()
    assert out == ["child|created||||0|bridge|derived:1",
                   "fresh|created||||0|bridge|busybox",
                   "done|exited||||0|bridge|busybox",
                   "web|running|1|a=1,b=2|a-rather-long-…|1|bridge|busybox"]
    long = dock("ps", "--no-trunc", "--format", "{{.ID}} {{.Mounts}} {{.Command}}", check=True).stdout
    assert long == f'{box["web"]} a-rather-long-volume-name "sleep 1000"\n'
    line = dock("ps", "-a", "-f", "name=done", "--format", "{{.ID}}\t{{.Command}}\t{{.Status}}\t{{.RunningFor}}",
                check=True).stdout
    ident, command, status, running_for = line.rstrip("\n").split("\t")
    assert ident == box["done"][:12] and command == '"sh -c printf hi! > …"'  # 20 characters at most, quoted
    assert re.fullmatch(r"Exited \(3\) .+ ago", status) and running_for.endswith(" ago")
    created = dock("ps", "--format", "{{.CreatedAt}}", check=True).stdout.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", created)  # Go's time.Time.String()


def test_table_templates_have_docker_headers(dock, box):
    lines = dock("ps", "-a", "--format", "table {{.Names}}\\t{{.State}}\\t{{.LocalVolumes}}\\t{{.Networks}}"
                 "\\t{{.CreatedAt}}\\t{{.Labels}}\\t{{.Mounts}}\\t{{.Size}}", check=True).stdout.splitlines()
    assert columns(lines[0]) == ["NAMES", "STATE", "LOCAL VOLUMES", "NETWORKS", "CREATED AT", "LABELS", "MOUNTS",
                                 "SIZE"]
    assert [columns(line)[0] for line in lines[1:]] == ["child", "fresh", "done", "web"]
    # .Label "k" has no header: docker's header row ends where it stands
    lines = dock("ps", "--format", "table {{.Names}}\\t{{.Label \"a\"}}\\t{{.State}}", check=True).stdout.splitlines()
    assert lines[0].rstrip() == "NAMES" and columns(lines[1]) == ["web", "1", "running"]


def test_json_is_one_object_a_line_with_every_field(dock, box):
    lines = dock("ps", "-a", "--format", "json", check=True).stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["Names"] for d in docs] == ["child", "fresh", "done", "web"]
    assert set(docs[0]) == {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names",
                            "Networks", "Ports", "RunningFor", "Size", "State", "Status"}
    web = docs[3]
    assert web["ID"] == box["web"][:12] and web["Labels"] == "a=1,b=2" and web["State"] == "running"
    assert web["Command"] == '"sleep 1000"' and web["Size"] == "0B"  # no sizes without -s
    assert docs[2]["Command"] == '"sh -c printf hi! > …"'  # as docker's encoder: no \u escapes


def test_quiet_wins_over_format(dock, box):
    assert dock("ps", "-q", "--format", "{{.Names}}", check=True).stdout == box["web"][:12] + "\n"
    assert dock("ps", "-q", "--format", "json", check=True).stdout == box["web"][:12] + "\n"
    assert dock("ps", "-q", "--no-trunc", "--format", "table {{.Names}}", check=True).stdout == box["web"] + "\n"


def test_bad_templates_are_refused(dock, box):
    proc = dock("ps", "--format", "{{.Names")
    assert proc.returncode == 125 and proc.stdout == ""
    assert proc.stderr == "pydock: error: template parsing error: template: :1: unclosed action\n"
    proc = dock("ps", "-q", "--format", "{{.Names")
    assert proc.returncode == 125 and proc.stdout == ""


def test_size_shows_what_the_container_wrote_and_its_virtual_size(dock, box):
    lines = dock("ps", "-a", "-s", check=True).stdout.splitlines()
    assert columns(lines[0])[-1] == "SIZE" and columns(lines[0])[-2] == "NAMES"
    sizes = {columns(line)[-2]: columns(line)[-1] for line in lines[1:]}
    virtual = re.fullmatch(r"0B \(virtual ([\d.]+[kM]B)\)", sizes["web"]).group(1)
    assert sizes["fresh"] == f"0B (virtual {virtual})"  # never started: nothing written
    assert re.fullmatch(r"3B \(virtual [\d.]+[kM]B\)", sizes["done"])  # /f holds "hi!"
    # a template that shows .Size gets sizes without -s, as docker's
    assert dock("ps", "-a", "-f", "name=done", "--format", "{{.Size}}", check=True).stdout == sizes["done"] + "\n"


def test_last_and_latest_include_every_state(dock, box):
    assert names(dock, "-n", "2") == ["child", "fresh"]
    assert names(dock, "--last", "3") == ["child", "fresh", "done"]
    assert names(dock, "-l") == ["child"]
    assert names(dock, "--latest", "-n", "2") == ["child", "fresh"]  # -n says how many
    assert names(dock, "-n", "0") == ["web"]  # no limit: running ones
    assert names(dock, "-n", "1", "-f", "status=exited") == ["done"]  # counted after the filters
    proc = dock("ps", "-n", "two")
    assert proc.returncode == 125 and proc.stdout == "" and "invalid int value: 'two'" in proc.stderr


def test_filters_by_id_name_and_label(dock, box):
    assert names(dock, "-a", "-f", f"id={box['done'][:5]}") == ["done"]
    assert names(dock, "-a", "-f", f"id={box['done']}", "-f", f"id={box['web'][:12]}") == ["done", "web"]
    assert names(dock, "-a", "-f", "name=e") == ["fresh", "done", "web"]  # a substring
    assert names(dock, "-a", "-f", "name=^d") == ["done"]  # a regular expression
    assert names(dock, "-a", "-f", "name=/web") == ["web"]  # with docker's leading slash
    assert names(dock, "-a", "-f", "name=web", "-f", "name=fresh") == ["fresh", "web"]  # one key: OR
    assert names(dock, "-a", "-f", "name=e", "-f", f"id={box['web'][:6]}") == ["web"]  # two keys: AND
    assert names(dock, "-f", "label=a") == ["web"]
    assert names(dock, "-f", "label=a=1") == ["web"]
    assert names(dock, "-f", "label=a=2") == []
    assert names(dock, "-f", "label=a", "-f", "label=b=2") == ["web"]  # labels: each must hold, as docker's
    assert names(dock, "-f", "label=a", "-f", "label=c") == []


def test_status_lists_stopped_containers_without_a_and_exited_needs_it(dock, box):
    assert names(dock, "-f", "status=exited") == ["done"]
    assert names(dock, "-f", "status=created") == ["child", "fresh"]
    assert names(dock, "-f", "status=running") == ["web"]
    assert names(dock, "-f", "status=created", "-f", "status=running") == ["child", "fresh", "web"]
    assert names(dock, "-f", "status=paused") == []
    assert names(dock, "-f", "exited=3") == []  # docker: exited= is "only useful with --all"
    assert names(dock, "-a", "-f", "exited=3") == ["done"]
    assert names(dock, "-a", "-f", "exited=0") == []  # never-started ones have no exit code
    assert names(dock, "-a", "-f", "exited=0", "-f", "exited=3") == ["done"]
    assert names(dock, "-n", "5", "-f", "exited=3") == ["done"]  # -n lists every state


def test_ancestor_before_and_since(dock, box):
    assert names(dock, "-a", "-f", "ancestor=busybox") == ["child", "fresh", "done", "web"]  # child: made from it
    assert names(dock, "-a", "-f", "ancestor=derived:1") == ["child"]
    image = json.loads(dock("inspect", "derived:1", check=True).stdout)[0]["Id"]
    assert names(dock, "-a", "-f", f"ancestor={image.split(':')[1][:10]}") == ["child"]
    assert names(dock, "-a", "-f", "ancestor=no-such-image") == []  # docker lists nothing, no error
    assert names(dock, "-a", "-f", "before=fresh") == ["done", "web"]
    assert names(dock, "-a", "-f", f"since={box['done'][:12]}") == ["child", "fresh"]
    assert names(dock, "-a", "-f", "since=web", "-f", "before=child") == ["fresh", "done"]
    assert names(dock, "-f", "before=child") == ["web"]  # without -a: running ones
    proc = dock("ps", "-f", "since=nobody")
    assert proc.returncode == 125 and proc.stdout == "" and proc.stderr == "pydock: error: No such container: nobody\n"


def test_volume_network_health_and_isolation(dock, box):
    assert names(dock, "-a", "-f", "volume=a-rather-long-volume-name") == ["web"]
    assert names(dock, "-a", "-f", "volume=/data") == ["web"]  # the mount's destination
    assert names(dock, "-a", "-f", "volume=/elsewhere") == []
    assert names(dock, "-a", "-f", "network=bridge") == ["child", "fresh", "done", "web"]
    net_id = json.loads(dock("network", "inspect", "bridge", check=True).stdout)[0]["Id"]
    assert names(dock, "-f", f"network={net_id[:8]}") == ["web"]
    assert names(dock, "-a", "-f", "network=host") == []
    assert names(dock, "-f", "health=none") == ["web"]  # no health checks run: every container has none
    assert names(dock, "-f", "health=healthy") == []
    assert names(dock, "-f", "isolation=default") == ["web"]  # Windows' filter: ignored on Linux, as docker


def test_publish_and_expose(dock, box):
    cid = dock("run", "-d", "-p", "8080:80", "-p", "9000-9001:9000-9001/udp", "--expose", "7000", "busybox",
               "sleep", "1000", check=True).stdout.strip()
    try:
        short = [cid[:12]]
        assert dock("ps", "-q", "-f", "publish=8080").stdout.split() == short
        assert dock("ps", "-q", "-f", "publish=8080/tcp").stdout.split() == short
        assert dock("ps", "-q", "-f", "publish=80").stdout.split() == []  # that is the container's side
        assert dock("ps", "-q", "-f", "expose=80").stdout.split() == short
        assert dock("ps", "-q", "-f", "expose=6990-7010").stdout.split() == short
        assert dock("ps", "-q", "-f", "publish=9001").stdout.split() == []  # tcp, and 9001 is udp
        assert dock("ps", "-q", "-f", "publish=9001/udp").stdout.split() == short
        proc = dock("ps", "-f", "publish=127.0.0.1:8080")
        assert proc.returncode == 125 and proc.stdout == ""
        assert proc.stderr == "pydock: error: filter for 'publish' should not contain ':': 127.0.0.1:8080\n"
    finally:
        dock("rm", "-f", cid)


@pytest.mark.parametrize("flag, error", [
    ("foo=bar", "invalid filter 'foo'"),
    ("foo", 'invalid argument "foo" for "-f, --filter" flag: bad format of filter (expected name=value)'),
    ("status=sleeping", "invalid filter 'status=sleeping'"),
    ("exited=three", "invalid filter 'exited=three'"),
    ("health=fine", "Unrecognised filter value for health: fine"),
    ("expose=80-70", "error while looking up for expose 80-70: invalid port range '80-70'"),
])
def test_bad_filters_are_refused_with_nothing_printed(dock, box, flag, error):
    proc = dock("ps", "-a", "-f", "name=web", "-f", flag)
    assert (proc.returncode, proc.stdout, proc.stderr) == (125, "", f"pydock: error: {error}\n")


def test_image_column_as_docker_shortens_it(dock, box):
    image_id = json.loads(dock("inspect", "busybox", check=True).stdout)[0]["Id"]
    made = [dock("create", "--name", name, ref, "true", check=True).stdout.strip()
            for name, ref in (("by-id", image_id), ("by-prefix", image_id[7:17]), ("by-full-name", "docker.io/library/busybox:latest"))]
    try:
        fmt = "{{.Names}} {{.Image}}"
        assert dock("ps", "-a", "-f", "name=^by-", "--format", fmt, check=True).stdout.splitlines() == [
            "by-full-name busybox:latest", f"by-prefix {image_id[7:17]}", f"by-id {image_id[7:19]}"]  # as typed
        assert dock("ps", "-a", "--no-trunc", "-f", "name=^by-", "--format", fmt, check=True).stdout.splitlines() == [
            "by-full-name docker.io/library/busybox:latest", f"by-prefix {image_id[7:17]}", f"by-id {image_id}"]
    finally:
        dock("rm", *made)
