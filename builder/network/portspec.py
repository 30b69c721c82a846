"""`-p/--publish`, `--expose` and `-P` in docker's grammar, turned into docker's record shapes:
HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} and Config.ExposedPorts
{"80/tcp": {}}; and NetworkSettings.Ports turned back into `pydock port` lines and the PORTS column of
`pydock ps`. Pure functions: no sockets, no rules (ports.py does the publishing)."""

from __future__ import annotations

import ipaddress

PROTOCOLS = ("tcp", "udp", "sctp")


class PortSpecError(ValueError):
    """A -p/--expose value docker would refuse (the message is docker's)."""


def _port_range(text: str, what: str, spec: str) -> tuple[int, int]:
    """"80" or "8000-8010" as (first, last); what names the field in the error, as docker does."""
    first, dash, last = text.partition("-")
    try:
        start, end = int(first), int(last) if dash else int(first)
    except ValueError:
        raise PortSpecError(f"invalid {what}: {text}") from None
    if not (0 < start <= 65535 and 0 < end <= 65535) or not first.isdigit() or (dash and not last.isdigit()):
        raise PortSpecError(f"invalid {what}: {text}")
    if end < start:
        raise PortSpecError(f"invalid range specified for {what}: {text}")
    return start, end


def _split_proto(text: str) -> tuple[str, str]:
    port, _, proto = text.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise PortSpecError(f"invalid proto: {proto}")
    return port, proto


def _split_ip(spec: str) -> tuple[str, str]:
    """[IP:]REST, with an IPv6 address in brackets: ("", rest) when no address is given."""
    if spec.startswith("["):
        close = spec.find("]:")
        if close < 0:
            raise PortSpecError(f"invalid ip address: {spec}")
        return spec[1:close], spec[close + 2:]
    parts = spec.split(":")
    if len(parts) == 3:
        return parts[0], ":".join(parts[1:])
    if len(parts) > 3:
        raise PortSpecError(f"invalid port format: {spec}")
    return "", spec


def parse_publish(spec: str) -> dict[str, list[dict]]:
    """One -p value as PortBindings entries, in docker's shape:
    "3000:5000" -> {"5000/tcp": [{"HostIp": "", "HostPort": "3000"}]}; "5000" -> HostPort "" (a random port
    at start); "127.0.0.1::80"; "8000-8001:80-81/udp" (one binding per port); "8000-8010:80" (the first
    free port of the host range)."""
    body, proto = _split_proto(spec)
    ip, rest = _split_ip(body)
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise PortSpecError(f"invalid ip address: {ip}") from None
    host_text, colon, ctr_text = rest.rpartition(":")
    if not colon:
        host_text, ctr_text = "", rest
    if not ctr_text:
        raise PortSpecError(f"no port specified: {spec}<empty>")
    ctr_start, ctr_end = _port_range(ctr_text, "containerPort", spec)
    if not host_text:
        return {f"{port}/{proto}": [{"HostIp": ip, "HostPort": ""}] for port in range(ctr_start, ctr_end + 1)}
    host_start, host_end = _port_range(host_text, "hostPort", spec)
    ctr_count, host_count = ctr_end - ctr_start + 1, host_end - host_start + 1
    if ctr_count == 1 and host_count > 1:  # any free port of the host range
        return {f"{ctr_start}/{proto}": [{"HostIp": ip, "HostPort": f"{host_start}-{host_end}"}]}
    if ctr_count != host_count:
        raise PortSpecError(f"invalid ranges specified for container and host Ports: {ctr_text} and {host_text}")
    return {f"{ctr_start + i}/{proto}": [{"HostIp": ip, "HostPort": str(host_start + i)}] for i in range(ctr_count)}


def parse_expose(spec: str) -> list[str]:
    """--expose PORT[-END][/PROTO] as ExposedPorts keys."""
    body, proto = _split_proto(spec)
    if ":" in body:
        raise PortSpecError(f"invalid port format for --expose: {spec}")
    start, end = _port_range(body, "range format for --expose", spec)
    return [f"{port}/{proto}" for port in range(start, end + 1)]


