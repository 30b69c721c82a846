"""Whether a container's monitor is still there: its pid with the start time we recorded (a reused pid
after a reboot or a kill is not it). A record that says running without its monitor reads as exited."""

from __future__ import annotations

ZERO_TIME = "0001-01-01T00:00:00Z"
ACTIVE = ("starting", "running", "restarting", "paused")  # states with a monitor behind them


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if there is no such (living) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None  # dead, not yet reaped by its parent: no longer there for us
    return int(fields[19])


def _alive(entry: dict | None) -> bool:
    pid = (entry or {}).get("Pid") or 0
    return bool(pid) and process_start_time(pid) == entry.get("StartTime")


def monitor_alive(doc: dict) -> bool:
    """The monitor, or its guard still finishing the container after the monitor was killed."""
    return _alive(doc.get("Monitor")) or _alive(doc.get("Guard"))


def live_state(doc: dict) -> dict:
    """doc's State, corrected when its monitor is gone: then it is exited (255 when nobody recorded how)."""
    state = dict(doc["State"])
    if state["Status"] in ACTIVE and not monitor_alive(doc):
        state.update(Status="exited", Running=False, Restarting=False, Paused=False, Pid=0, ExitCode=state.get("ExitCode") or 255)
    return state
