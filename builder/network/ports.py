"""Publishing a container's ports, docker's way: every published host port is bound by the container's
proxy process (proxy.py: it holds the port, so a port in use is an error before the container starts, and
it carries loopback and hairpin traffic), and traffic from elsewhere to the host's addresses is DNATed by
the kernel to the container (firewall.py's `publish` chain: no copy through user space). Random host
ports come from the kernel's ephemeral range, lowest free first, as docker's allocator does. A binding
without an address is held on 0.0.0.0 and, where IPv6 works, on [::] with the same port (two entries in
NetworkSettings.Ports, as docker); IPv6 clients reach the container's IPv4 address through the proxy.

publish() runs in the monitor after the container has its address; unpublish() when it stops (and in the
guard, and for containers whose monitor died at the next command, through the networks' reconcile)."""

from __future__ import annotations

import errno
import os
import signal
import socket

from builder.network import firewall, proxy
from builder.network.portspec import split_key, wanted_bindings

ANY_IPV4 = "0.0.0.0"
ANY_IPV6 = "::"


def _ipv6_usable() -> bool:
    """Whether this network namespace takes IPv6 sockets (not when the kernel has no IPv6 or it is
    disabled here): a binding without an address is then held on [::] as well, as docker does."""
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
            return f.read().strip() == "0"
    except OSError:
        return False


class PublishError(RuntimeError):
    """A port cannot be published (in use, privileged, no address to forward to): docker's words."""


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ip_local_port_range (docker allocates random host ports from it)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _unprivileged_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024


def _bind(host_ip: str, port: int, proto: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind | socket.SOCK_CLOEXEC)
    try:
        if family == socket.AF_INET6:  # [::] beside 0.0.0.0 on the same port: two sockets, one per family
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as docker-proxy: TIME_WAIT is no owner
        sock.bind((host_ip, port))
        if proto == "tcp":
            sock.listen(128)
    except OSError as e:
        sock.close()
        address = f"[{host_ip}]:{port}" if ":" in host_ip else f"{host_ip}:{port}"
        if e.errno == errno.EADDRINUSE:
            raise PublishError(f"Bind for {address} failed: port is already allocated") from None
        if e.errno == errno.EACCES:
            raise PublishError(f"cannot publish privileged port {port} ({address}): permission denied "
                               f"(ports below {_unprivileged_start()} need CAP_NET_BIND_SERVICE)") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise PublishError(f"cannot publish {address}: {host_ip} is not an address of this host") from None
        raise PublishError(f"cannot publish {address}: {e.strerror}") from None
    return sock


def _bind_all(host_ips: list[str], port: int, proto: str) -> list[socket.socket]:
    """The port on every address, or on none (what was bound is closed again when one fails)."""
    socks: list[socket.socket] = []
    try:
        for ip in host_ips:
            socks.append(_bind(ip, port, proto))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _hold(host_ips: list[str], host_port: str, proto: str) -> tuple[list[socket.socket], int]:
    """Bind the binding's host port on each address: the given one, the first port of a range free on all
    of them, or a random one."""
    if proto == "sctp":
        raise PublishError("publishing sctp ports is not supported")
    if host_port and "-" not in host_port:
        return _bind_all(host_ips, int(host_port), proto), int(host_port)
    low, high = (int(p) for p in host_port.split("-")) if host_port else ephemeral_range()
    for port in range(low, high + 1):
        try:
            return _bind_all(host_ips, port, proto), port
        except PublishError as e:
            if "already allocated" not in str(e):
                raise
    raise PublishError(f"no free host port for {host_ips[0]}:{host_port or 'random'}/{proto}")


def _host_ips(binding: dict) -> list[str]:
    """The addresses a binding is held on: the one it names, else 0.0.0.0 and (with IPv6) [::]."""
    if binding.get("HostIp"):
        return [binding["HostIp"]]
    return [ANY_IPV4, ANY_IPV6] if _ipv6_usable() else [ANY_IPV4]


