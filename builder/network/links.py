"""Links, addresses and routes through pyroute2 (netlink; never the `ip` command): the network's Linux
bridge in the netns pydock runs in, and a container's veth pair (host end in the bridge, the other end
as ethN inside the container's namespace, with its address, loopback and default route).
pyroute2 costs ~100 ms to import: only this module uses it, inside its functions (through netlink_lib,
which loads only the parts we need)."""

from __future__ import annotations

import ipaddress
import os
from contextlib import contextmanager

from builder.errors import BuildError
from builder.network.netlink_lib import iproute_class, netlink_error


class LinkError(BuildError):
    pass


@contextmanager
def _netlink(what: str):
    """A netlink refusal as one line naming what we were doing."""
    NetlinkError = netlink_error()

    try:
        yield
    except NetlinkError as e:
        raise LinkError(f"{what}: {os.strerror(e.code) if e.code else e}") from None


def _iproute(netns: str | None = None):
    IPRoute = iproute_class()

    return IPRoute(netns=netns, flags=0) if netns else IPRoute()


_shared = None  # the netlink socket of an open host() block


@contextmanager
def host():
    """One netlink socket for every host-side call inside the block (each new one costs ~10 ms)."""
    global _shared
    if _shared is not None:
        yield _shared
        return
    with _iproute() as ipr:
        _shared = ipr
        try:
            yield ipr
        finally:
            _shared = None


def routes_in_use() -> list[ipaddress.IPv4Network]:
    """The destinations of the main table's routes and the local addresses' subnets of this netns (a new
    network's default subnet must overlap none of them)."""
    taken = []
    with host() as ipr:
        for route in ipr.get_routes(family=2, table=254):
            if route["dst_len"]:
                taken.append(ipaddress.ip_network(f"{route.get_attr('RTA_DST')}/{route['dst_len']}", strict=False))
        for addr in ipr.get_addr(family=2):
            taken.append(ipaddress.ip_network(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False))
    return [t for t in taken if not t.is_loopback]


def link_exists(name: str) -> bool:
    with host() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> bool:
    """The bridge with the gateway address, up. Returns whether it was made now; a link of that name that is
    not a bridge (a veth, a dummy someone made) is refused."""
    with host() as ipr, _netlink(f"creating bridge {name}"):
        found = ipr.get_links(ifname=name) if ipr.link_lookup(ifname=name) else []
        if found:
            kind = (found[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "no kind")
            if kind != "bridge":
                raise LinkError(f"cannot use {name} as a network's bridge: a link of that name exists and is "
                                f"not a bridge ({kind})")
            _check_bridge_address(ipr, name, found[0]["index"], gateway, prefixlen)
            return False
        ipr.link("add", ifname=name, kind="bridge")
        index = ipr.link_lookup(ifname=name)[0]
        try:
            ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            ipr.link("set", index=index, state="up")
        except BaseException:
            ipr.link("del", index=index)
            raise
        return True


def _check_bridge_address(ipr, name: str, index: int, gateway: str, prefixlen: int) -> None:
    """An existing bridge must carry the network's gateway address. One with no IPv4 address at all is ours
    from a run killed between creating it and addressing it: it gets the address. One with other addresses
    belongs to another network or to someone else, and is refused."""
    found = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(family=2, index=index)]
    if f"{gateway}/{prefixlen}" in found:
        return
    if found:
        raise LinkError(f"cannot use bridge {name}: it has {', '.join(found)}, not the network's gateway "
                        f"{gateway}/{prefixlen}")
    ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
    ipr.link("set", index=index, state="up")


def delete_link(name: str) -> None:
    """Remove a link (a bridge, or a veth with its peer) if it is there."""
    NetlinkError = netlink_error()

    with host() as ipr:
        for index in ipr.link_lookup(ifname=name):
            try:
                ipr.link("del", index=index)
            except NetlinkError as e:
                if e.code != 19:  # ENODEV: gone meanwhile
                    raise


def add_veth(host_name: str, bridge: str, netns_path: str, ifname: str, address: str, prefixlen: int,
             gateway: str | None, mac: str) -> None:
    """A veth pair: host_name in the bridge, ifname inside the namespace at netns_path with the address
    and MAC, loopback up, and (gateway given) the default route through it."""
    NetlinkError = netlink_error()

    with host() as ipr, _netlink(f"creating veth {host_name} in bridge {bridge}"):
        ipr.link("add", ifname=host_name, kind="veth", peer={"ifname": ifname, "net_ns_fd": netns_path})
        try:
            index = ipr.link_lookup(ifname=host_name)[0]
            master = ipr.link_lookup(ifname=bridge)[0]
            ipr.link("set", index=index, master=master, state="up")
            with _iproute(netns_path) as ns:
                lo = ns.link_lookup(ifname="lo")[0]
                ns.link("set", index=lo, state="up")
                inner = ns.link_lookup(ifname=ifname)[0]
                ns.link("set", index=inner, address=mac)
                ns.addr("add", index=inner, address=address, prefixlen=prefixlen)
                ns.link("set", index=inner, state="up")
                if gateway:
                    try:
                        ns.route("add", gateway=gateway)
                    except NetlinkError as e:
                        if e.code != 17:  # EEXIST: an earlier network of the container has the default route
                            raise
        except BaseException:
            delete_link(host_name)
            raise


def loopback_up(netns_path: str) -> None:
    with _iproute(netns_path) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
