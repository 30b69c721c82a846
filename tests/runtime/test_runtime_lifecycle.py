"""pyrunc lifecycle against the real kernel: create -> start -> state -> kill -> delete, run, list, spec."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from support import PYRUNC, run_captured, userns_edit



def state_of(pyrunc, cid) -> dict:
    out = pyrunc("state", cid)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_status(pyrunc, cid, wanted, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = state_of(pyrunc, cid)
        if st["status"] == wanted:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{cid} never became {wanted}: {st}")


@pytest.mark.root
def test_full_lifecycle(make_bundle, pyrunc, tmp_path, state_root):
    bundle = make_bundle(["sleep", "1000"])
    pid_file = tmp_path / "pid"
    out = pyrunc("create", "--bundle", bundle, "--pid-file", pid_file, "c1")
    assert out.returncode == 0, out.stderr
    raw = pid_file.read_bytes()
    assert raw.isdigit(), raw  # no trailing newline: docker/containerd parse it with Atoi
    st = state_of(pyrunc, "c1")
    assert st["status"] == "created"
    assert st["pid"] == int(raw)
    assert st["id"] == "c1" and st["bundle"] == str(bundle) and st["ociVersion"]
    # init is blocked before exec: it is still the runtime, not sleep
    assert "sleep" not in open(f"/proc/{st['pid']}/cmdline").read()

    assert pyrunc("start", "c1").returncode == 0
    st = state_of(pyrunc, "c1")
    assert st["status"] == "running"
    assert "sleep" in open(f"/proc/{st['pid']}/cmdline").read()

    out = pyrunc("start", "c1")
    assert out.returncode != 0 and "running" in out.stderr

    out = pyrunc("delete", "c1")
    assert out.returncode != 0 and "not stopped" in out.stderr

    assert pyrunc("kill", "c1", "KILL").returncode == 0
    wait_status(pyrunc, "c1", "stopped")
    out = pyrunc("kill", "c1", "KILL")
    assert out.returncode != 0 and "container not running" in out.stderr

    assert pyrunc("delete", "c1").returncode == 0
    out = pyrunc("state", "c1")
    assert out.returncode != 0 and "does not exist" in out.stderr
    assert not (state_root / "c1").exists()


@pytest.mark.root
def test_kill_signal_forms(make_bundle, pyrunc):
    bundle = make_bundle(["sh", "-c", "trap 'exit 42' USR1; trap 'exit 43' TERM; while :; do sleep 0.05; done"])
    for form, code in (("USR1", 42), ("SIGTERM", 43), (str(int(signal.SIGUSR1)), 42)):
        cid = f"k{code}{len(form)}"
        assert pyrunc("create", "--bundle", bundle, cid).returncode == 0
        assert pyrunc("start", cid).returncode == 0
        time.sleep(0.2)
        out = pyrunc("kill", cid, form)
        assert out.returncode == 0, out.stderr
        wait_status(pyrunc, cid, "stopped")
        assert pyrunc("delete", cid).returncode == 0


@pytest.mark.root
def test_kill_unknown_signal_refused(make_bundle, pyrunc):
    bundle = make_bundle(["sleep", "100"])
    assert pyrunc("create", "--bundle", bundle, "ks").returncode == 0
    out = pyrunc("kill", "ks", "NOTASIGNAL")
    assert out.returncode != 0 and "invalid signal" in out.stderr
    assert state_of(pyrunc, "ks")["status"] == "created"
    assert pyrunc("delete", "--force", "ks").returncode == 0


@pytest.mark.root
def test_run_foreground_exit_code_and_output(make_bundle, pyrunc):
    bundle = make_bundle(["sh", "-c", "echo out; echo err >&2; exit 7"])
    out = pyrunc("run", "--bundle", bundle, "r1")
    assert out.returncode == 7
    assert out.stdout == "out\n" and out.stderr == "err\n"
    assert pyrunc("state", "r1").returncode != 0  # removed after the run


@pytest.mark.root
def test_run_killed_by_signal_exit_code(make_bundle, pyrunc):
    def no_pidns(spec):  # pid 1 of a pid namespace cannot be SIGKILLed from inside; without one it can
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]

    bundle = make_bundle(["sh", "-c", "kill -9 $$"], edit=no_pidns)
    out = pyrunc("run", "--bundle", bundle, "r9")
    assert out.returncode == 128 + 9


@pytest.mark.root
def test_run_keep_and_detach(make_bundle, pyrunc):
    bundle = make_bundle(["true"])
    out = pyrunc("run", "--keep", "--bundle", bundle, "rk")
    assert out.returncode == 0
    assert state_of(pyrunc, "rk")["status"] == "stopped"
    assert pyrunc("delete", "rk").returncode == 0

    bundle = make_bundle(["sleep", "100"])
    out = pyrunc("run", "-d", "--bundle", bundle, "rd")
    assert out.returncode == 0, out.stderr
    assert state_of(pyrunc, "rd")["status"] == "running"
    assert pyrunc("delete", "--force", "rd").returncode == 0


@pytest.mark.root
def test_run_forwards_signals(make_bundle, pyrunc, state_root):
    import subprocess

    bundle = make_bundle(["sh", "-c", "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.05; done"])
    proc = subprocess.Popen([*PYRUNC, "--root", str(state_root), "run", "--bundle", str(bundle), "rs"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 5
    assert "got-term" in proc.stdout.read()


@pytest.mark.root
def test_duplicate_id_refused(make_bundle, pyrunc):
    bundle = make_bundle(["sleep", "100"])
    assert pyrunc("create", "--bundle", bundle, "dup").returncode == 0
    out = pyrunc("create", "--bundle", bundle, "dup")
    assert out.returncode != 0 and "already exists" in out.stderr
    assert state_of(pyrunc, "dup")["status"] == "created"  # the first one is untouched
    assert pyrunc("delete", "--force", "dup").returncode == 0


@pytest.mark.root
def test_recreate_same_id_after_delete(make_bundle, pyrunc):
    bundle = make_bundle(["true"])
    for _ in range(2):
        assert pyrunc("run", "--bundle", bundle, "again").returncode == 0


@pytest.mark.root
def test_delete_created_and_unknown(make_bundle, pyrunc):
    bundle = make_bundle(["sleep", "100"])
    assert pyrunc("create", "--bundle", bundle, "dc").returncode == 0
    pid = state_of(pyrunc, "dc")["pid"]
    assert pyrunc("delete", "--force", "dc").returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split(")")[1][:3]
    out = pyrunc("delete", "nosuch")
    assert out.returncode != 0 and "does not exist" in out.stderr
    assert pyrunc("delete", "--force", "nosuch").returncode == 0  # engines rely on this


@pytest.mark.root
def test_start_stopped_container_refused(make_bundle, pyrunc):
    bundle = make_bundle(["true"])
    assert pyrunc("create", "--bundle", bundle, "st").returncode == 0
    assert pyrunc("start", "st").returncode == 0
    wait_status(pyrunc, "st", "stopped")
    out = pyrunc("start", "st")
    assert out.returncode != 0 and "stopped" in out.stderr
    assert pyrunc("delete", "st").returncode == 0


@pytest.mark.root
def test_start_after_init_was_killed(make_bundle, pyrunc):
    bundle = make_bundle(["true"])
    assert pyrunc("create", "--bundle", bundle, "sk").returncode == 0
    os.kill(state_of(pyrunc, "sk")["pid"], signal.SIGKILL)
    wait_status(pyrunc, "sk", "stopped")
    out = pyrunc("start", "sk")
    assert out.returncode != 0 and "stopped" in out.stderr
    assert pyrunc("delete", "sk").returncode == 0


@pytest.mark.root
def test_list_formats(make_bundle, pyrunc):
    assert pyrunc("list", "--format", "json").stdout.strip() == "[]"
    bundle = make_bundle(["sleep", "100"])
    assert pyrunc("create", "--bundle", bundle, "l1").returncode == 0
    rows = json.loads(pyrunc("list", "--format", "json").stdout)
    assert [r["id"] for r in rows] == ["l1"] and rows[0]["status"] == "created"
    assert pyrunc("list", "-q").stdout.split() == ["l1"]
    table = pyrunc("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == ["l1", str(rows[0]["pid"]), "created"]
    assert pyrunc("delete", "--force", "l1").returncode == 0


@pytest.mark.root
def test_spec_writes_runnable_default(rootfs, pyrunc):
    bundle = rootfs.parent
    out = pyrunc("spec", "--bundle", bundle)
    assert out.returncode == 0, out.stderr
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["terminal"] is True and config["root"]["path"] == "rootfs"
    assert pyrunc("spec", "--bundle", bundle).returncode != 0  # refuses to overwrite
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo from-spec"]
    (bundle / "config.json").write_text(json.dumps(config))
    out = pyrunc("run", "--bundle", bundle, "sp")
    assert out.returncode == 0 and out.stdout == "from-spec\n", out.stderr


def test_spec_rootless(tmp_path, pyrunc):
    out = pyrunc("spec", "--rootless", "--bundle", tmp_path)
    assert out.returncode == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert {"type": "user"} in config["linux"]["namespaces"] and config["linux"]["uidMappings"]


def test_features_and_version(pyrunc):
    out = pyrunc("features")
    assert out.returncode == 0
    features = json.loads(out.stdout)
    assert "createRuntime" in features["hooks"] and "user" in features["linux"]["namespaces"]
    out = pyrunc("--version")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].startswith("pyrunc version ") and lines[1].startswith("commit: ") and lines[2].startswith("spec: ")


@pytest.mark.root
def test_config_changes_after_create_do_not_affect(make_bundle, pyrunc):
    bundle = make_bundle(["sh", "-c", "echo original"])
    assert pyrunc("create", "--bundle", bundle, "cu").returncode == 0
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", "echo changed"]
    (bundle / "config.json").write_text(json.dumps(config))
    assert pyrunc("start", "cu").returncode == 0
    wait_status(pyrunc, "cu", "stopped")
    assert pyrunc("delete", "cu").returncode == 0


def test_every_command_is_routed_to_the_module_that_defines_it():
    from oci_runtime import cli

    for group, names in cli.COMMAND_GROUPS.items():
        defined = {name for cmd in cli.group_commands(group) for name in (cmd.name, *cmd.aliases)}
        assert defined == set(names), group
    assert cli.find_command("rm").name == "delete" and cli.find_command("nope") is None


def test_an_unknown_command_is_runcs_words_and_status():
    out = run_captured([*PYRUNC, "no-such-command"])
    assert out.returncode == 3 and out.stderr.strip() == "No help topic for 'no-such-command'"


@pytest.mark.root
def test_list_json_is_compact_like_runcs(make_bundle, pyrunc):
    assert pyrunc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "compact").returncode == 0
    out = pyrunc("list", "--format", "json").stdout.strip()
    assert out == json.dumps(json.loads(out), separators=(",", ":")) and '"id":"compact"' in out


@pytest.mark.root
def test_debug_lines_and_the_log_file(make_bundle, pyrunc, tmp_path):
    log = tmp_path / "quiet.log"
    assert pyrunc("--log", log, "list").returncode == 0
    assert log.exists() and log.read_text() == ""  # created even when nothing was logged, as runc does
    out = pyrunc("--debug", "run", "--bundle", make_bundle(["true"]), "dbg")
    assert out.returncode == 0 and "level=debug" in out.stderr and "init is pid" in out.stderr, out.stderr
    debug_log = tmp_path / "debug.log"
    assert pyrunc("--debug", "--log", debug_log, "--log-format", "json", "run", "--bundle",
                  make_bundle(["true"]), "dbg2").returncode == 0
    assert any(json.loads(line)["level"] == "debug" for line in debug_log.read_text().splitlines())


# the stage names runc writes with --debug, which scripts (runc's own test suite) look for
CREATE_STAGES = ("nsexec container setup", "child process in init()", "init: closing the pipe to signal completion")


@pytest.mark.root
@pytest.mark.parametrize("userns", [False, True], ids=["direct", "stage1"])
def test_debug_names_the_child_stages(make_bundle, pyrunc, rootfs, tmp_path, userns):
    edit = userns_edit(rootfs, 200000) if userns else None
    out = pyrunc("--debug", "run", "--bundle", make_bundle(["true"], edit=edit), "stages")
    assert out.returncode == 0 and all(stage in out.stderr for stage in CREATE_STAGES), out.stderr
    log = tmp_path / "debug.json"
    out = pyrunc("--debug", "--log", log, "--log-format", "json", "run", "--bundle", make_bundle(["true"], edit=edit),
                 "stages2")
    assert out.returncode == 0 and "debug" not in out.stderr, out.stderr
    messages = [json.loads(line)["msg"] for line in log.read_text().splitlines()]
    assert all(any(stage in msg for msg in messages) for stage in CREATE_STAGES), messages
    out = pyrunc("run", "--bundle", make_bundle(["true"], edit=edit), "quiet")
    assert out.returncode == 0 and out.stderr == "", out.stderr


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["help"]])
def test_help_has_runcs_layout(argv):
    out = run_captured([*PYRUNC, *argv])
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines[0] == "NAME:" and "runc - Open Container Initiative runtime" in lines[1]
    assert "VERSION" not in out.stdout and "COMMANDS:" in lines and "GLOBAL OPTIONS:" in lines


@pytest.mark.parametrize("command", ["checkpoint", "delete", "events", "exec", "kill", "list", "pause", "restore",
                                     "resume", "spec", "start", "run", "state", "update"])
def test_each_command_has_help(command):
    for argv in ([command, "-h"], ["help", command]):
        out = run_captured([*PYRUNC, *argv])
        lines = out.stdout.splitlines()
        assert out.returncode == 0 and lines[0] == "NAME:" and f"runc {command}" in lines[1], out.stdout


def test_help_for_an_unknown_topic():
    for argv in (["foo", "-h"], ["help", "foo"]):
        out = run_captured([*PYRUNC, *argv])
        assert out.returncode == 3 and "No help topic for 'foo'" in out.stderr


def test_checkpoint_and_restore_are_refused_clearly(tmp_path):
    for command in ("checkpoint", "restore"):
        out = run_captured([*PYRUNC, "--root", str(tmp_path), command, "--image-path", str(tmp_path), "c"])
        assert out.returncode == 1 and out.stderr.count("\n") == 1 and "not supported" in out.stderr