def check_free(bindings: dict[str, list[dict]]) -> None:
    """Fail (PublishError) when a fixed host port of bindings is taken now: before anything is created."""
    for key, entries in bindings.items():
        _, proto = split_key(key)
        for b in entries:
            if b["HostPort"] and "-" not in b["HostPort"] and proto != "sctp":
                for sock in _bind_all(_host_ips(b), int(b["HostPort"]), proto):
                    sock.close()


def dnat_commands(table: str, container_id: str, ports: dict, container_ip: str, subnet: str | None) -> list[dict]:
    """The DNAT rules (nft JSON "add" commands) for a container's published ports (NetworkSettings.Ports
    with the real host ports): one per binding on an IPv4 address other than loopback (127.0.0.1 is the
    proxy's alone: the kernel does not route loopback traffic out). Traffic from the container's own
    subnet is left to the proxy, so replies of a hairpin connection come back the way they went."""
    commands = []
    for key, bindings in sorted(ports.items()):
        ctr_port, proto = split_key(key)
        for b in bindings or []:
            host_ip = b["HostIp"]
            if ":" in host_ip or host_ip.startswith("127.") or proto not in ("tcp", "udp"):
                continue
            expr = []
            if host_ip != ANY_IPV4:
                expr.append(firewall.match(firewall.payload("ip", "daddr"), "==", host_ip))
            if subnet:
                expr.append(firewall.match(firewall.payload("ip", "saddr"), "!=", firewall.prefix(subnet)))
            expr += [firewall.match({"meta": {"key": "l4proto"}}, "==", proto),
                     firewall.match(firewall.payload("th", "dport"), "==", int(b["HostPort"])),
                     {"dnat": {"addr": container_ip, "port": ctr_port}}]
            commands.append(firewall.rule(table, firewall.PUBLISH_CHAIN, *expr, comment=container_id))
    return commands


def _rule_port(rule: dict) -> tuple[str, int] | None:
    """(protocol, host port) a DNAT rule of ours matches."""
    proto = port = None
    for e in rule.get("expr") or []:
        m = e.get("match") or {}
        if m.get("left") == {"meta": {"key": "l4proto"}}:
            proto = m.get("right")
        elif m.get("left") == firewall.payload("th", "dport"):
            port = m.get("right")
    return (proto, port) if proto and port else None


def publish(table: str, doc: dict, container_ip: str, subnet: str | None = None) -> tuple[dict, int | None]:
    """Hold every wanted host port, add the DNAT rules (to the store's table), start the proxy. Returns
    NetworkSettings.Ports (every exposed port; the published ones with their real host ports) and the
    proxy's pid (None when nothing is published). Nothing is left behind when it fails."""
    wanted = wanted_bindings(doc)
    ports: dict[str, list[dict] | None] = {key: None for key in (doc.get("Config") or {}).get("ExposedPorts") or {}}
    held: list[proxy.Listener] = []
    try:
        for key, entries in wanted.items():
            ctr_port, proto = split_key(key)
            for b in entries:
                host_ips = _host_ips(b)
                socks, port = _hold(host_ips, b.get("HostPort") or "", proto)
                for host_ip, sock in zip(host_ips, socks):
                    held.append(proxy.Listener(sock, proto, (container_ip, ctr_port)))
                    ports[key] = (ports.get(key) or []) + [{"HostIp": host_ip, "HostPort": str(port)}]
        if not held:
            return ports, None
        rules = dnat_commands(table, doc["Id"], ports, container_ip, subnet)
        if rules and firewall.available():
            firewall.ensure_publish_chains(table)
            # we hold these ports, so a rule already matching one is a dead container's: it goes first
            taken = {_rule_port(r["add"]["rule"]) for r in rules}
            stale = [r for r in firewall.rules(table, firewall.PUBLISH_CHAIN) if _rule_port(r) in taken]
            firewall.apply(firewall.delete_commands(stale) + rules)
        pid = proxy.spawn(held)
    except BaseException:
        remove_rules(table, doc["Id"])
        raise
    finally:
        for listener in held:
            listener.sock.close()  # the proxy has its own copies
    return ports, pid


