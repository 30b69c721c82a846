"""The files docker writes for each container and bind-mounts into it: /etc/hostname, /etc/hosts (the
localhost lines, the container's own address, and, on user-defined networks, every other container
attached there by name, aliases and short id: our name resolution) and /etc/resolv.conf (the host's,
less loopback nameservers that mean nothing in another netns). A file already mounted in a running
container is rewritten in place: the bind mount holds its inode, so a rename would not reach it."""

from __future__ import annotations

import os
from pathlib import Path

LOCALHOST_LINES = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                   "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")  # docker's, when the host has only loopback resolvers


def hosts(own: list[tuple[str, str]], peers: list[tuple[str, list[str]]]) -> str:
    """own: (address, hostname) of the container; peers: (address, names) of the others it can reach."""
    lines = [LOCALHOST_LINES] + [f"{address}\t{name}\n" for address, name in own]
    lines += [f"{address}\t{' '.join(names)}\n" for address, names in peers]
    return "".join(lines)


def _is_local(words: list[str]) -> bool:
    return bool(words) and (words[0].startswith("127.") or words[0] == "::1")


def _nameservers(text: str, skip_local: bool) -> list[str]:
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and not (skip_local and _is_local(words[1:2])):
            out.append(words[1])
    return out


def resolv_conf(network: str) -> str:
    """The host's resolv.conf; without the host's network, loopback resolvers are useless, so they go
    (systemd-resolved's upstream file is read instead when it has real ones), and docker's public
    fallback servers stand in when nothing is left."""
    text = ""
    for path in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if network == "host" or _nameservers(text, skip_local=True):
            break
    if network == "host":
        return text or "".join(f"nameserver {ns}\n" for ns in FALLBACK_DNS)
    lines = [line for line in text.splitlines()
             if not (line.strip().startswith("nameserver") and _is_local(line.split()[1:2]))]
    if not _nameservers("\n".join(lines), skip_local=True):
        lines += [f"nameserver {ns}" for ns in FALLBACK_DNS]
    return "\n".join(lines) + "\n"


def host_hosts() -> str:
    try:
        return Path("/etc/hosts").read_text()
    except OSError:
        return LOCALHOST_LINES


def write_in_place(path: Path, text: str) -> None:
    """Replace the content without replacing the inode (a running container has it bind-mounted)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
