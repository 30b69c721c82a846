"""pydock run --mount (bind, volume, tmpfs) and --tmpfs against real containers: docker's fields, its
refusals (a --mount bind source must exist), and what the container sees."""

from __future__ import annotations

import json
import os

import pytest


pytestmark = pytest.mark.root


def mount_line(output: str, path: str) -> list[str]:
    return next(f for f in (line.split() for line in output.splitlines()) if len(f) > 3 and f[1] == path)


def test_mount_bind_volume_and_tmpfs(dock, tmp_path):
    (tmp_path / "in").write_text("host file\n")
    cid = dock("run", "-d", "--mount", f"type=bind,source={tmp_path},target=/hostdir,readonly",
               "--mount", "source=mvol,target=/vol", "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
               "busybox", "sh", "-c", "cat /hostdir/in; touch /hostdir/x 2>/dev/null || echo ro; echo v > /vol/f; "
               "stat -c %a /scratch; cat /proc/mounts", check=True).stdout.strip()
    assert dock("wait", cid, check=True).stdout == "0\n"
    out = dock("logs", cid, check=True).stdout
    assert out.splitlines()[:3] == ["host file", "ro", "1770"]
    scratch = mount_line(out, "/scratch")
    assert scratch[2] == "tmpfs" and "size=1024k" in scratch[3] and {"nosuid", "nodev", "noexec"} <= set(scratch[3].split(","))
    doc = json.loads(dock("inspect", cid, check=True).stdout)[0]
    kinds = {m["Destination"]: (m["Type"], m["RW"]) for m in doc["Mounts"]}
    assert kinds == {"/hostdir": ("bind", False), "/vol": ("volume", True), "/scratch": ("tmpfs", True)}
    assert [m["Type"] for m in doc["HostConfig"]["Mounts"]] == ["bind", "volume", "tmpfs"]
    assert dock("run", "--rm", "-v", "mvol:/v", "busybox", "cat", "/v/f", check=True).stdout == "v\n"


def test_tmpfs_flag(dock):
    cid = dock("run", "-d", "--tmpfs", "/run:rw,size=2m,exec", "busybox", "sh", "-c",
               "echo 'echo ran' > /run/s; chmod +x /run/s; /run/s; cat /proc/mounts", check=True).stdout.strip()
    dock("wait", cid, check=True)
    out = dock("logs", cid, check=True).stdout
    assert out.splitlines()[0] == "ran"  # exec given: it wins over the noexec default
    run = mount_line(out, "/run")
    assert run[2] == "tmpfs" and "size=2048k" in run[3] and "noexec" not in run[3].split(",")
    doc = json.loads(dock("inspect", cid, check=True).stdout)[0]
    assert doc["HostConfig"]["Tmpfs"] == {"/run": "rw,size=2m,exec"}
    assert doc["Mounts"] == []  # docker lists --tmpfs only in HostConfig


def test_bad_mounts_are_refused_and_leave_nothing(dock, tmp_path):
    before = (dock("ps", "-aq").stdout, dock("volume", "ls", "-q").stdout)
    for spec, words in ((f"type=bind,source={tmp_path}/missing,target=/x", "bind source path does not exist"),
                        ("type=bind,source=rel,target=/x", "must be absolute"),
                        ("type=volume,source=v1", "Target must not be empty"),
                        ("type=nfs,target=/x", "mount type unknown"),
                        ("type=tmpfs,source=x,target=/x", "source must not be specified"),
                        ("target=/x,colour=red", "invalid field 'colour'")):
        proc = dock("run", "--mount", spec, "busybox", "true")
        assert proc.returncode == 125 and words in proc.stderr and proc.stderr.count("\n") == 1, (spec, proc.stderr)
    proc = dock("run", "--tmpfs", "run", "busybox", "true")
    assert proc.returncode == 125 and "must be absolute" in proc.stderr
    proc = dock("run", "--tmpfs", "/x", "-v", "/x", "busybox", "true")
    assert proc.returncode == 125 and "duplicate mount point" in proc.stderr
    assert (dock("ps", "-aq").stdout, dock("volume", "ls", "-q").stdout) == before


