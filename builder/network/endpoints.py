"""A container's network, from start to stop: its namespace (STORE/netns/<id>, the SandboxKey), one
endpoint per network (an address from the network's subnet, a veth into its bridge), its hostname,
hosts and resolv.conf files, and the same undone when it stops (docker releases the address on stop;
an --ip address is asked for again at the next start). Every change happens under the networks' lock.

Name resolution: each container's /etc/hosts lists every other container on its user-defined networks
(name, aliases, short id), and is rewritten in place whenever a container joins or leaves one of them.
Chosen over an embedded DNS server because busybox's wget and many static tools read only /etc/hosts,
no extra process or port is needed in each namespace, and a restarted container gets the current list.

reconcile() undoes the endpoints of containers whose monitor is gone (a SIGKILLed monitor and guard, a
crash): the next pydock command finds and releases them."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from pathlib import Path

from builder.container.liveness import ACTIVE, live_state
from builder.container.records import ContainerError, Records
from builder.network import addresses, etcfiles
from builder.network.store import PREDEFINED, Networks, NetworkError, bridge_name, pool_lock

USER_MODES_EXCLUDED = ("none", "host", "bridge", "default")


def netns_path(store_root: Path, container_id: str) -> Path:
    return Path(store_root) / "netns" / container_id


def host_ifname(container_id: str, network_id: str) -> str:
    """The veth's host end: docker's veth + 7 hex digits, derived so a later cleanup can find it."""
    return "veth" + hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()[:7]


def empty_endpoint(network_id: str, ip: str | None = None, aliases: list[str] | None = None) -> dict:
    """A container's entry under NetworkSettings.Networks before it runs (docker's EndpointSettings)."""
    return {"IPAMConfig": {"IPv4Address": ip} if ip else None, "Links": None, "Aliases": list(aliases or []) or None,
            "MacAddress": "", "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DriverOpts": None, "DNSNames": None}


def empty_settings() -> dict:
    return {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {}, "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {}}


# -- at create: the options checked, the record's network part
def settings_for_create(store_root: Path, records: Records, mode: str, ip: str | None, aliases: list[str],
                        hostname: str | None) -> tuple[str, dict]:
    """(HostConfig.NetworkMode, NetworkSettings) for run/create's --network, --ip, --network-alias."""
    settings = empty_settings()
    if mode == "default":
        mode = "bridge"
    if mode.startswith("container:"):
        if ip or aliases:
            raise NetworkError("conflicting options: --ip and --network-alias cannot be used with --network container")
        if hostname:
            raise NetworkError("conflicting options: hostname and the network mode")
        target = records.lookup(mode.split(":", 1)[1])
        return "container:" + target["Id"], settings
    user_defined = mode not in PREDEFINED
    if ip and not user_defined:
        raise NetworkError("user specified IP address is supported on user defined networks only")
    if aliases and not user_defined:
        raise NetworkError("network-scoped alias is supported only for containers in user defined networks")
    if mode in ("none", "host"):
        return mode, settings
    networks = Networks(store_root)
    if mode == "bridge":
        known = [d for d in networks.all() if d["Name"] == "bridge"]
        settings["Networks"]["bridge"] = empty_endpoint(known[0]["Id"] if known else "")
        return mode, settings
    doc = networks.lookup(mode)
    if doc["Name"] in ("none", "host"):
        return doc["Name"], settings
    if ip and not doc.get("UserSubnet"):
        raise NetworkError("user specified IP address is supported only when connecting to networks with user "
                           "configured subnets")
    if ip:
        with networks.locked():
            in_use = {e["IPAddress"] for e in networks.endpoints(doc["Id"]).values()}
            addresses.allocate(doc["IPAM"]["Config"][0], in_use, ip)
    settings["Networks"][doc["Name"]] = empty_endpoint(doc["Id"], ip, aliases)
    return doc["Name"], settings


