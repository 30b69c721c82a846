"""Whether a container's monitor is still there: its pid with the start time we recorded (a reused pid
after a reboot or a kill is not it). A record that says running without its monitor reads as exited, and the next container command writes
that down with the time it noticed."""

from __future__ import annotations

from builder.errors import BuildError

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


def alive(entry: dict | None) -> bool:
    """The process a record's {"Pid", "StartTime"} entry names is still that process."""
    pid = (entry or {}).get("Pid") or 0
    return bool(pid) and process_start_time(pid) == entry.get("StartTime")


def monitor_alive(doc: dict) -> bool:
    """The monitor, or its guard still finishing the container after the monitor was killed."""
    return alive(doc.get("Monitor")) or alive(doc.get("Guard"))


def live_state(doc: dict) -> dict:
    """doc's State, corrected when its monitor is gone: then it is exited (255 when nobody recorded how)."""
    state = dict(doc["State"])
    if state["Status"] in ACTIVE and not monitor_alive(doc):
        state.update(Status="exited", Running=False, Restarting=False, Paused=False, Pid=0, ExitCode=state.get("ExitCode") or 255)
    return state


def record_dead_monitors(records) -> None:
    """Write down the end of containers whose monitor and guard died without recording it (both SIGKILLed):
    exited, 255, finished now, so that ps and inspect show when it was noticed from then on. The check is
    repeated under the record's lock, the one a monitor holds when it writes."""
    from oci_runtime.units import rfc3339

    for doc in records.all():
        if doc["State"]["Status"] not in ACTIVE or monitor_alive(doc):
            continue
        try:
            with records.edit(doc["Id"]) as current:
                if current["State"]["Status"] in ACTIVE and not monitor_alive(current):
                    current["State"] = {**live_state(current), "FinishedAt": rfc3339()}
        except BuildError:
            continue  # removed meanwhile