@pytest.fixture
def shared_dir(tmp_path):
    """A tmpfs of the test's own, made a shared mount (as / is on systemd hosts), unmounted at the end with
    whatever reached it."""
    import subprocess

    path = tmp_path / "shared"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "shared-test", str(path)], check=True)
    subprocess.run(["mount", "--make-shared", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-R", "-l", str(path)], check=False)


def host_mounts_under(path) -> list[str]:
    from oci_runtime.mountinfo import mount_points

    return [m for m in mount_points() if m.startswith(f"{path}/")]


@pytest.mark.parametrize("how", ["--mount", "-v"])
def test_rshared_bind_passes_the_containers_mounts_to_the_host(dock, shared_dir, how):
    spec = (f"type=bind,source={shared_dir},target=/data,bind-propagation=rshared" if how == "--mount"
            else f"{shared_dir}:/data:rshared")
    proc = dock("run", "--rm", "--cap-add", "SYS_ADMIN", how, spec, "busybox", "sh", "-c",
                "mkdir /data/in && mount -t tmpfs made-inside /data/in && touch /data/in/file")
    assert proc.returncode == 0, proc.stderr
    assert host_mounts_under(shared_dir) == [f"{shared_dir}/in"]
    assert (shared_dir / "in" / "file").exists()


def test_private_bind_keeps_the_containers_mounts_inside(dock, shared_dir):
    proc = dock("run", "--rm", "--cap-add", "SYS_ADMIN", "-v", f"{shared_dir}:/data", "busybox", "sh", "-c",
                "mkdir /data/in && mount -t tmpfs made-inside /data/in && grep -c ' /data/in ' /proc/mounts")
    assert (proc.returncode, proc.stdout) == (0, "1\n"), proc.stderr
    assert host_mounts_under(shared_dir) == []


def test_rslave_bind_sees_mounts_the_host_makes_later(dock, shared_dir):
    import subprocess

    cid = dock("run", "-d", "--mount", f"type=bind,src={shared_dir},dst=/data,bind-propagation=rslave",
               "busybox", "sleep", "60", check=True).stdout.strip()
    (shared_dir / "late").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "late", str(shared_dir / "late")], check=True)
    (shared_dir / "late" / "seen").write_text("yes\n")
    assert dock("exec", cid, "cat", "/data/late/seen", check=True).stdout == "yes\n"
    doc = json.loads(dock("inspect", cid, check=True).stdout)[0]
    assert doc["Mounts"][0]["Propagation"] == "rslave"
    assert doc["HostConfig"]["Mounts"][0]["BindOptions"] == {"Propagation": "rslave"}


def test_shared_propagation_needs_a_shared_host_mount(dock, tmp_path):
    proc = dock("run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/data,bind-propagation=shared",
                "busybox", "true")
    assert proc.returncode == 125 and "but it is not a shared mount" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1


def test_nocopy_volumes_are_not_filled_from_the_image(dock):
    listing = "ls /usr/sbin | wc -l"
    filled = dock("run", "--rm", "-v", "copied:/usr/sbin", "busybox", "sh", "-c", listing, check=True).stdout
    assert int(filled) > 0
    for args in (["-v", "plain-nocopy:/usr/sbin:nocopy"], ["--mount", "src=mount-nocopy,dst=/usr/sbin,volume-nocopy"]):
        assert dock("run", "--rm", *args, "busybox", "sh", "-c", listing, check=True).stdout == "0\n", args
    doc = json.loads(dock("volume", "inspect", "plain-nocopy", check=True).stdout)[0]
    assert os.listdir(doc["Mountpoint"]) == []


def test_bad_propagation_and_copy_options_are_refused(dock, tmp_path):
    before = (dock("ps", "-aq").stdout, dock("volume", "ls", "-q").stdout)
    for args, words in ((["--mount", f"type=bind,src={tmp_path},dst=/x,bind-propagation=sideways"],
                         "invalid value for bind-propagation: sideways"),
                        (["--mount", "type=volume,src=v,dst=/x,bind-propagation=rshared"],
                         "field BindOptions must not be specified"),
                        (["--mount", f"type=bind,src={tmp_path},dst=/x,volume-nocopy"],
                         "field VolumeOptions must not be specified"),
                        (["-v", f"{tmp_path}:/x:nocopy"], "field VolumeOptions must not be specified"),
                        (["-v", "v:/x:rslave"], "field BindOptions must not be specified"),
                        (["-v", f"{tmp_path}:/x:ro,rw"], "invalid mode: ro,rw"),
                        (["-v", f"{tmp_path}:/x:fast"], "invalid mode: fast")):
        proc = dock("run", *args, "busybox", "true")
        assert proc.returncode == 125 and words in proc.stderr and proc.stderr.count("\n") == 1, (args, proc.stderr)
    assert (dock("ps", "-aq").stdout, dock("volume", "ls", "-q").stdout) == before


def test_volume_modes_combine_as_dockers(dock, tmp_path):
    out = dock("run", "--rm", "-v", f"{tmp_path}:/ro-bind:ro,rprivate,z", "-v", "combo:/vol:ro,nocopy", "busybox",
               "sh", "-c", "touch /ro-bind/x 2>/dev/null || echo bind-ro; touch /vol/x 2>/dev/null || echo vol-ro",
               check=True).stdout
    assert out == "bind-ro\nvol-ro\n"