# -- at start
def attach(store_root: Path, records: Records, container_id: str) -> dict:
    """Everything the container's network needs before the runtime creates it; returns the updated record
    (NetworkSettings filled in, HostsPath/ResolvConfPath/HostnamePath set). Undone on failure."""
    store_root = Path(store_root)
    doc = records.load(container_id)
    mode = doc["HostConfig"].get("NetworkMode") or "none"
    cdir = records.path(container_id)
    hostname = doc["Config"].get("Hostname") or container_id[:12]
    files = {"HostnamePath": cdir / "hostname", "HostsPath": cdir / "hosts", "ResolvConfPath": cdir / "resolv.conf"}
    if mode.startswith("container:"):
        return _join_container(records, container_id, mode.split(":", 1)[1])
    if mode in ("none", "host"):
        if mode == "host":
            hostname = doc["Config"].get("Hostname") or os.uname().nodename
        _write_new(files["HostnamePath"], hostname + "\n")
        _write_new(files["HostsPath"], etcfiles.host_hosts() if mode == "host" else etcfiles.hosts([], []))
        _write_new(files["ResolvConfPath"], etcfiles.resolv_conf(mode))
        with records.edit(container_id) as doc:
            doc.update({k: os.fspath(v) for k, v in files.items()})
            doc["NetworkSettings"] = dict(empty_settings(), **{"Ports": (doc.get("NetworkSettings") or {}).get("Ports") or {}})
        return doc
    from builder.network import links

    networks = Networks(store_root)
    with networks.locked(), links.host():
        try:
            _reconcile_locked(store_root, networks, records)
            sandbox = netns_path(store_root, container_id)
            sandbox.parent.mkdir(exist_ok=True)
            from builder.network import netns

            netns.remove(os.fspath(sandbox))
            netns.create(os.fspath(sandbox))
            wanted = dict((doc.get("NetworkSettings") or {}).get("Networks") or {})
            with records.edit(container_id) as doc:
                doc.update({k: os.fspath(v) for k, v in files.items()})
                settings = doc.setdefault("NetworkSettings", empty_settings())
                settings.update(SandboxKey=os.fspath(sandbox), SandboxID=hashlib.sha256(
                    os.fspath(sandbox).encode()).hexdigest())
            _write_new(files["HostnamePath"], hostname + "\n")
            _write_new(files["ResolvConfPath"], etcfiles.resolv_conf("bridge"))
            _write_new(files["HostsPath"], etcfiles.hosts([], []))
            for index, name in enumerate(wanted):
                connect_running(store_root, networks, records, container_id, name, wanted[name], index)
            if not wanted:
                from builder.network import links

                links.loopback_up(os.fspath(sandbox))
        except BaseException:
            detach(store_root, records, container_id)
            raise
    return records.load(container_id)


def _join_container(records: Records, container_id: str, target_id: str) -> dict:
    """--network container:X: X's namespace, hostname and files (X must be running)."""
    try:
        target = records.load(target_id)
    except ContainerError:
        raise NetworkError(f"cannot join network of a non running container: {target_id[:12]}") from None
    if live_state(target)["Status"] not in ACTIVE or not target.get("HostsPath"):
        raise NetworkError(f"cannot join network of a non running container: {target['Name'].lstrip('/')}")
    settings = target.get("NetworkSettings") or {}
    key = settings.get("SandboxKey") or ""
    if not key and (target["HostConfig"].get("NetworkMode") != "host"):
        key = f"/proc/{target['State']['Pid']}/ns/net"
    with records.edit(container_id) as doc:
        for k in ("HostsPath", "ResolvConfPath", "HostnamePath"):
            doc[k] = target[k]
        doc["NetworkSettings"] = dict(empty_settings(), SandboxKey=key)
        doc["JoinedHostNetwork"] = target["HostConfig"].get("NetworkMode") == "host"
        doc["Config"]["Hostname"] = target["Config"].get("Hostname") or target["Id"][:12]
    return doc


