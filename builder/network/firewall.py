"""The pydock nftables table (`table ip pydock`), written through nft's JSON interface and rebuilt whole
in one atomic transaction from the networks' records each time a bridge appears or goes: masquerade for
each non-internal network's subnet leaving through another interface, no forwarding in or out of an
internal network, and no forwarding between two pydock networks (docker's isolation). Port publishing
adds its chains and rules through `extra` (see ruleset), so one table holds all of pydock's rules.
Also IPv4 forwarding (net.ipv4.ip_forward) for the netns pydock runs in."""

from __future__ import annotations

import json
import shutil
import subprocess

from builder.errors import BuildError

TABLE = {"family": "ip", "name": "pydock"}


class FirewallError(BuildError):
    pass


def enable_forwarding() -> None:
    """net.ipv4.ip_forward=1 in our netns (per namespace: the one whose /proc/sys we see)."""
    with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1")


def _chain(name: str, kind: str, hook: str, prio: int) -> dict:
    return {"add": {"chain": {**TABLE, "table": TABLE["name"], "name": name, "type": kind, "hook": hook,
                              "prio": prio, "policy": "accept"}}}


def _rule(chain: str, *expr: dict) -> dict:
    return {"add": {"rule": {"family": TABLE["family"], "table": TABLE["name"], "chain": chain,
                             "expr": list(expr)}}}


def _match(key: dict, op: str, right) -> dict:
    return {"match": {"op": op, "left": key, "right": right}}


def _ifname(direction: str) -> dict:
    return {"meta": {"key": direction}}


def _prefix(subnet: str) -> dict:
    addr, _, length = subnet.partition("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


def ruleset(bridges: list[dict], extra: list[dict] = ()) -> list[dict]:
    """The table's commands. bridges: {"bridge": NAME, "subnet": CIDR, "internal": bool} per network."""
    table = {"table": {**TABLE}}
    commands = [{"add": table}, {"delete": table}, {"add": table},
                _chain("postrouting", "nat", "postrouting", 100), _chain("forward", "filter", "forward", 0)]
    names = [b["bridge"] for b in bridges]
    for b in bridges:
        name = b["bridge"]
        if b["internal"]:
            commands.append(_rule("forward", _match(_ifname("iifname"), "==", name),
                                  _match(_ifname("oifname"), "!=", name), {"drop": None}))
            commands.append(_rule("forward", _match(_ifname("oifname"), "==", name),
                                  _match(_ifname("iifname"), "!=", name), {"drop": None}))
            continue
        commands.append(_rule("postrouting", _match({"payload": {"protocol": "ip", "field": "saddr"}}, "==",
                                                    _prefix(b["subnet"])),
                              _match(_ifname("oifname"), "!=", name), {"masquerade": None}))
        others = [n for n in names if n != name]
        if others:
            commands.append(_rule("forward", _match(_ifname("iifname"), "==", name),
                                  _match(_ifname("oifname"), "==", {"set": others}), {"drop": None}))
    return commands + list(extra)


def apply(commands: list[dict]) -> None:
    """Run the commands as one nft transaction (all or nothing)."""
    nft = shutil.which("nft") or "/usr/sbin/nft"
    try:
        proc = subprocess.run([nft, "-j", "-f", "-"], input=json.dumps({"nftables": commands}),
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise FirewallError("nft is not installed (Debian's nftables package): bridge networks need it") from None
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split())[:300]
        raise FirewallError(f"nftables refused pydock's rules: {message}")


def remove_table() -> None:
    apply([{"add": {"table": {**TABLE}}}, {"delete": {"table": {**TABLE}}}])
