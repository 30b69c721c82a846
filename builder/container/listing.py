"""Which containers `ps` lists: its --filter values, -a, -n/-l, applied in docker's order (moby's
daemon/list.go read for behaviour): values of one key OR (label's AND), different keys AND; name and id
filters narrow the list first; before/since are positions in the newest-first list; the limit counts
containers that passed the name, id and label filters."""

from __future__ import annotations

import re
from typing import Callable, Iterable

from builder.container.liveness import ACTIVE, ZERO_TIME
from builder.container.records import ContainerError

FILTER_KEYS = ("ancestor", "before", "exited", "expose", "health", "id", "is-task", "isolation", "label",
               "name", "network", "publish", "since", "status", "volume")
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """--filter KEY=VALUE flags as {key: [values]} (the key lower-cased, both trimmed, as docker's CLI does);
    a key ps does not know is refused before anything is listed."""
    filters: dict[str, list[str]] = {}
    for item in items:
        if not item:
            continue
        if "=" not in item:
            raise ContainerError(f'invalid argument "{item}" for "-f, --filter" flag: '
                                 "bad format of filter (expected name=value)")
        key, value = item.split("=", 1)
        values = filters.setdefault(key.strip().lower(), [])
        if value.strip() not in values:
            values.append(value.strip())
    for key in filters:
        if key not in FILTER_KEYS:
            raise ContainerError(f"invalid filter '{key}'")
    return filters


def state_word(state: dict) -> str:
    """docker's one-word State: created, running, paused, restarting, exited (starting counts as running)."""
    return "running" if state["Status"] == "starting" else state["Status"]


class Query:
    """One ps invocation's selection, its filter values checked (docker's errors) when made."""

    def __init__(self, filters: dict[str, list[str]], *, all_: bool, limit: int):
        self.filters = filters
        self.limit = limit
        self.exited = []
        for value in filters.get("exited", []):
            try:
                self.exited.append(int(value))
            except ValueError:
                raise ContainerError(f"invalid filter 'exited={value}'") from None
        for value in filters.get("status", []):
            if value not in STATES:
                raise ContainerError(f"invalid filter 'status={value}'")
        # status= lists stopped containers by itself; exited= only with -a (docker's "only useful with --all")
        self.all = all_ or "status" in filters
        for value in filters.get("health", []):
            if value not in HEALTH:
                raise ContainerError(f"Unrecognised filter value for health: {value}")
        task = filters.get("is-task", [])
        if any(v not in ("true", "false") for v in task) or len(task) > 1:
            raise ContainerError(f"invalid filter 'is-task={','.join(task)}'")
        self.publish = _port_set("publish", filters.get("publish", []))
        self.expose = _port_set("expose", filters.get("expose", []))

    def select(self, entries: list[tuple[dict, dict]], ports_of: Callable[[dict, dict], list[tuple[int, int, str]]],
               ancestor_of: Callable[[str], bool] | None) -> list[tuple[dict, dict]]:
        """The (record, live state) pairs to list, from entries sorted newest first. ports_of gives a
        container's (private, public, proto) ports as ps shows them; ancestor_of(image id) says whether an
        image is one of the ancestor filter's images or made from one (None: no ancestor filter)."""
        f = self.filters
        before = _position(entries, f["before"][-1]) if "before" in f else None
        since = _position(entries, f["since"][-1]) if "since" in f else None
        entries = self._by_name_and_id(entries)
        out = []
        for doc, state in entries:
            if before is not None:  # skip the newer ones, and the container named itself
                if doc["Id"] == before:
                    before = None
                continue
            if doc["Id"] == since:
                break
            if state["Status"] not in ACTIVE and not self.all and self.limit <= 0:
                continue
            if not _labels_match(f.get("label", []), doc["Config"].get("Labels") or {}):
                continue
            if f.get("is-task") == ["true"]:
                continue  # no swarm tasks here
            if 0 < self.limit == len(out):
                break
            if self._keeps(doc, state, ports_of, ancestor_of):
                out.append((doc, state))
        return out

    def _by_name_and_id(self, entries):
        """docker's first pass: containers whose id has a value as its unique prefix and, with name filters,
        whose name one of them matches (among the id matches when ids were given too)."""
        ids, names = self.filters.get("id", []), self.filters.get("name", [])
        if not ids and not names:
            return entries
        chosen = set()
        for value in ids:
            found = [doc["Id"] for doc, _ in entries if value and doc["Id"].startswith(value)]
            if len(found) == 1:
                chosen.add(found[0])
        if names:
            chosen = {doc["Id"] for doc, _ in entries if (not ids or doc["Id"] in chosen)
                      and (_any_matches(names, doc["Name"]) or _any_matches(names, doc["Name"].lstrip("/")))}
        return [(doc, state) for doc, state in entries if doc["Id"] in chosen]

    def _keeps(self, doc, state, ports_of, ancestor_of) -> bool:
        f = self.filters
        if self.exited and not (state["Status"] not in ACTIVE and state.get("StartedAt", ZERO_TIME) != ZERO_TIME
                                and state.get("ExitCode") in self.exited):
            return False
        if "status" in f and state_word(state) not in f["status"]:
            return False
        if "health" in f and "none" not in f["health"]:
            return False  # health checks are recorded, never run: every container's health is "none"
        if "volume" in f:
            mounts = doc.get("Mounts") or []
            known = {m.get("Name") or m.get("Source") for m in mounts} | {m.get("Destination") for m in mounts}
            if not known & set(f["volume"]):
                return False
        if ancestor_of is not None and not ancestor_of(doc["Image"]):
            return False
        if "network" in f:
            nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
            if not any(v in nets or any((n or {}).get("NetworkID", "").startswith(v) for n in nets.values())
                       for v in f["network"]):
                return False
        if self.publish or self.expose:
            ports = ports_of(doc, state)
            if not any((public, proto) in self.publish or (private, proto) in self.expose
                       for private, public, proto in ports):
                return False
        return True


def _any_matches(patterns: list[str], text: str) -> bool:
    """docker's Match: equal, or the value as a regular expression found in the text (bad ones skipped)."""
    for pattern in patterns:
        if pattern == text:
            return True
        try:
            if re.search(pattern, text):
                return True
        except re.error:
            continue
    return False


def _labels_match(wanted: list[str], labels: dict) -> bool:
    """Every label filter holds: KEY present, or KEY=VALUE equal."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _position(entries, ref: str) -> str:
    """The id of the container before=/since= names: full id, name, or unique id prefix."""
    for doc, _ in entries:
        if doc["Id"] == ref:
            return doc["Id"]
    for doc, _ in entries:
        if doc["Name"].lstrip("/") == ref.lstrip("/"):
            return doc["Id"]
    found = [doc["Id"] for doc, _ in entries if ref and doc["Id"].startswith(ref)]
    if len(found) != 1:
        raise ContainerError(f"No such container: {ref}")
    return found[0]


def _port_set(key: str, values: list[str]) -> set[tuple[int, str]]:
    """publish=/expose= values, PORT[/PROTO] or FIRST-LAST[/PROTO], as (port, proto) pairs."""
    out = set()
    for value in values:
        if ":" in value:
            raise ContainerError(f"filter for '{key}' should not contain ':': {value}")
        port, _, proto = value.partition("/")
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", port)
        first, last = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, -1)
        if not m or last < first or last > 65535:
            raise ContainerError(f"error while looking up for {key} {value}: invalid port range {port!r}")
        out |= {(p, (proto or "tcp").lower()) for p in range(first, last + 1)}
    return out