def connect_running(store_root: Path, networks: Networks, records: Records, container_id: str, name: str,
                    wanted: dict, index: int) -> None:
    """One endpoint of a running (or starting) container: address, veth ethN, record, hosts files."""
    from builder.network import links

    doc = records.load(container_id)
    if name == "bridge":
        net = default_bridge_up(networks)
    else:
        net = networks.lookup(wanted.get("NetworkID") or name)
        ensure_bridge(networks, net)
    config = net["IPAM"]["Config"][0]
    subnet = ipaddress.ip_network(config["Subnet"])
    hostname = doc["Config"].get("Hostname") or container_id[:12]
    endpoint = _add_endpoint(networks, net, container_id, doc["NetworkSettings"]["SandboxKey"], index,
                             {"Name": doc["Name"].lstrip("/"), "Hostname": hostname,
                              "Aliases": list(wanted.get("Aliases") or [])},
                             (wanted.get("IPAMConfig") or {}).get("IPv4Address"))
    ip = endpoint["IPAddress"]
    with records.edit(container_id) as doc:
        settings = doc["NetworkSettings"]
        entry = dict(empty_endpoint(net["Id"]), **{k: v for k, v in wanted.items() if k in ("IPAMConfig", "Aliases")})
        entry.update(NetworkID=net["Id"], EndpointID=endpoint["EndpointID"], Gateway=config["Gateway"],
                     IPAddress=ip, IPPrefixLen=subnet.prefixlen, MacAddress=endpoint["MacAddress"],
                     DNSNames=_names(container_id, endpoint) if net["Name"] not in PREDEFINED else None)
        settings["Networks"][net["Name"]] = entry
        if net["Name"] == "bridge":  # docker's top-level fields describe the default bridge only
            settings.update(EndpointID=entry["EndpointID"], Gateway=entry["Gateway"], IPAddress=ip,
                            IPPrefixLen=subnet.prefixlen, MacAddress=entry["MacAddress"])
    refresh_hosts(networks, records, _peers_of(networks, container_id) | {container_id})


def _add_endpoint(networks: Networks, net: dict, owner: str, sandbox: str, index: int, names: dict,
                  static: str | None) -> dict:
    """Allocate an address on net for owner (saved at once: it is ours from then on) and plug a veth
    into the bridge with its other end as eth<index> in the namespace at sandbox."""
    from builder.network import links

    config = net["IPAM"]["Config"][0]
    endpoints = networks.endpoints(net["Id"])
    endpoints.pop(owner, None)
    try:
        ip = addresses.allocate(config, {e["IPAddress"] for e in endpoints.values()}, static)
    except addresses.AddressError as e:
        raise NetworkError(str(e)) from None
    endpoint = dict(names, EndpointID=os.urandom(32).hex(), IPAddress=ip, MacAddress=addresses.mac_for(ip),
                    HostIf=host_ifname(owner, net["Id"]), IfName=f"eth{index}")
    endpoints[owner] = endpoint
    networks.save_endpoints(net["Id"], endpoints)
    links.delete_link(endpoint["HostIf"])
    links.add_veth(endpoint["HostIf"], bridge_name(net), sandbox, endpoint["IfName"], ip,
                   ipaddress.ip_network(config["Subnet"]).prefixlen,
                   None if net["Internal"] else config["Gateway"], endpoint["MacAddress"])
    return endpoint


# -- a build's RUN step (no container record: the endpoint names the building process instead)
def attach_build(store_root: Path, owner: str, sandbox: Path) -> None:
    """`pydock build --network bridge`: a namespace at sandbox with an endpoint on the default bridge."""
    from builder.container.liveness import process_start_time
    from builder.network import links, netns

    networks = Networks(store_root)
    with networks.locked(), links.host():
        try:
            _reconcile_locked(Path(store_root), networks, Records(store_root))
            netns.create(os.fspath(sandbox))
            net = default_bridge_up(networks)
            _add_endpoint(networks, net, owner, os.fspath(sandbox), 0,
                          {"Name": owner, "Hostname": owner, "Aliases": [], "OwnerPid": os.getpid(),
                           "OwnerStart": process_start_time(os.getpid())}, None)
        except BaseException:
            detach_build(store_root, owner, sandbox)
            raise


def detach_build(store_root: Path, owner: str, sandbox: Path) -> None:
    from builder.network import netns

    networks = Networks(store_root)
    with networks.locked():
        _drop_idle_default_bridge(networks, _release_endpoints(networks, owner))
        netns.remove(os.fspath(sandbox))


