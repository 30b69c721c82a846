"""Hostile bundles: whatever config.json, the rootfs or state.json hold, pyrunc refuses with one line naming the
field, writes nothing on the host, and `delete --force` always cleans up."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from support import PYRUNC, check_refused, leftovers, run_captured

pytestmark = pytest.mark.root


def create(pyrunc, bundle, cid):
    return pyrunc("create", "--bundle", bundle, cid)


# -- 1. the rootfs is resolved once, and never the host's root or reached through a symlink ----------------
@pytest.mark.parametrize("shape", ["symlink", "through-symlink", "host-root", "host-root-by-dots", "file"])
def test_rootfs_that_is_not_a_plain_directory_is_refused_before_anything(make_bundle, pyrunc, state_root,
                                                                         tmp_path, shape):
    host_marker = tmp_path / f"host-{shape}"
    device_target = f"{host_marker}-dev"

    def edit(spec):
        # what a create would do to the host if it went ahead with "/" as the rootfs
        spec["linux"]["devices"] = [{"path": device_target, "type": "c", "major": 1, "minor": 3}]
        spec["mounts"].append({"destination": str(host_marker), "type": "tmpfs", "source": "tmpfs"})

    bundle = make_bundle(edit=edit)
    spec = json.loads((bundle / "config.json").read_text())
    real = bundle / "rootfs"
    if shape == "symlink":
        real.rename(bundle / "real")
        real.symlink_to("real")
    elif shape == "through-symlink":
        (bundle / "link").symlink_to(bundle)
        spec["root"]["path"] = "link/rootfs"
    elif shape == "host-root":
        spec["root"]["path"] = "/"
    elif shape == "host-root-by-dots":
        spec["root"]["path"] = "../" * 40
    else:
        spec["root"]["path"] = "config.json"
    (bundle / "config.json").write_text(json.dumps(spec))
    check_refused(pyrunc, state_root, tmp_path, "rootfs", ["create", "--bundle", bundle, "rootfs"], "root.path")
    assert not os.path.lexists(device_target) and not os.path.lexists(host_marker)


# -- 2. a device never replaces a file of the image --------------------------------------------------------
@pytest.mark.parametrize("path", ["/etc/passwd", "/bin/sh", "/tmp", "/dev/../etc/group"])
def test_device_over_an_existing_file_is_an_error(make_bundle, pyrunc, state_root, tmp_path, path):
    bundle = make_bundle(edit=lambda spec: spec["linux"].setdefault("devices", []).append(
        {"path": path, "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}))
    target = bundle / "rootfs" / os.path.normpath(path).lstrip("/")
    before = os.lstat(target)
    content = target.read_bytes() if target.is_file() and not target.is_symlink() else None
    check_refused(pyrunc, state_root, tmp_path, "dev", ["create", "--bundle", bundle, "dev"], "already exists")
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    if content is not None:
        assert target.read_bytes() == content


def test_a_device_that_is_already_there_is_kept(make_bundle, pyrunc):
    bundle = make_bundle(["sh", "-c", "stat -c '%t:%T %a' /dev/mine"], edit=lambda spec: spec["linux"].setdefault(
        "devices", []).append({"path": "/dev/mine", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640}))
    out = pyrunc("run", "--bundle", bundle, "devok")
    assert out.returncode == 0 and out.stdout.strip() == "1:5 640", out.stderr


# -- 3. nothing may be mounted over /proc or inside it, but proc itself and LXCFS's files ------------------
PROC_DESTINATIONS = ["/proc/self", "/proc/self/attr", "/proc/sys", "/proc/1", "/proc/sys/kernel",
                     "/proc/./self/../sys", "/proc/thread-self", "/proc/sysrq-trigger/../self"]


@pytest.mark.parametrize("dest", PROC_DESTINATIONS)
@pytest.mark.parametrize("kind", ["bind", "tmpfs"])
def test_mounts_inside_proc_are_refused(make_bundle, pyrunc, state_root, tmp_path, dest, kind):
    host_dir = tmp_path / "host"
    host_dir.mkdir(exist_ok=True)
    mount = ({"destination": dest, "type": "bind", "source": str(host_dir), "options": ["rbind"]} if kind == "bind"
             else {"destination": dest, "type": "tmpfs", "source": "tmpfs"})
    bundle = make_bundle(edit=lambda spec: spec["mounts"].append(mount))
    check_refused(pyrunc, state_root, tmp_path, "proc", ["create", "--bundle", bundle, "proc"], "/proc")


@pytest.mark.parametrize("source", ["host-dir", "tmpfs"])
def test_only_proc_may_cover_proc(make_bundle, pyrunc, state_root, tmp_path, source):
    host_dir = tmp_path / "fake-proc"
    host_dir.mkdir()
    mount = ({"destination": "/proc", "type": "bind", "source": str(host_dir), "options": ["rbind"]}
             if source == "host-dir" else {"destination": "/proc", "type": "tmpfs", "source": "tmpfs"})
    bundle = make_bundle(edit=lambda spec: spec["mounts"].append(mount))
    check_refused(pyrunc, state_root, tmp_path, "proc", ["create", "--bundle", bundle, "proc"],
                  "only a proc filesystem")


def test_a_symlink_in_the_rootfs_cannot_lead_a_mount_into_proc(make_bundle, pyrunc, state_root, tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    bundle = make_bundle(edit=lambda spec: spec["mounts"].append(
        {"destination": "/innocent/attr", "type": "bind", "source": str(host_dir), "options": ["rbind"]}))
    (bundle / "rootfs" / "innocent").symlink_to("/proc/self")
    check_refused(pyrunc, state_root, tmp_path, "proc", ["create", "--bundle", bundle, "proc"], "leads to")


def test_lxcfs_files_may_be_bound_over_their_proc_file(make_bundle, pyrunc, tmp_path):
    fake = tmp_path / "uptime"
    fake.write_text("12345.00 0.00\n")
    bundle = make_bundle(["cat", "/proc/uptime"], edit=lambda spec: spec["mounts"].append(
        {"destination": "/proc/uptime", "type": "bind", "source": str(fake), "options": ["bind", "ro"]}))
    out = pyrunc("run", "--bundle", bundle, "lxcfs")
    assert out.returncode == 0 and out.stdout == "12345.00 0.00\n", out.stderr


# -- 4/5. config.json that is not a sane JSON object in a regular file -------------------------------------
BAD_DOCUMENTS = {
    "trailing comma": b'{"ociVersion": "1.0.2",}',
    "trailing comma in a list": b'{"process": {"args": ["sh",]}}',
    "deep nesting": b"[" * 200000,
    "deep objects": b'{"a":' * 100000,
    "not UTF-8": b'{"ociVersion": "\xff\xfe"}',
    "lone surrogate": b'{"ociVersion": "\\ud800"}',
    "a list": b"[]",
    "empty": b"",
    "NUL": b'{"ociVersion": "1.0.2"\x00}',
}


@pytest.mark.parametrize("name", BAD_DOCUMENTS)
def test_malformed_config_json_is_one_line(rootfs, pyrunc, state_root, tmp_path, name):
    (rootfs.parent / "config.json").write_bytes(BAD_DOCUMENTS[name])
    line = check_refused(pyrunc, state_root, tmp_path, "json", ["create", "--bundle", rootfs.parent, "json"],
                         "config.json")
    assert "internal error" not in line


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "huge"])
def test_config_json_must_be_a_regular_file_of_sane_size(rootfs, pyrunc, state_root, tmp_path, kind):
    config = rootfs.parent / "config.json"
    if kind == "fifo":
        os.mkfifo(config)
    elif kind == "device":
        config.symlink_to("/dev/zero")
    elif kind == "directory":
        config.mkdir()
    else:
        with open(config, "wb") as f:
            f.write(b'{"x": "' + b"a" * (17 << 20) + b'"}')
    check_refused(pyrunc, state_root, tmp_path, "special", ["create", "--bundle", rootfs.parent, "special"],
                  "config.json")


# -- 6. every refusal names the field --------------------------------------------------------------------
def _string_fields(spec):
    """(setter, field name) for every string in the process, mounts and devices of a spec."""
    found = []

    def walk(node, name):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str):
                    found.append((lambda v, n=node, k=key: n.__setitem__(k, v), f"{name}.{key}"))
                else:
                    walk(value, f"{name}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str):
                    found.append((lambda v, n=node, i=i: n.__setitem__(i, v), f"{name}[{i}]"))
                else:
                    walk(value, f"{name}[{i}]")

    for key in ("process", "mounts", "hostname"):
        walk(spec.get(key), key)
    return found


def test_nul_bytes_anywhere_name_their_field(make_bundle, pyrunc, state_root, tmp_path):
    from oci_runtime.specgen import default_spec

    spec = default_spec(args=["true"], terminal=False)
    spec["linux"]["devices"] = [{"path": "/dev/mine", "type": "c", "major": 1, "minor": 3}]
    fields = _string_fields(spec)
    assert len(fields) > 20
    for index in random.Random(7).sample(range(len(fields)), 12):

        def edit(spec, index=index):
            setter, name = _string_fields(spec)[index]
            setter("evil\x00value")

        bundle = make_bundle(edit=edit)
        name = _string_fields(json.loads((bundle / "config.json").read_text()))[index][1].lstrip(".")
        check_refused(pyrunc, state_root, tmp_path, "nul", ["create", "--bundle", bundle, "nul"],
                      f"{name}: contains a NUL byte")


@pytest.mark.parametrize("edit, field", [
    (lambda s: s["linux"].update(devices=[{"path": "/dev/big", "type": "c", "major": 2**40, "minor": 1}]),
     "linux.devices[0].major"),
    (lambda s: s["linux"].update(devices=[{"path": "/dev/big", "type": "c", "major": 1, "minor": -1}]),
     "linux.devices[0].minor"),
    (lambda s: s["linux"].update(devices=[{"path": "relative", "type": "c", "major": 1, "minor": 1}]),
     "linux.devices[0].path"),
    (lambda s: s["mounts"].append({"destination": "/", "type": "tmpfs", "source": "tmpfs"}), "destination"),
    (lambda s: s["mounts"].append({"destination": "/..", "type": "tmpfs", "source": "tmpfs"}), "destination"),
    (lambda s: s["mounts"].append({"destination": "/a/../../", "type": "tmpfs", "source": "tmpfs"}), "destination"),
])
def test_out_of_range_and_root_covering_values_name_the_field(make_bundle, pyrunc, state_root, tmp_path, edit,
                                                              field):
    bundle = make_bundle(edit=edit)
    check_refused(pyrunc, state_root, tmp_path, "field", ["create", "--bundle", bundle, "field"], field)


# -- 7. tmpcopyup copies, or the container does not start ---------------------------------------------------
def test_tmpcopyup_starts_the_tmpfs_with_the_image_content(make_bundle, pyrunc):
    bundle = make_bundle(["sh", "-c", "cat /etc/group | head -1; mount | grep ' /etc '; touch /etc/new"],
                         edit=lambda spec: spec["mounts"].append(
                             {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}))
    out = pyrunc("run", "--bundle", bundle, "copyup")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "root:x:0:" and "tmpfs on /etc" in out.stdout
    assert not (bundle / "rootfs" / "etc" / "new").exists()  # written to the tmpfs, not the image


# -- state.json: whatever it holds, state fails clearly and delete --force cleans up -----------------------
CORRUPTIONS = {
    "garbage": b"\x00\xffnot json",
    "empty": b"",
    "trailing comma": b'{"id": "x",}',
    "a list": b"[1, 2]",
    "wrong types": b'{"id": 5, "pid": "one", "cgroup": "yes"}',
    "bad cgroup record": b'{"id": "c", "pid": 1, "cgroup": {"version": 1, "paths": 7}}',
    "deep nesting": b"[" * 100000,
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_corrupt_state_file_never_leaves_the_container_behind(make_bundle, pyrunc, state_root, name):
    cid = "corrupt"
    out = create(pyrunc, make_bundle(["sleep", "1000"]), cid)
    assert out.returncode == 0, out.stderr
    init = json.loads(pyrunc("state", cid).stdout)["pid"]
    (state_root / cid / "state.json").write_bytes(CORRUPTIONS[name])
    out = pyrunc("state", cid)  # an error line, or an answer from what is still usable
    assert out.returncode == 0 or len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr
    out = pyrunc("delete", "--force", cid)
    assert out.returncode == 0, out.stderr
    assert not os.path.exists(f"/proc/{init}") or open(f"/proc/{init}/stat").read().split()[2] in "ZX"
    assert leftovers(state_root, cid) == []


# -- a fuzz of the config reader: thousands of mutated configs, only clean refusals ---------------------------
def _slots(node):
    """(container, key) for every value in a JSON document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        yield node, key
        yield from _slots(value)


