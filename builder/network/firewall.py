"""pydock's own nftables table (`ip pydock`), spoken to through nft's JSON interface (`nft -j -f -`), so
no rule is ever built by pasting strings into a command line. Nothing outside this table is touched:
the host's own firewall stays as it was. Every rule carries the id of the container it serves as its
comment, which is how a container's rules are found again (on stop, and when a dead container's rules
are reconciled).

  chain prerouting   nat hook, dstnat: traffic to one of our addresses -> publish
  chain output       nat hook, -100: the host's own traffic to a non-loopback local address -> publish
  chain publish      one DNAT rule per published port (ports.py)
"""

from __future__ import annotations

import json
import shutil
import subprocess

FAMILY, TABLE = "ip", "pydock"
PUBLISH_CHAIN = "publish"


class FirewallError(RuntimeError):
    """nft refused a change (its own message)."""


def available() -> bool:
    return shutil.which("nft") is not None


def run(commands: list[dict]) -> None:
    """Apply commands (nft JSON objects such as {"add": {"rule": ...}}) as one transaction."""
    _nft(["-j", "-f", "-"], json.dumps({"nftables": commands}))


def _nft(args: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise FirewallError("nft is not installed (Debian package nftables)") from None
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise FirewallError(f"nft: {lines[0] if lines else 'failed'}")
    return done.stdout


def match(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


LOCAL_DESTINATION = match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
NOT_LOOPBACK = match(payload("ip", "daddr"), {"prefix": {"addr": "127.0.0.0", "len": 8}}, "!=")


def base_commands() -> list[dict]:
    """The table and its chains (adding what exists already changes nothing)."""
    table = {"family": FAMILY, "table": TABLE}
    return [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"chain": {**table, "name": PUBLISH_CHAIN}}},
        {"add": {"chain": {**table, "name": "prerouting", "type": "nat", "hook": "prerouting", "prio": -100,
                           "policy": "accept"}}},
        {"add": {"chain": {**table, "name": "output", "type": "nat", "hook": "output", "prio": -100,
                           "policy": "accept"}}},
    ]


def ensure_base() -> None:
    """The table, its chains, and the two jumps into publish (each added once)."""
    run(base_commands())
    jumps = {r["chain"] for r in rules() if r.get("comment") == "pydock-publish"}
    table = {"family": FAMILY, "table": TABLE}
    wanted = {"prerouting": [LOCAL_DESTINATION], "output": [NOT_LOOPBACK, LOCAL_DESTINATION]}
    run([{"add": {"rule": {**table, "chain": chain, "comment": "pydock-publish",
                           "expr": [*matches, {"jump": {"target": PUBLISH_CHAIN}}]}}}
         for chain, matches in wanted.items() if chain not in jumps])


def rules(chain: str | None = None) -> list[dict]:
    """The rules of our table (or of one chain), each with its handle and comment; [] without a table."""
    try:
        out = _nft(["-j", "-a", "list", "table", FAMILY, TABLE])
    except FirewallError:
        return []
    found = [item["rule"] for item in json.loads(out).get("nftables", []) if "rule" in item]
    return [r for r in found if chain is None or r["chain"] == chain]


def delete_commands(found: list[dict]) -> list[dict]:
    return [{"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": r["chain"], "handle": r["handle"]}}}
            for r in found]


def owners(chain: str) -> set[str]:
    """The container ids that have rules in chain."""
    return {r["comment"] for r in rules(chain) if r.get("comment")}