def ensure_bridge(networks: Networks, net: dict) -> None:
    """The network's bridge in our netns, with the firewall table rebuilt when it was missing."""
    from builder.network import firewall, links

    config = net["IPAM"]["Config"][0]
    prefix = ipaddress.ip_network(config["Subnet"]).prefixlen
    if links.ensure_bridge(bridge_name(net), config["Gateway"], prefix):
        try:
            if not net["Internal"]:
                firewall.enable_forwarding()
            sync_firewall(networks)
        except BaseException:
            links.delete_link(bridge_name(net))
            raise


def default_bridge_up(networks: Networks) -> dict:
    """The store's default network with its bridge up. Its pool is picked (again, when the bridge went
    with the last container) under the netns-wide pool lock, skipping every subnet a link of this netns
    routes: two stores never share one."""
    from builder.network import links

    with pool_lock():
        net = networks.ensure_default_bridge(links.routes_in_use)
        if not links.link_exists(bridge_name(net)):
            net = networks.refresh_idle_default(net, links.routes_in_use())
        ensure_bridge(networks, net)
    return net


def _drop_idle_default_bridge(networks: Networks, left: list[str]) -> None:
    """When an endpoint on the default network left (left: the networks released) and it was the last one,
    the bridge goes with its address and route (its pool is free for any store of this netns) and the
    store's table is rebuilt without it. User-defined networks keep theirs until `network rm`."""
    if "bridge" not in left:
        return
    net = next((d for d in networks.all() if d["Name"] == "bridge"), None)
    if net is None or networks.endpoints(net["Id"]):
        return
    from builder.network import links

    if links.link_exists(bridge_name(net)):
        links.delete_link(bridge_name(net))
        sync_firewall(networks)


def sync_firewall(networks: Networks, removed: str | None = None) -> None:
    """Rebuild the store's table from every bridge network of the store whose bridge exists here (other
    stores' tables stay as they are); the table goes when there is nothing left to put in it."""
    from builder.network import firewall, links

    bridges = [{"bridge": bridge_name(d), "subnet": d["IPAM"]["Config"][0]["Subnet"], "internal": d["Internal"]}
               for d in networks.all() if d["Driver"] == "bridge" and d["Id"] != removed
               and links.link_exists(bridge_name(d))]
    from builder.network.ports import recorded_rules

    table = firewall.table_for(networks.dir.parent)
    extra = recorded_rules(networks.dir.parent)
    if not bridges and not extra:
        firewall.remove_table(table)
        return
    firewall.apply(firewall.ruleset(table, bridges, extra))


def _names(container_id: str, endpoint: dict) -> list[str]:
    return list(dict.fromkeys([endpoint["Name"], *endpoint["Aliases"], container_id[:12]]))


# -- at stop, rm, and after a crash
def detach(store_root: Path, records: Records, container_id: str) -> None:
    """Release everything attach made (idempotent; the record may be gone)."""
    from builder.network.ports import release_container

    networks = Networks(store_root)
    if not networks.dir.is_dir() and not netns_path(store_root, container_id).exists():
        return
    with networks.locked():
        release_container(records, container_id)  # its published ports: the proxy and the DNAT rules
        peers = _peers_of(networks, container_id)
        left = _release_endpoints(networks, container_id)
        from builder.network import netns

        netns.remove(os.fspath(netns_path(store_root, container_id)))
        try:
            with records.edit(container_id) as doc:
                settings = doc.get("NetworkSettings")
                if settings and not (doc["HostConfig"].get("NetworkMode") or "").startswith("container:"):
                    for name, entry in settings.get("Networks", {}).items():
                        settings["Networks"][name] = empty_endpoint(entry.get("NetworkID", ""),
                                                                    (entry.get("IPAMConfig") or {}).get("IPv4Address"),
                                                                    entry.get("Aliases"))
                    ports = settings.get("Ports") or {}
                    networks_part = settings["Networks"]
                    settings.clear()
                    settings.update(empty_settings(), Networks=networks_part, Ports=ports)
        except ContainerError:
            pass
        refresh_hosts(networks, records, peers)
        _drop_idle_default_bridge(networks, left)