def _mutations(rng: random.Random, spec: dict, count: int):
    """Documents like spec with one to three values replaced by hostile ones, or keys removed."""
    values = [None, True, 0, -1, 2**70, 1.5, "", "x" * 300, "\x00", [], {}, [[[]]], {"a": {"b": []}}, "/..",
              "../../..", "/proc/self", "\ud800", ["\x00"], {"type": "bind"}, "/", "//proc//sys"]
    for _ in range(count):
        doc = json.loads(json.dumps(spec))
        for _ in range(rng.randint(1, 3)):
            node, key = rng.choice(list(_slots(doc)))
            if isinstance(node, dict) and rng.random() < 0.2:
                del node[key]
            else:
                node[key] = rng.choice(values)
        yield doc


def test_fuzzed_configs_are_refused_cleanly_by_the_reader(busybox_template, tmp_path):
    """In process (fast): load_bundle either accepts a config or raises ConfigInvalid/RuntimeFailure."""
    from oci_runtime.bundle import load_bundle
    from oci_runtime.errors import RuntimeFailure
    from oci_runtime.specgen import default_spec

    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    rng = random.Random(1234)
    accepted = refused = 0
    for doc in _mutations(rng, default_spec(args=["true"], terminal=False), 3000):
        (bundle / "config.json").write_text(json.dumps(doc))
        try:
            load_bundle(str(bundle))
            accepted += 1
        except RuntimeFailure as e:
            assert str(e) and "\n" not in str(e)
            refused += 1
    assert refused > 1000 and accepted > 50


