"""Bad input: one clear error line (also in --log, in the chosen format), a non-zero exit, nothing left behind."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from support import PYRUNC, check_refused, leftovers


def test_malformed_json(rootfs, pyrunc, state_root, tmp_path):
    (rootfs.parent / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')
    check_refused(pyrunc, state_root, tmp_path, "bad1", ["create", "--bundle", rootfs.parent, "bad1"],
                  "config.json is not valid JSON")


def test_schema_invalid_config_names_the_field(make_bundle, pyrunc, state_root, tmp_path):
    def bad(spec):
        spec["process"]["args"] = "sh -c true"  # must be an array

    bundle = make_bundle(edit=bad)
    line = check_refused(pyrunc, state_root, tmp_path, "bad2", ["create", "--bundle", bundle, "bad2"], "process.args")
    assert "array" in line


def test_schema_invalid_namespace_type(make_bundle, pyrunc, state_root, tmp_path):
    def bad(spec):
        spec["linux"]["namespaces"].append({"type": "bogus"})

    bundle = make_bundle(edit=bad)
    check_refused(pyrunc, state_root, tmp_path, "bad3", ["create", "--bundle", bundle, "bad3"], "bogus")


def test_missing_rootfs(make_bundle, pyrunc, state_root, tmp_path, rootfs):
    bundle = make_bundle()
    subprocess.run(["rm", "-rf", str(rootfs)], check=True)
    check_refused(pyrunc, state_root, tmp_path, "bad4", ["create", "--bundle", bundle, "bad4"], "does not exist")


@pytest.mark.parametrize("cid", ["../escape", "a/b", "..", ".hidden", "-dash", "x" * 1100])
def test_bad_ids(make_bundle, pyrunc, state_root, tmp_path, cid):
    bundle = make_bundle()
    check_refused(pyrunc, state_root, tmp_path, "none", ["create", "--bundle", bundle, "--", cid], "container id")
    assert not (state_root.parent / "escape").exists()


@pytest.mark.root
def test_missing_mount_source(make_bundle, pyrunc, state_root, tmp_path):
    def bad(spec):
        spec["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/dir",
                               "options": ["bind"]})

    bundle = make_bundle(edit=bad)
    check_refused(pyrunc, state_root, tmp_path, "bad5", ["create", "--bundle", bundle, "bad5"],
                  'mount source "/no/such/dir" does not exist')


@pytest.mark.root
def test_failing_bind_names_its_source(make_bundle, pyrunc, state_root, tmp_path):
    src = tmp_path / "a-directory"
    src.mkdir()

    def bad(spec):  # a directory onto a file of the image: the kernel refuses
        spec["mounts"].append({"destination": "/etc/passwd", "type": "bind", "source": str(src), "options": ["bind"]})

    bundle = make_bundle(edit=bad)
    check_refused(pyrunc, state_root, tmp_path, "bad9", ["create", "--bundle", bundle, "bad9"],
                  f'error mounting "{src}" to rootfs at "/etc/passwd": not a directory')


def test_unknown_capability(make_bundle, pyrunc, state_root, tmp_path):
    def bad(spec):
        spec["process"]["capabilities"]["bounding"].append("CAP_TEST")

    bundle = make_bundle(edit=bad)
    check_refused(pyrunc, state_root, tmp_path, "bad6", ["create", "--bundle", bundle, "bad6"], "CAP_TEST")


def test_hostname_without_uts_namespace(make_bundle, pyrunc, state_root, tmp_path):
    def bad(spec):
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "uts"]

    bundle = make_bundle(edit=bad)
    check_refused(pyrunc, state_root, tmp_path, "bad7", ["create", "--bundle", bundle, "bad7"], "UTS namespace")


@pytest.mark.root
def test_failure_inside_init_cleans_everything(make_bundle, pyrunc, state_root, tmp_path):
    def bad(spec):  # fails late: after the cgroup, the namespaces and most mounts exist
        spec["linux"]["sysctl"] = {"net.ipv4.no_such_sysctl": "1"}

    bundle = make_bundle(edit=bad)
    check_refused(pyrunc, state_root, tmp_path, "bad8", ["create", "--bundle", bundle, "bad8"], "no_such_sysctl")


@pytest.mark.root
def test_text_log_format(make_bundle, pyrunc, state_root, tmp_path):
    log = tmp_path / "log.txt"
    out = subprocess.run([*PYRUNC, "--root", str(state_root), "--log", str(log), "state", "nosuch"],
                         capture_output=True, text=True)
    assert out.returncode != 0
    text = log.read_text()
    assert 'level=error msg="container nosuch does not exist"' in text and text.startswith('time="')


def test_usage_errors(pyrunc):
    for args in (["start"], ["kill"], ["delete"], ["create", "--bundle", "/tmp"], ["nosuchcommand"]):
        out = pyrunc(*args)
        assert out.returncode != 0 and out.stderr.strip(), args


@pytest.mark.root
def test_create_killed_midway_is_cleaned_by_delete_force(make_bundle, state_root, pyrunc):
    """SIGKILL `pyrunc create` at several points; `delete --force` must leave nothing."""

    def slow_hook(spec):
        spec["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]}

    bundle = make_bundle(["sleep", "100"], edit=slow_hook)
    for delay in (0.0, 0.05, 0.15, 0.5):
        cid = f"killed{int(delay * 1000)}"
        proc = subprocess.Popen([*PYRUNC, "--root", str(state_root), "create", "--bundle", str(bundle), cid],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out = pyrunc("delete", "--force", cid)
        assert out.returncode == 0, out.stderr
        time.sleep(0.1)
        assert leftovers(state_root, cid) == [], delay