def _release_endpoints(networks: Networks, owner: str) -> list[str]:
    """Every endpoint of owner: veth deleted, address returned (pyroute2 only when there is one).
    Returns the names of the networks it left."""
    found = [(net, networks.endpoints(net["Id"])) for net in networks.all()]
    found = [(net, endpoints) for net, endpoints in found if owner in endpoints]
    if not found:
        return []
    from builder.network import links

    with links.host():
        for net, endpoints in found:
            links.delete_link(endpoints.pop(owner)["HostIf"])
            networks.save_endpoints(net["Id"], endpoints)
    return [net["Name"] for net, _ in found]


def disconnect_one(store_root: Path, records: Records, container_id: str, net: dict) -> None:
    """Remove one network's endpoint from a running container (its other networks stay)."""
    from builder.network import links

    networks = Networks(store_root)
    with networks.locked():
        peers = _peers_of(networks, container_id)
        endpoints = networks.endpoints(net["Id"])
        endpoint = endpoints.pop(container_id, None)
        if endpoint is not None:
            links.delete_link(endpoint["HostIf"])
            networks.save_endpoints(net["Id"], endpoints)
        refresh_hosts(networks, records, peers | {container_id})
        _drop_idle_default_bridge(networks, [net["Name"]] if endpoint is not None else [])


def _peers_of(networks: Networks, container_id: str) -> set[str]:
    """The containers sharing a user-defined network with this one."""
    peers = set()
    for net in networks.all():
        if net["Name"] in PREDEFINED:
            continue
        endpoints = networks.endpoints(net["Id"])
        if container_id in endpoints:
            peers |= set(endpoints)
    peers.discard(container_id)
    return peers


def refresh_hosts(networks: Networks, records: Records, container_ids: set[str]) -> None:
    """Rewrite the hosts file of each (running) container from the current endpoints, in place."""
    nets = [(net, networks.endpoints(net["Id"])) for net in networks.all() if net["Driver"] == "bridge"]
    for cid in container_ids:
        path = records.path(cid) / "hosts"
        if not path.exists():
            continue
        own, peers = [], []
        for net, endpoints in nets:
            mine = endpoints.get(cid)
            if mine is None:
                continue
            own.append((mine["IPAddress"], mine["Hostname"]))
            if net["Name"] in PREDEFINED:
                continue
            peers += [(e["IPAddress"], _names(other, e)) for other, e in sorted(endpoints.items()) if other != cid]
        etcfiles.write_in_place(path, etcfiles.hosts(own[:1], peers))


def _stale(store_root: Path, networks: Networks, records: Records) -> set[str]:
    """Containers holding endpoints or a netns while their monitor is gone."""
    from builder.container.liveness import process_start_time

    owners, builds = set(), {}
    if networks.dir.is_dir():
        for entry in os.listdir(networks.dir):
            if len(entry) == 64:
                for owner, endpoint in networks.endpoints(entry).items():
                    if "OwnerPid" in endpoint:
                        builds[owner] = endpoint
                    else:
                        owners.add(owner)
    ns_dir = Path(store_root) / "netns"
    if ns_dir.is_dir():
        owners |= set(os.listdir(ns_dir))
    stale = {owner for owner, e in builds.items() if process_start_time(e["OwnerPid"]) != e["OwnerStart"]}
    for cid in owners:
        try:
            doc = records.load(cid)
        except (ContainerError, ValueError):
            stale.add(cid)
            continue
        if live_state(doc)["Status"] not in ACTIVE:
            stale.add(cid)
    return stale


def _reconcile_locked(store_root: Path, networks: Networks, records: Records) -> None:
    for cid in _stale(store_root, networks, records):
        detach(store_root, records, cid)


def reconcile(store_root: Path) -> None:
    """Release what containers without a monitor still hold (cheap when there is nothing: files only)."""
    store_root = Path(store_root)
    networks = Networks(store_root)
    if not networks.dir.is_dir():
        return
    records = Records(store_root)
    if not _stale(store_root, networks, records):
        return
    with networks.locked():
        _reconcile_locked(store_root, networks, records)


def _write_new(path: Path, text: str) -> None:
    etcfiles.write_in_place(path, text)
