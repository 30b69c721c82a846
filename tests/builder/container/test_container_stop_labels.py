"""pydock run --label, --stop-signal and --stop-timeout against real containers: the record docker users
script against, and what `stop` does with them."""

from __future__ import annotations

import json
import time

import pytest

from builder_support import Pydock
from support import wait_for

pytestmark = pytest.mark.root


def config(dock: Pydock, cid: str) -> dict:
    return json.loads(dock("inspect", cid, check=True).stdout)[0]["Config"]


def test_labels_are_recorded(dock):
    cid = dock("create", "--label", "team=blue", "-l", "bare", "busybox", "true", check=True).stdout.strip()
    assert config(dock, cid)["Labels"] == {"team": "blue", "bare": ""}
    assert dock("inspect", "-f", '{{index .Config.Labels "team"}}', cid, check=True).stdout == "blue\n"


def test_stop_signal_is_what_stop_sends(dock):
    cid = dock("run", "-d", "--stop-signal", "USR1", "busybox", "sh", "-c",
               "trap 'echo got USR1; exit 3' USR1; echo ready; while true; do sleep 0.1; done",
               check=True).stdout.strip()
    assert config(dock, cid)["StopSignal"] == "USR1"
    assert wait_for(lambda: "ready" in dock("logs", cid).stdout)
    dock("stop", cid, check=True)
    assert dock("wait", cid, check=True).stdout == "3\n"
    assert "got USR1" in dock("logs", cid).stdout


def test_stop_timeout_is_the_default_wait_of_stop(dock):
    # sh as PID 1 ignores SIGTERM without a trap: only the SIGKILL after the wait ends it
    cid = dock("run", "-d", "--stop-timeout", "1", "busybox", "sleep", "60", check=True).stdout.strip()
    assert config(dock, cid)["StopTimeout"] == 1
    started = time.monotonic()
    dock("stop", cid, check=True)
    assert time.monotonic() - started < 8  # docker's default would wait 10 s
    assert dock("inspect", "-f", "{{.State.ExitCode}}", cid, check=True).stdout == "137\n"
    assert "StopTimeout" not in config(dock, dock("create", "busybox", "true", check=True).stdout.strip())


def test_a_bad_stop_signal_is_refused(dock):
    before = dock("ps", "-aq").stdout
    proc = dock("run", "--stop-signal", "SIGNOPE", "busybox", "true")
    assert proc.returncode == 125 and "invalid --stop-signal" in proc.stderr and proc.stderr.count("\n") == 1
    assert dock("ps", "-aq").stdout == before
