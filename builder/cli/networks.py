"""pydock network create, ls, inspect, rm, prune, connect and disconnect: docker's network verbs over
builder.network (records in the store, bridges and veths through pyroute2). Errors exit 125."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _root(args) -> Path:
    return Path(os.path.abspath(args.root))


def _networks(args):
    from builder.network.endpoints import reconcile
    from builder.network.store import Networks

    reconcile(_root(args))  # what a killed container left is released before anything is shown or removed
    return Networks(_root(args))


def cmd_create(args) -> int:
    from builder.container.names import VALID_NAME
    from builder.network import links
    from builder.network.endpoints import ensure_bridge
    from builder.network.store import NetworkError

    if args.driver != "bridge":
        raise NetworkError(f"plugin \"{args.driver}\" not found: only the bridge driver is supported")
    if args.name in ("bridge", "host", "none", "default"):
        raise NetworkError(f"{args.name} is a pre-defined network and cannot be created")
    if not VALID_NAME.match(args.name):
        raise NetworkError(f"invalid network name {args.name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    labels = dict(label.partition("=")[::2] for label in args.label)
    networks = _networks(args)
    with networks.locked():
        doc = networks.create(args.name, subnet=args.subnet, gateway=args.gateway, internal=args.internal,
                              labels=labels, taken_routes=None if args.subnet else links.routes_in_use())
        try:
            ensure_bridge(networks, doc)
        except BaseException:
            networks.remove(doc["Id"])
            raise
    print(doc["Id"])
    return 0


def _matches(doc: dict, filters: list[str]) -> bool:
    from builder.network.store import NetworkError

    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise NetworkError(f"bad format of filter (expected name=value): {item}")
        if key == "name":
            ok = value in doc["Name"]
        elif key == "id":
            ok = doc["Id"].startswith(value)
        elif key == "driver":
            ok = doc["Driver"] == value
        elif key == "type":
            ok = (doc["Name"] in ("bridge", "host", "none")) == (value == "builtin")
        elif key == "label":
            k, _, v = value.partition("=")
            ok = k in doc["Labels"] and (not v or doc["Labels"][k] == v)
        else:
            raise NetworkError(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def cmd_ls(args) -> int:
    from builder.cli.formatting import print_table
    from builder.network import links

    networks = _networks(args)
    with networks.locked():
        networks.ensure_default_bridge(links.routes_in_use)
        docs = [d for d in networks.all() if _matches(d, args.filter)]
    if args.quiet:
        for doc in docs:
            print(doc["Id"] if args.no_trunc else doc["Id"][:12])
        return 0
    rows = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
    rows += [[d["Id"] if args.no_trunc else d["Id"][:12], d["Name"], d["Driver"], d["Scope"]] for d in docs]
    print_table(rows)
    return 0


def inspect_doc(networks, doc: dict) -> dict:
    """docker's shape: the record with the attached containers."""
    import ipaddress

    out = dict(doc)
    prefix = ipaddress.ip_network(doc["IPAM"]["Config"][0]["Subnet"]).prefixlen if doc["IPAM"]["Config"] else 0
    out["Containers"] = {cid: {"Name": e["Name"], "EndpointID": e["EndpointID"], "MacAddress": e["MacAddress"],
                               "IPv4Address": f"{e['IPAddress']}/{prefix}", "IPv6Address": ""}
                         for cid, e in sorted(networks.endpoints(doc["Id"]).items())}
    keys = ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable", "Ingress",
            "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"]
    return {k: out[k] for k in keys}


def network_inspect(args, ref: str) -> dict | None:
    """For `pydock inspect` too: a network's inspect document, or None."""
    from builder.network.store import NetworkError, Networks

    networks = Networks(_root(args))
    if not networks.dir.is_dir():
        return None
    try:
        return inspect_doc(networks, networks.lookup(ref))
    except NetworkError:
        return None


def cmd_inspect(args) -> int:
    from builder.cli.formatting import print_inspect
    from builder.network.store import NetworkError

    networks = _networks(args)
    found, missing = [], []
    for ref in args.networks:
        if ref == "bridge":
            from builder.network import links

            networks.ensure_default_bridge(links.routes_in_use)
        try:
            found.append(inspect_doc(networks, networks.lookup(ref)))
        except NetworkError:
            missing.append(ref)
    print_inspect(found, args.format)
    for ref in missing:
        print(f"pydock: error: network {ref} not found", file=sys.stderr)
    return 125 if missing else 0


def _remove(networks, doc: dict) -> None:
    from builder.network import links
    from builder.network.endpoints import sync_firewall
    from builder.network.store import PREDEFINED, NetworkError, bridge_name

    if doc["Name"] in PREDEFINED:
        raise NetworkError(f"{doc['Name']} is a pre-defined network and cannot be removed")
    with networks.locked():
        if networks.endpoints(doc["Id"]):
            raise NetworkError(f"error while removing network: network {doc['Name']} id {doc['Id']} has active endpoints")
        bridge = bridge_name(doc)
        if links.link_exists(bridge):
            links.delete_link(bridge)
            sync_firewall(networks, removed=doc["Id"])
        networks.remove(doc["Id"])


def cmd_rm(args) -> int:
    from builder.network.store import NetworkError

    networks = _networks(args)
    failed = 0
    for ref in args.networks:
        try:
            _remove(networks, networks.lookup(ref))
        except NetworkError as e:
            print(f"pydock: error: {e}", file=sys.stderr)
            failed = 125
            continue
        print(ref)
    return failed


