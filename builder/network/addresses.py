"""IPv4 address rules (IPAM): parsing --subnet/--gateway/--ip, picking a free pool for a new network as
docker's default pools do (172.17-31.0.0/16, then 192.168.0.0/20 steps), allocating a container's
address (the lowest free one, or the one --ip asked for) and the MAC derived from it (02:42 + the address)."""

from __future__ import annotations

import ipaddress

from builder.errors import BuildError

IPv4Network = ipaddress.IPv4Network
DEFAULT_POOLS = [ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)] + \
                [ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]


class AddressError(BuildError):
    pass


def parse_subnet(text: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise AddressError(f"invalid subnet {text}: invalid CIDR address") from None
    if net.version != 4:
        raise AddressError(f"invalid subnet {text}: only IPv4 subnets are supported")
    if str(net) != text and "/" in text and ipaddress.ip_interface(text).ip != net.network_address:
        raise AddressError(f"invalid subnet {text}: it should be {net}")
    if net.prefixlen > 30:
        raise AddressError(f"invalid subnet {text}: too small for any container (at most /30)")
    return net


def parse_gateway(text: str, net: IPv4Network) -> ipaddress.IPv4Address:
    address = parse_address(text, "gateway")
    if address not in net or address in (net.network_address, net.broadcast_address):
        raise AddressError(f"no matching subnet for gateway {text}")
    return address


def parse_address(text: str, what: str = "IP address") -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise AddressError(f"invalid {what} {text!r}") from None
    if address.version != 4:
        raise AddressError(f"invalid {what} {text!r}: only IPv4 is supported")
    return address


def free_pool(taken: list) -> IPv4Network:
    """The first default pool overlapping none of taken (networks of other networks and routes)."""
    for pool in DEFAULT_POOLS:
        if not any(pool.overlaps(t) for t in taken):
            return pool
    raise AddressError("could not find an available, non-overlapping IPv4 address pool among the defaults "
                       "to assign to the network")


def allocate(config: dict, in_use: set[str], requested: str | None) -> str:
    """An address of the network (config: its IPAM Config entry) that is not in use; requested: --ip."""
    net = ipaddress.ip_network(config["Subnet"])
    gateway = config["Gateway"]
    if requested:
        address = parse_address(requested)
        if address not in net or address in (net.network_address, net.broadcast_address):
            raise AddressError(f"no available IPv4 address on this network's address pools: the address "
                               f"{requested} is outside the subnet {net}")
        if str(address) in in_use or str(address) == gateway:
            raise AddressError(f"Address already in use: {requested}")
        return str(address)
    for address in net.hosts():
        text = str(address)
        if text != gateway and text not in in_use:
            return text
    raise AddressError(f"no available IPv4 addresses on this network's address pools: {net}")


def mac_for(address: str) -> str:
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(address).packed)
