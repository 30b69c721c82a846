"""The userland proxy of a container's published ports (docker-proxy's job): one small process per
container, forked by the monitor, that holds every published host port (so no other program can take it
while the container runs) and forwards what arrives on it to the container's address. It carries the
traffic the kernel's DNAT does not see: connections to 127.0.0.1 and from containers on the same bridge
(hairpin). TCP is copied with splice(2) through a pipe (the bytes never enter Python); UDP is relayed per
client address, docker-proxy's way, with idle flows dropped after 90 s.

It dies with the monitor (PR_SET_PDEATHSIG), so a SIGKILLed monitor never leaves a port held."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import threading
import time

PIPE_SIZE = 1 << 20  # bytes per splice: fewer system calls per gigabyte
UDP_IDLE = 90.0
UDP_BUFFER = 65535


class Listener:
    """One held host port: its socket and where its traffic goes."""

    def __init__(self, sock: socket.socket, proto: str, target: tuple[str, int]):
        self.sock, self.proto, self.target = sock, proto, target


def _splice_loop(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until EOF (then half-close dst) or an error (then close both ways)."""
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    try:
        import fcntl

        fcntl.fcntl(pipe_w, 1031, PIPE_SIZE)  # F_SETPIPE_SZ: more bytes per call
    except OSError:
        pass
    try:
        while True:
            moved = os.splice(src.fileno(), pipe_w, PIPE_SIZE, flags=os.SPLICE_F_MOVE)
            if moved == 0:
                break
            while moved:
                moved -= os.splice(pipe_r, dst.fileno(), moved, flags=os.SPLICE_F_MOVE)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        os.close(pipe_r)
        os.close(pipe_w)


def _serve_connection(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()  # the container does not listen: the client sees the connection end, as with docker
        return
    back = threading.Thread(target=_splice_loop, args=(upstream, client), daemon=True)
    back.start()
    _splice_loop(client, upstream)
    back.join()
    client.close()
    upstream.close()


class _UdpFlows:
    """Per client address, a socket connected to the container; replies go back through the listener."""

    def __init__(self, selector: selectors.BaseSelector):
        self.selector = selector
        self.flows: dict[tuple, tuple[socket.socket, float]] = {}

    def forward(self, listener: Listener) -> None:
        data, client = listener.sock.recvfrom(UDP_BUFFER)
        flow = self.flows.get((listener, client))
        if flow is None:
            family = socket.AF_INET6 if ":" in listener.target[0] else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            upstream.connect(listener.target)
            upstream.setblocking(False)
            self.selector.register(upstream, selectors.EVENT_READ, ("reply", listener, client))
            flow = (upstream, 0.0)
        self.flows[(listener, client)] = (flow[0], time.monotonic())
        try:
            flow[0].send(data)
        except OSError:
            pass  # nothing listens in the container (ECONNREFUSED from an earlier datagram)

    def reply(self, upstream: socket.socket, listener: Listener, client) -> None:
        try:
            data = upstream.recv(UDP_BUFFER)
        except OSError:
            return
        self.flows[(listener, client)] = (upstream, time.monotonic())
        try:
            listener.sock.sendto(data, client)
        except OSError:
            pass

    def expire(self) -> None:
        now = time.monotonic()
        for key, (upstream, seen) in list(self.flows.items()):
            if now - seen > UDP_IDLE:
                self.selector.unregister(upstream)
                upstream.close()
                del self.flows[key]


def serve(listeners: list[Listener]) -> None:
    """Forward forever (until SIGTERM, or the monitor's death)."""
    selector = selectors.DefaultSelector()
    for listener in listeners:
        listener.sock.setblocking(False)
        selector.register(listener.sock, selectors.EVENT_READ, ("listen", listener))
    udp = _UdpFlows(selector)
    while True:
        for key, _ in selector.select(timeout=UDP_IDLE / 3):
            kind = key.data[0]
            if kind == "reply":
                udp.reply(key.fileobj, key.data[1], key.data[2])
                continue
            listener = key.data[1]
            if listener.proto == "udp":
                try:
                    udp.forward(listener)
                except OSError:
                    pass
                continue
            try:
                client, _ = listener.sock.accept()
            except OSError:
                continue  # the client gave up already
            client.setblocking(True)
            threading.Thread(target=_serve_connection, args=(client, listener.target), daemon=True).start()
        udp.expire()


def spawn(listeners: list[Listener]) -> int:
    """Fork the proxy (it keeps only the listeners' fds); return its pid. The caller closes its copies."""
    keep = sorted(listener.sock.fileno() for listener in listeners)
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        from oci_runtime import linux

        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the monitor died before the line above
            os._exit(1)
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        low = 3
        for fd in keep + [os.sysconf("SC_OPEN_MAX")]:  # nothing of the monitor's: its pipes must see EOF
            if fd > low:
                os.closerange(low, fd)
            low = fd + 1
        serve(listeners)
    except BaseException:  # noqa: BLE001 - a forked child never returns into its parent's code
        code = 1
    finally:
        os._exit(code)
