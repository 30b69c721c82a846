"""oci_runtime.users: an image's users and groups, read inside its root whatever its symlinks say."""

from __future__ import annotations

import os

import pytest

from oci_runtime import users

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "user:x:1000:1000:user:/home/user:/bin/sh\n"
          "# a comment\n"
          "svc:x:2000:2000::/srv:/bin/false\n"
          "broken:x:abc:1::/:/bin/sh\n")
GROUP = "root:x:0:\ntty:x:5:\nwheel:x:10:user,svc\nuser:x:1000:\ndocker:x:999:user\n"


@pytest.fixture
def image(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize("spec, expected", [
    ("", (0, 0, [], "/root")),
    ("user", (1000, 1000, [10, 999], "/home/user")),
    ("1000", (1000, 1000, [10, 999], "/home/user")),
    ("user:wheel", (1000, 10, [], "/home/user")),
    ("user:4", (1000, 4, [], "/home/user")),
    ("4242", (4242, 0, [], "/")),
    ("4242:tty", (4242, 5, [], "/")),
])
def test_lookup_follows_runcs_rules(image, spec, expected):
    found = users.lookup(str(image), spec)
    assert (found.uid, found.gid, found.additional_gids, found.home) == expected


@pytest.mark.parametrize("spec, message", [
    ("ghost", "unable to find user ghost"), ("user:ghosts", "unable to find group ghosts"),
    ("4294967296", "out of range"), ("broken", "malformed passwd entry for broken"),
])
def test_lookup_errors(image, spec, message):
    with pytest.raises(ValueError, match=message):
        users.lookup(str(image), spec)


def test_chown_ids_follow_buildkit(image):
    assert users.chown_ids(str(image), "user") == (1000, 1000)
    assert users.chown_ids(str(image), "1234") == (1234, 1234)
    assert users.chown_ids(str(image), "svc:wheel") == (2000, 10)
    assert users.chown_ids(str(image), "1:77") == (1, 77)
    with pytest.raises(ValueError, match="unable to find group nope"):
        users.chown_ids(str(image), "user:nope")


def test_symlinks_resolve_inside_the_image(image, tmp_path_factory):
    host = tmp_path_factory.mktemp("host") / "passwd"
    host.write_text("user:x:7:7::/host:/bin/sh\n")
    os.unlink(image / "etc" / "passwd")
    (image / "etc" / "passwd").symlink_to(host)  # absolute: means <image>/<host path>, which is absent
    with pytest.raises(ValueError, match="unable to find user user"):
        users.lookup(str(image), "user")
    os.unlink(image / "etc" / "passwd")
    (image / "etc" / "passwd").symlink_to("../../../../../../etc/real")  # climbs no higher than the image
    (image / "etc" / "real").write_text("user:x:3000:3000::/inside:/bin/sh\n")
    assert users.lookup(str(image), "user").uid == 3000
    assert users.home_of(3000, str(image)) == "/inside"
    assert users.home_of(7, str(image)) is None


def test_a_directory_or_fifo_is_no_passwd(image):
    os.unlink(image / "etc" / "passwd")
    os.mkfifo(image / "etc" / "passwd")
    assert users.read_in_root(str(image), "/etc/passwd") is None  # and does not block
    assert users.lookup(str(image), "123").uid == 123
