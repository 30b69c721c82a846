"""A store's nftables table (`table ip pydock-<tag>`, the tag a short hash of the store's root: every store
sharing a netns has its own, so one store's rebuild never drops another's rules), written through nft's
JSON interface and rebuilt whole in one atomic transaction from that store's networks' records each time
a bridge appears or goes: masquerade for each non-internal network's subnet leaving through another
interface, no forwarding in or out of an internal network, and no forwarding between two pydock networks,
of this store or another (docker's isolation), except to a published port. Nothing outside this table is
touched: the host's own firewall stays as it was. Also IPv4 forwarding (net.ipv4.ip_forward)
for the netns pydock runs in.

Port publishing (ports.py) lives in the same table (several stores' nat chains on one hook coexist: the
kernel stops at the first chain that sets up a connection's NAT):
  chain prerouting   nat hook, dstnat: traffic to one of our addresses -> publish
  chain output       nat hook, -100: the host's own traffic to a non-loopback local address -> publish
  chain publish      one DNAT rule per published port, its comment the container's id (how a container's
                     rules are found again: on stop, and when a dead container's are reconciled)
A rebuild puts back the publish rules of the running containers (`extra`, from their records)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from builder.errors import BuildError

FAMILY = "ip"
PUBLISH_CHAIN = "publish"
PUBLISH_JUMP = "pydock-publish"  # the comment of the two jumps into the publish chain


class FirewallError(BuildError):
    pass


def enable_forwarding() -> None:
    """net.ipv4.ip_forward=1 in our netns (per namespace: the one whose /proc/sys we see)."""
    with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1")


def available() -> bool:
    return shutil.which("nft") is not None or os.path.exists("/usr/sbin/nft")


def table_for(store_root) -> str:
    """The nftables table of the store at store_root."""
    from builder.network.store import store_tag

    return "pydock-" + store_tag(store_root)


def _table(table: str) -> dict:
    return {"table": {"family": FAMILY, "name": table}}


def _chain(table: str, name: str, kind: str | None = None, hook: str | None = None, prio: int = 0) -> dict:
    chain = {"family": FAMILY, "table": table, "name": name}
    if kind:
        chain.update(type=kind, hook=hook, prio=prio, policy="accept")
    return {"add": {"chain": chain}}


def rule(table: str, chain: str, *expr: dict, comment: str | None = None) -> dict:
    body = {"family": FAMILY, "table": table, "chain": chain, "expr": list(expr)}
    if comment:
        body["comment"] = comment
    return {"add": {"rule": body}}


def match(key: dict, op: str, right) -> dict:
    return {"match": {"op": op, "left": key, "right": right}}


def payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


def _ifname(direction: str) -> dict:
    return {"meta": {"key": direction}}


def prefix(subnet: str) -> dict:
    addr, _, length = subnet.partition("/")
    return {"prefix": {"addr": addr, "len": int(length or 32)}}


LOCAL_DESTINATION = match({"fib": {"result": "type", "flags": ["daddr"]}}, "==", "local")
NOT_LOOPBACK = match(payload("ip", "daddr"), "!=", prefix("127.0.0.0/8"))
# A connection DNATed to a published port: docker lets any network reach one (through the host's address),
# so the isolation between networks leaves these alone.
# The bridge names pydock gives (a store's default bridge, a user-defined network's): forwarding from one
# of this store's networks into any of them is dropped too, so networks of different stores sharing a netns
# are as isolated as networks of one store.
OTHER_STORES_BRIDGES = ("pydock-*", "br-*")
NOT_PUBLISHED = match({"&": [{"ct": {"key": "status"}}, "dnat"]}, "==", 0)


def publish_chains(table: str) -> list[dict]:
    """The publish chain and the jumps into it (for a table that has none yet)."""
    return [_chain(table, PUBLISH_CHAIN), _chain(table, "prerouting", "nat", "prerouting", -100),
            _chain(table, "output", "nat", "output", -100),
            rule(table, "prerouting", LOCAL_DESTINATION, {"jump": {"target": PUBLISH_CHAIN}}, comment=PUBLISH_JUMP),
            rule(table, "output", NOT_LOOPBACK, LOCAL_DESTINATION, {"jump": {"target": PUBLISH_CHAIN}},
                 comment=PUBLISH_JUMP)]


def ruleset(table: str, bridges: list[dict], extra: list[dict] = ()) -> list[dict]:
    """The table's commands. bridges: {"bridge": NAME, "subnet": CIDR, "internal": bool} per network;
    extra: the running containers' publish rules."""
    commands = [{"add": _table(table)}, {"delete": _table(table)}, {"add": _table(table)},
                _chain(table, "postrouting", "nat", "postrouting", 100),
                _chain(table, "forward", "filter", "forward", 0),
                *publish_chains(table)]
    names = [b["bridge"] for b in bridges]
    for b in bridges:
        name = b["bridge"]
        if b["internal"]:
            commands.append(rule(table, "forward", match(_ifname("iifname"), "==", name),
                                 match(_ifname("oifname"), "!=", name), {"drop": None}))
            commands.append(rule(table, "forward", match(_ifname("oifname"), "==", name),
                                 match(_ifname("iifname"), "!=", name), {"drop": None}))
            continue
        commands.append(rule(table, "postrouting", match(payload("ip", "saddr"), "==", prefix(b["subnet"])),
                             match(_ifname("oifname"), "!=", name), {"masquerade": None}))
        others = [n for n in names if n != name]
        if others:
            commands.append(rule(table, "forward", match(_ifname("iifname"), "==", name),
                                 match(_ifname("oifname"), "==", {"set": others}), NOT_PUBLISHED,
                                 {"drop": None}))
        # other stores' bridges are not in this table's records: their default names match a wildcard
        for pattern in OTHER_STORES_BRIDGES:
            commands.append(rule(table, "forward", match(_ifname("iifname"), "==", name),
                                 match(_ifname("oifname"), "!=", name), match(_ifname("oifname"), "==", pattern),
                                 NOT_PUBLISHED, {"drop": None}))
    return commands + list(extra)


