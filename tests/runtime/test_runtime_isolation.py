"""What a process inside a pyrunc container sees: namespaces, mounts, devices, paths, hostname, sysctl."""

from __future__ import annotations

import os
import subprocess

import pytest

from support import userns_edit

pytestmark = pytest.mark.root


def run_in(make_bundle, pyrunc, script: str, edit=None, cid="iso", readonly=False):
    bundle = make_bundle(["sh", "-c", script], edit=edit, readonly=readonly)
    return pyrunc("run", "--bundle", bundle, cid)


def test_new_namespaces_differ_from_host(make_bundle, pyrunc):
    def add_all(spec):
        spec["linux"]["namespaces"] += [{"type": "cgroup"}]

    out = run_in(make_bundle, pyrunc, "for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; "
                 "echo pid=$$", edit=add_all)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    for line in lines[:-1]:
        kind = line.split(":")[0]
        assert line != os.readlink(f"/proc/self/ns/{kind}"), kind
    assert lines[-1] == "pid=1"


def test_loopback_up_in_new_netns(make_bundle, pyrunc):
    out = run_in(make_bundle, pyrunc, "cat /sys/class/net/lo/operstate; ls /sys/class/net")
    assert out.returncode == 0, out.stderr
    state, *ifaces = out.stdout.split()
    assert state == "unknown" and ifaces == ["lo"]  # lo is up (operstate "unknown" when up), nothing else


def test_join_namespace_by_path(make_bundle, pyrunc):
    holder = subprocess.Popen(["unshare", "--uts", "sh", "-c", "hostname joined-uts; exec sleep 100"])
    try:
        import time
        for _ in range(100):
            if os.readlink(f"/proc/{holder.pid}/ns/uts") != os.readlink("/proc/self/ns/uts"):
                break
            time.sleep(0.02)
        time.sleep(0.1)

        def join(spec):
            spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "uts"]
            spec["linux"]["namespaces"].append({"type": "uts", "path": f"/proc/{holder.pid}/ns/uts"})
            spec.pop("hostname")

        out = run_in(make_bundle, pyrunc, "hostname; readlink /proc/self/ns/uts", edit=join)
        assert out.returncode == 0, out.stderr
        name, ns = out.stdout.split()
        assert name == "joined-uts" and ns == os.readlink(f"/proc/{holder.pid}/ns/uts")
    finally:
        holder.kill()
        holder.wait()


def test_user_namespace_mappings(make_bundle, pyrunc, rootfs):
    userns = userns_edit(rootfs, 100000)
    out = run_in(make_bundle, pyrunc, "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/x && "
                 "stat -c %u /tmp/x", edit=userns)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:3] == ["0", "100000", "65536"] and words[3:6] == ["0", "100000", "65536"]
    assert words[6] == "0" and words[7] == "0"
    assert os.stat(rootfs / "tmp" / "x").st_uid == 100000  # the host sees the mapped id


def test_hostname_and_domainname(make_bundle, pyrunc):
    def names(spec):
        spec["hostname"] = "box"
        spec["domainname"] = "example.test"

    out = run_in(make_bundle, pyrunc, "hostname; cat /proc/sys/kernel/domainname", edit=names)
    assert out.stdout.split() == ["box", "example.test"], out.stderr


def test_sysctl(make_bundle, pyrunc):
    def sysctl(spec):
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}

    out = run_in(make_bundle, pyrunc, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax", edit=sysctl)
    assert out.stdout.split() == ["1", "123456789"], out.stderr


def test_default_devices_and_symlinks(make_bundle, pyrunc):
    out = run_in(make_bundle, pyrunc, "for d in null zero full random urandom tty; do stat -c '%n %t:%T %a %F' "
                 "/dev/$d; done; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; "
                 "echo x > /dev/null && head -c 4 /dev/zero | od -An -tx1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "/dev/null 1:3 666 character special file"
    assert lines[5] == "/dev/tty 5:0 666 character special file"
    assert lines[6:11] == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"]
    assert lines[11].split() == ["00", "00", "00", "00"]


def test_linux_devices(make_bundle, pyrunc):
    def devices(spec):
        spec["linux"]["devices"] = [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 7, "gid": 8},
            {"path": "/dev/sub/loopx", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600},
            {"path": "/dev/myfifo", "type": "p"},
        ]

    out = run_in(make_bundle, pyrunc, "stat -c '%n %t:%T %a %u:%g %F' /dev/fuse /dev/sub/loopx /dev/myfifo",
                 edit=devices)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "/dev/fuse a:e5 640 7:8 character special file"
    assert lines[1] == "/dev/sub/loopx 7:c8 600 0:0 block special file"
    assert lines[2].endswith("fifo")


def test_masked_and_readonly_paths(make_bundle, pyrunc):
    out = run_in(make_bundle, pyrunc, "cat /proc/kcore | wc -c; ls /proc/acpi | wc -l; "
                 "echo 1 > /proc/sys/kernel/ns_last_pid && echo wrote || echo refused; "
                 "grep ' /proc/sys ' /proc/self/mounts")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].strip() == "0" and lines[1].strip() == "0" and lines[2] == "refused"
    assert " ro," in lines[3]


