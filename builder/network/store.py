"""Network records in the store: STORE/networks/<id>/network.json (docker's `network inspect` shape, less
the Containers map) and endpoints.json (the containers attached: address, MAC, aliases, veth), all read
and changed under one flock (STORE/networks/lock), so concurrent `run`s, `network create`s and removals
see one consistent state. The predefined networks bridge, host and none are made on first use."""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from builder.atomicfile import atomic_file
from builder.errors import BuildError
from oci_runtime.units import rfc3339

POOL_LOCK_DIRS = ("/run", "/tmp")  # the first writable one holds the lock of pool picking
PREDEFINED = ("bridge", "host", "none")
DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}


class NetworkError(BuildError):
    """A network verb or option failed because of its input or the store's state (docker's exit 125)."""


_HELD: dict[str, list] = {}  # lock path -> [fd, pid, depth]


def store_tag(store_root) -> str:
    """8 hex digits naming a store among the others of a netns (its default bridge, its nftables table)."""
    return hashlib.sha256(os.fsencode(os.path.realpath(store_root))).hexdigest()[:8]


def default_bridge_name(store_root) -> str:
    """The store's own default bridge (docker has one daemon and docker0; a netns here may hold many
    stores, each with its default network on its own pool)."""
    return "pydock-" + store_tag(store_root)  # 15 characters: the kernel's limit