def cmd_prune(args) -> int:
    from builder.cli.system import confirmed
    from builder.network.store import PREDEFINED

    if not confirmed(args, "This will remove all custom networks not used by at least one container."):
        return 0
    networks = _networks(args)
    deleted = []
    with networks.locked():
        for doc in networks.all():
            if doc["Name"] not in PREDEFINED and not networks.endpoints(doc["Id"]):
                _remove(networks, doc)
                deleted.append(doc["Name"])
    if deleted:
        print("Deleted Networks:")
        for name in deleted:
            print(name)
    return 0


def _container(args):
    from builder.container.records import Records

    records = Records(_root(args))
    return records, records.lookup(args.container)


def cmd_connect(args) -> int:
    from builder.container import control
    from builder.network import addresses
    from builder.network.endpoints import connect_running, empty_endpoint
    from builder.network.store import PREDEFINED, NetworkError

    networks = _networks(args)
    records, doc = _container(args)
    net = networks.lookup(args.network)
    mode = doc["HostConfig"].get("NetworkMode") or ""
    if mode in ("none", "host") or mode.startswith("container:") or net["Name"] in ("none", "host"):
        raise NetworkError("container sharing network namespace with another container or host cannot be "
                           "connected to any other network")
    if (args.ip or args.alias) and net["Name"] in PREDEFINED:
        raise NetworkError("user specified IP address and network-scoped aliases are supported on user defined "
                           "networks only")
    with networks.locked():
        current = (doc.get("NetworkSettings") or {}).get("Networks") or {}
        if net["Name"] in current:
            raise NetworkError(f"endpoint with name {doc['Name'].lstrip('/')} already exists in network {net['Name']}")
        if args.ip and not net.get("UserSubnet"):
            raise NetworkError("user specified IP address is supported only when connecting to networks with "
                               "user configured subnets")
        if args.ip:
            in_use = {e["IPAddress"] for e in networks.endpoints(net["Id"]).values()}
            try:
                addresses.allocate(net["IPAM"]["Config"][0], in_use, args.ip)
            except addresses.AddressError as e:
                raise NetworkError(str(e)) from None
        wanted = empty_endpoint(net["Id"], args.ip, args.alias)
        with records.edit(doc["Id"]) as current_doc:
            current_doc.setdefault("NetworkSettings", {}).setdefault("Networks", {})[net["Name"]] = wanted
        if control.is_running(records, doc["Id"]):
            try:
                connect_running(_root(args), networks, records, doc["Id"], net["Name"], wanted, len(current))
            except BaseException:
                with records.edit(doc["Id"]) as current_doc:
                    current_doc["NetworkSettings"]["Networks"].pop(net["Name"], None)
                from builder.network.endpoints import disconnect_one

                disconnect_one(_root(args), records, doc["Id"], net)
                raise
    return 0


def cmd_disconnect(args) -> int:
    from builder.container import control
    from builder.network.endpoints import disconnect_one
    from builder.network.store import NetworkError

    networks = _networks(args)
    records, doc = _container(args)
    net = networks.lookup(args.network)
    with networks.locked():
        if net["Name"] not in ((doc.get("NetworkSettings") or {}).get("Networks") or {}):
            raise NetworkError(f"container {doc['Id']} is not connected to network {net['Name']}")
        if control.is_running(records, doc["Id"]):
            disconnect_one(_root(args), records, doc["Id"], net)
        with records.edit(doc["Id"]) as current:
            current["NetworkSettings"]["Networks"].pop(net["Name"], None)
    return 0


def add_parsers(sub) -> None:
    network = sub.add_parser("network", help="manage networks")
    verbs = network.add_subparsers(dest="network_command", metavar="COMMAND")

    p = verbs.add_parser("create", help="create a network")
    p.add_argument("-d", "--driver", default="bridge", help="driver (bridge)")
    p.add_argument("--subnet", help="subnet in CIDR form (default: a free 172.17-31.0.0/16 or 192.168.x.0/20)")
    p.add_argument("--gateway", help="the gateway address (default: the subnet's first)")
    p.add_argument("--internal", action="store_true", help="no route out of the network")
    p.add_argument("--label", action="append", default=[], help="set a label KEY=VALUE")
    p.add_argument("name", metavar="NETWORK")
    p.set_defaults(func=cmd_create)

    p = verbs.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true", help="only the ids")
    p.add_argument("--no-trunc", action="store_true", help="full ids")
    p.add_argument("-f", "--filter", action="append", default=[], help="name=, id=, driver=, type=, label=")
    p.set_defaults(func=cmd_ls)

    p = verbs.add_parser("inspect", help="show networks in detail (JSON)")
    p.add_argument("-f", "--format", help="Go-template-like format")
    p.add_argument("networks", metavar="NETWORK", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = verbs.add_parser("rm", aliases=["remove"], help="remove networks")
    p.add_argument("networks", metavar="NETWORK", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = verbs.add_parser("prune", help="remove all unused networks")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_prune)

    p = verbs.add_parser("connect", help="connect a container to a network")
    p.add_argument("--ip", help="IPv4 address")
    p.add_argument("--alias", action="append", default=[], help="network-scoped alias")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_connect)

    p = verbs.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true", help="accepted for docker's sake")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_disconnect)