def test_root_readonly(make_bundle, pyrunc):
    out = run_in(make_bundle, pyrunc, "touch /x 2>&1; grep ' / ' /proc/self/mounts; touch /dev/shm/ok && echo ok",
                 readonly=True)
    assert "Read-only file system" in out.stdout
    assert " ro," in out.stdout.splitlines()[1]
    assert out.stdout.splitlines()[-1] == "ok"  # mounts on top stay writable


def test_mounts_bind_tmpfs_options(make_bundle, pyrunc, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from host\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")

    def mounts(spec):
        spec["mounts"] += [
            {"destination": "/data", "type": "bind", "source": str(shared), "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/deep/new/dir/file.txt", "type": "bind", "source": str(single), "options": ["bind"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["noexec", "nodev", "size=1m", "mode=700", "strictatime"]},
            {"destination": "/rw", "type": "none", "source": str(shared), "options": ["bind", "rw"]},
        ]

    out = run_in(make_bundle, pyrunc, "cat /data/hello /deep/new/dir/file.txt; touch /data/x 2>&1; "
                 "stat -c %a /scratch; grep -E ' /(data|scratch) ' /proc/self/mounts; echo new > /rw/written",
                 edit=mounts)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "from host\none file\n" in text and "Read-only file system" in text
    assert "\n700\n" in text
    data_line = next(line for line in text.splitlines() if " /data " in line)
    assert " ro," in data_line and "nosuid" in data_line
    scratch_line = next(line for line in text.splitlines() if " /scratch " in line)
    assert "noexec" in scratch_line and "nodev" in scratch_line and "size=1024k" in scratch_line
    assert (shared / "written").read_text() == "new\n"
    assert not (shared / "x").exists()


def test_symlink_in_rootfs_cannot_redirect_mount_to_host(make_bundle, pyrunc, rootfs, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (rootfs / "evil").symlink_to(str(victim))           # absolute symlink out of the rootfs
    (rootfs / "evil2").symlink_to("../../../../../../" + str(victim).lstrip("/"))

    def mounts(spec):
        spec["mounts"] += [
            {"destination": "/evil/m", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/evil2/m", "type": "tmpfs", "source": "tmpfs"},
        ]

    out = run_in(make_bundle, pyrunc, "grep -c ' /tmp/' /proc/self/mounts; ls -d /tmp/*/m 2>/dev/null | wc -l",
                 edit=mounts)
    assert out.returncode == 0, out.stderr
    assert not (victim / "m").exists()  # nothing was created or mounted on the host
    assert list(victim.iterdir()) == []
    # the mounts landed inside the rootfs, where the symlinks resolve when the rootfs is "/"
    assert (rootfs / str(victim).lstrip("/") / "m").is_dir()


def test_proc_on_symlink_refused(make_bundle, pyrunc, rootfs, state_root):
    os.rmdir(rootfs / "proc")
    (rootfs / "proc").symlink_to("/tmp")
    bundle = make_bundle(["true"])
    out = pyrunc("run", "--bundle", bundle, "procsym")
    assert out.returncode != 0 and "symlink" in out.stderr
    assert os.listdir(state_root) == []


@pytest.mark.parametrize("propagation, tag", [("private", None), ("rprivate", None), ("slave", None),
                                               ("shared", "shared:"), ("unbindable", "unbindable")])
def test_rootfs_propagation(make_bundle, pyrunc, propagation, tag):
    def prop(spec):
        spec["linux"]["rootfsPropagation"] = propagation

    out = run_in(make_bundle, pyrunc, "awk '$5 == \"/\"' /proc/self/mountinfo", edit=prop)
    assert out.returncode == 0, out.stderr
    fields = out.stdout.split(" - ")[0].split()[6:]  # the optional fields: shared:N, master:N, unbindable
    if tag is None:  # (a slave of a private host root has no master to show)
        assert fields == []
    else:
        assert any(f.startswith(tag) for f in fields), out.stdout


@pytest.mark.parametrize("propagation, reaches_host", [("rshared", True), (None, False), ("rslave", False),
                                                     ("private", False)])
def test_mounts_made_under_a_shared_bind_reach_the_host_only_with_shared_propagation(
        make_bundle, pyrunc, tmp_path, propagation, reaches_host):
    """rootfsPropagation rshared: a mount the container makes under an rshared bind of a shared host mount
    appears on the host (as with runc); the binds stay in their host peer group after pivot_root."""
    import subprocess

    from oci_runtime.mountinfo import mount_points

    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "prop-test", str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)

        def edit(spec):
            spec["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
            spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(shared),
                                   "options": ["rbind", "rshared"]})
            if propagation:
                spec["linux"]["rootfsPropagation"] = propagation

        out = run_in(make_bundle, pyrunc, "mkdir /data/in && mount -t tmpfs inner /data/in", edit=edit)
        assert out.returncode == 0, out.stderr
        assert (f"{shared}/in" in mount_points()) == reaches_host
    finally:
        subprocess.run(["umount", "-R", "-l", str(shared)], check=False)


def test_no_pivot(make_bundle, pyrunc):

    bundle = make_bundle(["sh", "-c", "ls /; cat /proc/self/mountinfo | head -1"])
    out = pyrunc("run", "--no-pivot", "--bundle", bundle, "nopivot")
    assert out.returncode == 0, out.stderr
    assert "bin" in out.stdout.split()


def test_cgroup_mount_shows_own_cgroup(make_bundle, pyrunc):
    out = run_in(make_bundle, pyrunc, "ls /sys/fs/cgroup; cat /sys/fs/cgroup/pids/cgroup.procs 2>/dev/null "
                 "|| cat /sys/fs/cgroup/cgroup.procs")
    assert out.returncode == 0, out.stderr
    assert "1" in out.stdout.split()  # init (pid 1 in its namespace) is in the container's own cgroup


def test_a_read_only_dev_still_gets_its_devices_and_mounts(make_bundle, pyrunc):
    """/dev is made read-only only after the device nodes and /dev/pts, /dev/shm are in place (runc's order)."""
    def ro_dev(spec):
        for mount in spec["mounts"]:
            if mount["destination"] == "/dev":
                mount["options"] = [o for o in mount["options"] if o != "rw"] + ["ro"]

    bundle = make_bundle(["sh", "-c", "test -c /dev/null && test -d /dev/pts/ && grep ' /dev/pts ' /proc/mounts >/dev/null"
                                      " && grep -q ' /dev tmpfs ro' /proc/mounts && ! touch /dev/new 2>/dev/null"
                                      " && echo ok"], edit=ro_dev)
    out = pyrunc("run", "--bundle", bundle, "rodev")
    assert out.returncode == 0 and out.stdout == "ok\n", out.stdout + out.stderr


@pytest.mark.parametrize("option, sub_writable", [("ro", True), ("rro", False)])
def test_rro_makes_every_mount_below_read_only(make_bundle, pyrunc, tmp_path, option, sub_writable):
    """rro is ro for the bind and every mount under it (mount_setattr with AT_RECURSIVE); ro only the top."""
    import subprocess

    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(source / "sub")], check=True)
    try:
        bundle = make_bundle(["sh", "-c", "touch /data/top 2>/dev/null && echo top-rw; "
                                          "touch /data/sub/x 2>/dev/null && echo sub-rw; echo done"],
                             edit=lambda spec: spec["mounts"].append(
                                 {"destination": "/data", "type": "bind", "source": str(source),
                                  "options": ["rbind", option]}))
        out = pyrunc("run", "--bundle", bundle, f"r{option}")
        assert out.returncode == 0, out.stderr
        assert out.stdout == ("sub-rw\n" if sub_writable else "") + "done\n"
    finally:
        subprocess.run(["umount", "-l", str(source / "sub")], check=True)