def test_fuzzed_configs_through_the_cli_leave_nothing(busybox_template, tmp_path, state_root):
    """Through the real command: one line, no traceback, nothing left, for a sample of mutated configs."""
    from oci_runtime.specgen import default_spec

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(busybox_template), str(bundle / "rootfs")], check=True)
    rng = random.Random(99)
    for n, doc in enumerate(_mutations(rng, default_spec(args=["true"], terminal=False), 40)):
        (bundle / "config.json").write_text(json.dumps(doc))
        cid = f"fz{n}"
        out = run_captured([*PYRUNC, "--root", str(state_root), "create", "--bundle", str(bundle), cid], timeout=30)
        if out.returncode == 0:
            assert run_captured([*PYRUNC, "--root", str(state_root), "delete", "--force", cid]).returncode == 0
        else:
            lines = out.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
            assert "internal error" not in lines[0], (doc, lines[0])
        assert leftovers(state_root, cid) == [], doc


@pytest.mark.parametrize("kind", ["proc", "sysfs"])
def test_proc_and_sysfs_are_never_mounted_on_a_symlink(make_bundle, pyrunc, state_root, tmp_path, kind):
    dest = "/proc" if kind == "proc" else "/sys"
    bundle = make_bundle()
    target = bundle / "rootfs" / dest.lstrip("/")
    os.rmdir(target)
    target.symlink_to("/tmp")  # inside the rootfs; the mount would land on /tmp
    check_refused(pyrunc, state_root, tmp_path, "sym", ["create", "--bundle", bundle, "sym"],
                  "must be mounted on ordinary directory")


@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/memory"), reason="a cgroup v1 host")
def test_unified_resources_on_cgroup_v1_are_an_invalid_configuration(make_bundle, pyrunc, state_root, tmp_path):
    bundle = make_bundle(edit=lambda spec: spec["linux"].setdefault("resources", {}).update(
        unified={"memory.high": "100000000"}))
    check_refused(pyrunc, state_root, tmp_path, "uni", ["create", "--bundle", bundle, "uni"], "invalid configuration")