@contextmanager
def pool_lock() -> Iterator[None]:
    """Held while a default network picks its pool and makes its bridge: stores have separate locks, and
    this one keeps two of them from taking one free pool at once (taken after a store's lock, never before)."""
    for folder in POOL_LOCK_DIRS:
        try:
            fd = os.open(os.path.join(folder, "pydock-pools.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            break
        except OSError:
            continue
    else:
        raise NetworkError("cannot open the pool lock pydock-pools.lock in /run or /tmp")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Networks:
    """The networks of one store. Use `with networks.locked():` around every read-modify-write."""

    def __init__(self, store_root: Path):
        self.dir = Path(store_root) / "networks"

    @contextmanager
    def locked(self) -> Iterator["Networks"]:
        """The store-wide network lock, re-entrant within this process (held by path, not by object)."""
        key = os.fspath(self.dir)
        held = _HELD.get(key)
        if held is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            held = _HELD[key] = [fd, os.getpid(), 0]
        held[2] += 1
        try:
            yield self
        finally:
            held[2] -= 1
            if held[2] == 0:
                del _HELD[key]
                os.close(held[0])

    # -- records
    def all(self) -> list[dict]:
        """Every network, the predefined ones first (made here the first time)."""
        with self.locked():
            self._ensure_predefined()
            docs = []
            for entry in sorted(os.listdir(self.dir)):
                if len(entry) == 64:
                    try:
                        docs.append(self._load(entry))
                    except (OSError, ValueError):
                        continue
            return sorted(docs, key=lambda d: (d["Name"] not in PREDEFINED, d["Created"], d["Name"]))

    def lookup(self, ref: str) -> dict:
        """By full id, exact name, or unique id prefix (docker's order)."""
        docs = self.all()
        for key in ("Id", "Name"):
            for doc in docs:
                if doc[key] == ref:
                    return doc
        matches = [d for d in docs if ref and d["Id"].startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NetworkError(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        raise NetworkError(f"network {ref} not found")

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, labels: dict | None = None, bridge_name: str | None = None,
               taken_routes: list | None = None) -> dict:
        """A new bridge network; the subnet is checked against every other network's (and, when it is
        chosen for us, against taken_routes: the routes of the netns we run in)."""
        from builder.network import addresses

        with self.locked():
            docs = self.all()
            if any(d["Name"] == name for d in docs):
                raise NetworkError(f"network with name {name} already exists")
            used = [ipaddress.ip_network(c["Subnet"]) for d in docs for c in d["IPAM"]["Config"]]
            if subnet:
                net = addresses.parse_subnet(subnet)
                clash = next((u for u in used if u.overlaps(net)), None)
                if clash is not None:
                    raise NetworkError(f"invalid pool request: Pool overlaps with other one on this address space "
                                       f"({net} overlaps {clash})")
            else:
                if gateway:
                    raise NetworkError("no matching subnet for gateway " + gateway)
                net = addresses.free_pool(used + list(taken_routes or []))
            gw = addresses.parse_gateway(gateway, net) if gateway else net.network_address + 1
            network_id = secrets.token_hex(32)
            doc = _network_doc(network_id, name, driver, internal, labels or {},
                               bridge_name or "br-" + network_id[:12],
                               [{"Subnet": str(net), "Gateway": str(gw)}])
            doc["UserSubnet"] = bool(subnet)  # ours (not shown): --ip needs a subnet the user chose
            self._save(doc)
            self.save_endpoints(network_id, {})
            return doc

    def remove(self, network_id: str) -> None:
        with self.locked():
            shutil.rmtree(self.dir / network_id, ignore_errors=True)

    def _ensure_predefined(self) -> None:
        if (self.dir / "predefined").exists():
            return
        for name in ("host", "none"):
            self._save(_network_doc(secrets.token_hex(32), name, DRIVERS[name], False, {}, None, []))
        (self.dir / "predefined").write_text("host none\n")

    def ensure_default_bridge(self, taken_routes) -> dict:
        """The default network "bridge" (made on first use, on a subnet that none of taken_routes(), the
        routes of the netns we run in, overlaps)."""
        with self.locked():
            for doc in self.all():
                if doc["Name"] == "bridge":
                    return doc
            doc = self.create("bridge", bridge_name=default_bridge_name(self.dir.parent),
                              taken_routes=taken_routes())
            doc["Options"].update({"com.docker.network.bridge.default_bridge": "true",
                                   "com.docker.network.bridge.enable_icc": "true",
                                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                                   "com.docker.network.driver.mtu": "1500"})
            self._save(doc)
            return doc

    def refresh_idle_default(self, doc: dict, taken: list) -> dict:
        """The default network while its bridge is down (no endpoints): on a free pool again when its subnet
        overlaps taken (the routes of this netns: another store may hold the pool it had last time), and
        under the store's own bridge name (a store made before names were per store has the shared one)."""
        from builder.network import addresses

        with self.locked():
            subnet = ipaddress.ip_network(doc["IPAM"]["Config"][0]["Subnet"])
            others = [ipaddress.ip_network(c["Subnet"]) for d in self.all() if d["Id"] != doc["Id"]
                      for c in d["IPAM"]["Config"]]
            own_name = default_bridge_name(self.dir.parent)
            clash = any(subnet.overlaps(t) for t in others + list(taken))
            if not clash and doc["Options"].get("com.docker.network.bridge.name") == own_name:
                return doc
            if clash:
                net = addresses.free_pool(others + list(taken))
                doc["IPAM"]["Config"] = [{"Subnet": str(net), "Gateway": str(net.network_address + 1)}]
            doc["Options"]["com.docker.network.bridge.name"] = own_name
            self._save(doc)
            return doc

    def _load(self, network_id: str) -> dict:
        with open(self.dir / network_id / "network.json", "rb") as f:
            return json.load(f)

    def _save(self, doc: dict) -> None:
        (self.dir / doc["Id"]).mkdir(parents=True, exist_ok=True)
        _write(self.dir / doc["Id"] / "network.json", doc)

    # -- endpoints (the attached containers; their addresses are the allocations)
    def endpoints(self, network_id: str) -> dict[str, dict]:
        try:
            with open(self.dir / network_id / "endpoints.json", "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def save_endpoints(self, network_id: str, endpoints: dict[str, dict]) -> None:
        if (self.dir / network_id).is_dir():
            _write(self.dir / network_id / "endpoints.json", endpoints)


def _network_doc(network_id: str, name: str, driver: str, internal: bool, labels: dict, bridge: str | None,
                 config: list[dict]) -> dict:
    return {"Name": name, "Id": network_id, "Created": rfc3339(), "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Options": {"com.docker.network.bridge.name": bridge} if bridge else {},
            "Labels": labels}


def bridge_name(doc: dict) -> str:
    return doc["Options"].get("com.docker.network.bridge.name") or "br-" + doc["Id"][:12]


def _write(path: Path, doc) -> None:
    with atomic_file(path, durable=False) as f:
        f.write((json.dumps(doc, indent=1) + "\n").encode())