@pytest.mark.parametrize("pivot", ["--no-pivot", None])
def test_no_new_proc_can_be_mounted_even_without_pivot_root(make_bundle, pyrunc, pivot):
    """With --no-pivot the host's mounts stay in the container's mount namespace; a full procfs among them
    would let a process in a new user namespace mount a new, unmasked /proc (runc's test, with busybox's
    unshare). They are detached before the move."""
    def edit(spec):
        for name in ("bounding", "permitted"):
            spec["process"]["capabilities"][name].append("CAP_SETFCAP")

    bundle = make_bundle(["unshare", "-mrpf", "sh", "-c",
                          "mount -t proc none /proc 2>/dev/null && echo mounted || echo refused"], edit=edit)
    out = pyrunc("run", *([pivot] if pivot else []), "--bundle", bundle, "np")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "refused\n"


def test_bind_sources_are_opened_by_the_runtime_not_by_the_container_user(make_bundle, pyrunc, rootfs, tmp_path):
    """In a user namespace the container's root is an unprivileged host uid: a source under a directory only
    the host's root may walk is still bound, because the runtime opened it before the fork (as runc does)."""
    private = tmp_path / "root-only"
    (private / "data").mkdir(parents=True)
    (private / "data" / "f").write_text("from the host\n")
    os.chmod(private, 0o700)
    userns = userns_edit(rootfs, 100000)

    def edit(spec):
        userns(spec)
        spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(private / "data"),
                               "options": ["rbind", "ro"]})

    out = run_in(make_bundle, pyrunc, "cat /data/f; touch /data/new 2>/dev/null || echo read-only", edit=edit)
    assert out.returncode == 0 and out.stdout == "from the host\nread-only\n", out.stderr