def apply(commands: list[dict]) -> None:
    """Run the commands as one nft transaction (all or nothing)."""
    _nft(["-j", "-f", "-"], json.dumps({"nftables": commands}))


def _nft(args: list[str], stdin: str | None = None) -> str:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    try:
        proc = subprocess.run([nft, *args], input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise FirewallError("nft is not installed (Debian's nftables package): bridge networks need it") from None
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split())[:300]
        raise FirewallError(f"nftables refused pydock's rules: {message}")
    return proc.stdout


def remove_table(table: str) -> None:
    apply([{"add": _table(table)}, {"delete": _table(table)}])


def rules(table: str, chain: str | None = None) -> list[dict]:
    """The rules of the table (or of one chain), each with its handle and comment; [] without a table."""
    try:
        out = _nft(["-j", "-a", "list", "table", FAMILY, table])
    except FirewallError:
        return []
    found = [item["rule"] for item in json.loads(out).get("nftables", []) if "rule" in item]
    return [r for r in found if chain is None or r["chain"] == chain]


def ensure_publish_chains(table: str) -> None:
    """The table with its publish chains, when no network made it yet (adding what exists changes nothing;
    the jumps are added once)."""
    if any(r.get("comment") == PUBLISH_JUMP for r in rules(table)):
        return
    apply([{"add": _table(table)}, *publish_chains(table)])


def delete_commands(found: list[dict]) -> list[dict]:
    """Deletions of rules as rules() returned them (each names its table)."""
    return [{"delete": {"rule": {"family": FAMILY, "table": r["table"], "chain": r["chain"],
                                 "handle": r["handle"]}}} for r in found]