def remove_rules(table: str, container_id: str) -> None:
    if firewall.available():
        mine = [r for r in firewall.rules(table, firewall.PUBLISH_CHAIN) if r.get("comment") == container_id]
        if mine:
            firewall.apply(firewall.delete_commands(mine))


def unpublish(table: str, container_id: str, proxy_pid: int | None, proxy_start: int | None = None) -> None:
    """Stop the proxy (releasing the host ports) and delete the container's DNAT rules."""
    if proxy_pid:
        from builder.container.liveness import process_start_time

        if proxy_start is None or process_start_time(proxy_pid) == proxy_start:
            try:
                os.kill(proxy_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_gone(proxy_pid)
    remove_rules(table, container_id)


def _wait_gone(pid: int) -> None:
    """Until pid has exited (its ports are free then): reaped when it is our child, else watched."""
    import time

    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return  # a zombie holds no sockets
        except OSError:
            return
        time.sleep(0.01)


def remove_stale_rules(table: str, dead: set[str]) -> None:
    """Delete the rules of these containers (stopped, or removed: what a failed release left)."""
    if not dead or not firewall.available():
        return
    stale = [r for r in firewall.rules(table, firewall.PUBLISH_CHAIN) if r.get("comment") in dead]
    if stale:
        firewall.apply(firewall.delete_commands(stale))


# -- a container's ports, from its record (the monitor at start and stop; a rebuild of the table)
def container_address(doc: dict) -> tuple[str, str] | None:
    """(address, subnet) of the container's first network with an address: where its ports lead."""
    import ipaddress

    for entry in ((doc.get("NetworkSettings") or {}).get("Networks") or {}).values():
        if entry.get("IPAddress"):
            net = ipaddress.ip_interface(f"{entry['IPAddress']}/{entry.get('IPPrefixLen') or 32}").network
            return entry["IPAddress"], str(net)
    return None


def publish_container(store_root, records, container_id: str) -> dict:
    """Publish the ports of a container that has just joined its networks; record NetworkSettings.Ports and
    the proxy (PortProxy). Under the networks' lock: a rebuild of the table sees the record or the rules."""
    from builder.container.liveness import process_start_time
    from builder.network.store import Networks

    doc = records.load(container_id)
    address = container_address(doc)
    if address is None or not (wanted_bindings(doc) or (doc.get("Config") or {}).get("ExposedPorts")):
        return doc
    with Networks(store_root).locked():
        table = firewall.table_for(store_root)
        published, pid = publish(table, doc, *address)
        try:
            with records.edit(container_id) as doc:
                doc.setdefault("NetworkSettings", {})["Ports"] = published
                if pid:
                    doc["PortProxy"] = {"Pid": pid, "StartTime": process_start_time(pid)}
        except BaseException:
            unpublish(table, container_id, pid)
            raise
    return doc


def release_container(records, container_id: str) -> None:
    """Undo publish_container (idempotent; cheap for a container that published nothing)."""
    try:
        doc = records.load(container_id)
    except Exception:  # noqa: BLE001 - the record is gone: container prune finds rules left
        return
    proxy_entry = doc.get("PortProxy")
    if not proxy_entry and not ((doc.get("NetworkSettings") or {}).get("Ports")):
        return
    unpublish(firewall.table_for(records.dir.parent), container_id, (proxy_entry or {}).get("Pid"),
              (proxy_entry or {}).get("StartTime"))
    with records.edit(container_id) as doc:
        doc.pop("PortProxy", None)
        if doc.get("NetworkSettings"):
            doc["NetworkSettings"]["Ports"] = {}  # docker shows none for a stopped container


def recorded_rules(store_root) -> list[dict]:
    """The publish rules of every running container (for a rebuild of the whole table)."""
    from builder.container.liveness import ACTIVE, live_state
    from builder.container.records import Records

    commands, table = [], firewall.table_for(store_root)
    for doc in Records(store_root).all():
        ports = (doc.get("NetworkSettings") or {}).get("Ports")
        address = container_address(doc)
        if doc.get("PortProxy") and ports and address and live_state(doc)["Status"] in ACTIVE:
            commands += dnat_commands(table, doc["Id"], ports, *address)
    return commands