def port_bindings(publish: list[str]) -> dict[str, list[dict]]:
    """Every -p value merged, as HostConfig.PortBindings (a port given twice keeps both bindings)."""
    bindings: dict[str, list[dict]] = {}
    for spec in publish:
        for key, entries in parse_publish(spec).items():
            bindings.setdefault(key, []).extend(entries)
    return bindings


def exposed_ports(image_exposed: dict | None, expose: list[str], bindings: dict) -> dict[str, dict]:
    """Config.ExposedPorts: the image's, --expose's and every published port, as docker records them."""
    out = {key: {} for key in (image_exposed or {})}
    for spec in expose:
        out.update({key: {} for key in parse_expose(spec)})
    out.update({key: {} for key in bindings})
    return out


def split_key(key: str) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp")."""
    port, _, proto = key.partition("/")
    return int(port), proto or "tcp"


def wanted_bindings(doc: dict) -> dict[str, list[dict]]:
    """The bindings a start must make: PortBindings, plus a random port for every other exposed port with
    -P (HostConfig.PublishAllPorts). Host networking publishes nothing (docker ignores -p there too)."""
    host = doc.get("HostConfig") or {}
    if host.get("NetworkMode") in ("host", "none") or str(host.get("NetworkMode", "")).startswith("container:"):
        return {}
    bindings = {k: [dict(b) for b in v] for k, v in (host.get("PortBindings") or {}).items()}
    if host.get("PublishAllPorts"):
        for key in (doc.get("Config") or {}).get("ExposedPorts") or {}:
            bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
    return bindings


def _join(ip: str, port) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def port_lines(ports: dict, private: str | None = None) -> list[str]:
    """`docker port` output from NetworkSettings.Ports: "80/tcp -> 0.0.0.0:32768" per binding, or only
    "0.0.0.0:32768" for one PRIVATE_PORT[/PROTO]. Sorted by port, then protocol, as docker prints them."""
    if private is not None:
        port, proto = _split_proto(private)
        key = f"{port}/{proto}"
        return [_join(b["HostIp"], b["HostPort"]) for b in ports.get(key) or []]
    lines = []
    for key in sorted(ports, key=lambda k: (split_key(k)[0], split_key(k)[1])):
        lines += [f"{key} -> {_join(b['HostIp'], b['HostPort'])}" for b in ports[key] or []]
    return lines


def ps_ports(ports: dict) -> str:
    """docker ps's PORTS column: "0.0.0.0:3000->5000/tcp", runs of ports published on the same numbers
    collapsed ("0.0.0.0:80-81->80-81/tcp"), exposed-only ports as "80/tcp"."""
    rows = []  # (private, ip, public, proto), docker's sort order
    for key, bindings in ports.items():
        private, proto = split_key(key)
        if not bindings:
            rows.append((private, "", 0, proto))
        for b in bindings or []:
            rows.append((private, b.get("HostIp", ""), int(b.get("HostPort") or 0), proto))
    rows.sort()
    groups: dict[tuple[str, str], list[list[int]]] = {}  # (ip, proto) -> runs [first, last]
    mappings = []
    for private, ip, public, proto in rows:
        if ip and public != private:
            mappings.append(f"{_join(ip, public)}->{private}/{proto}")
            continue
        runs = groups.setdefault((ip, proto), [])
        if runs and runs[-1][1] + 1 == private:
            runs[-1][1] = private
        else:
            runs.append([private, private])
    out = []
    for (ip, proto), runs in groups.items():
        for first, last in runs:
            text = str(first) if first == last else f"{first}-{last}"
            out.append(f"{_join(ip, text)}->{text}/{proto}" if ip else f"{text}/{proto}")
    return ", ".join(out + mappings)
