"""pydock run --init against real containers: docker's static tini as PID 1, which reaps the command's
orphans, passes signals on and exits with the command's status."""

from __future__ import annotations

import json

import pytest

from builder_support import Pydock
from support import wait_for

pytestmark = pytest.mark.root


def test_init_is_pid_1_and_the_command_its_child(dock):
    proc = dock("run", "--rm", "--init", "busybox", "ps", "-o", "pid,ppid,comm", check=True)
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert ["1", "0", "docker-init"] in rows
    assert ["2", "1", "ps"] in rows
    proc = dock("run", "--rm", "busybox", "ps", "-o", "pid,comm", check=True)
    assert proc.stdout.split()[2:4] == ["1", "ps"]  # without --init the command is PID 1


def test_init_passes_the_exit_status_through(dock):
    assert dock("run", "--rm", "--init", "busybox", "sh", "-c", "exit 7").returncode == 7
    assert dock("run", "--rm", "--init", "busybox", "nonexistent-cmd").returncode == 127


def zombies_after_orphan(dock: Pydock, *init: str) -> list[str]:
    """Orphan a short-lived process while PID 1 (without an init: `sleep`, which never waits) runs on;
    the processes in state Z a moment later."""
    cid = dock("run", "-d", *init, "busybox", "sh", "-c", 'sh -c "sleep 0.2 &"; exec sleep 30',
               check=True).stdout.strip()
    try:
        def zombies():
            out = dock("exec", cid, "ps", "-o", "stat,comm", check=True).stdout
            return [line for line in out.splitlines()[1:] if line.startswith("Z")]
        wait_for(lambda: "sleep" not in dock("exec", cid, "ps", "-o", "args").stdout.replace("sleep 30", ""),
                 timeout=10)
        return zombies()
    finally:
        dock("rm", "-f", cid)


def test_init_reaps_the_commands_orphans(dock):
    assert zombies_after_orphan(dock) != []  # the control: a PID 1 that never waits leaves a zombie
    assert zombies_after_orphan(dock, "--init") == []


def test_init_passes_signals_to_the_command(dock):
    cid = dock("run", "-d", "--init", "busybox", "sh", "-c",
               'trap "echo got TERM; exit 42" TERM; echo ready; while true; do sleep 0.1; done',
               check=True).stdout.strip()
    assert wait_for(lambda: "ready" in dock("logs", cid).stdout)
    dock("kill", "-s", "TERM", cid, check=True)
    assert dock("wait", cid, check=True).stdout.strip() == "42"
    assert "got TERM" in dock("logs", cid).stdout
    doc = json.loads(dock("inspect", cid, check=True).stdout)[0]
    assert doc["HostConfig"]["Init"] is True
    assert (doc["Path"], doc["Args"][0]) == ("sh", "-c")  # docker records the command, not the init


def test_init_without_a_static_binary_is_refused(dock, monkeypatch):
    from builder.container import init
    from builder.container.records import ContainerError

    monkeypatch.setattr(init, "_CANDIDATES", ("/nonexistent/tini-static",))
    with pytest.raises(ContainerError, match="tini"):
        init.host_init_binary()
