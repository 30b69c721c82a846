"""Secrets and SSH agents a build hands to RUN --mount=type=secret|ssh, never to a layer, cache key or history.

`--secret id=ID[,src=FILE|env=VAR][,type=file|env]` is read once when the build starts and kept in memory;
a step gets it as a file on a private tmpfs bind-mounted read-only at its target (and/or as an env var).
`--ssh ID[=SOCKET|KEY[,KEY...]]` (`default` = $SSH_AUTH_SOCK) names an ssh-agent: a step gets a socket of
its own, with the mount's mode and owner, relayed to that agent for as long as the step runs; private key
files are loaded into an ssh-agent started for the build (Debian's openssh-client), as buildx does.
"""

from __future__ import annotations

import os
import posixpath
import selectors
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import BuildError
from oci_runtime import linux

if TYPE_CHECKING:
    from builder.builds.engine import Builder
    from builder.dockerfile.instructions import ImageState


# -- the flags ---------------------------------------------------------------------------------------

def parse_secret(text: str) -> tuple[str, bytes]:
    """One --secret value: (id, content). As buildx: without src= or env=, an env var named ID if set,
    else a file named ID."""
    fields: dict[str, str] = {}
    for field in text.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("id", "src", "source", "env", "type"):
            raise BuildError(f"invalid --secret {text!r}: unexpected {field!r} (want id=ID,src=FILE or id=ID,env=VAR)")
        fields["src" if key == "source" else key] = value
    sid = fields.get("id", "")
    kind = fields.get("type", "")
    if kind not in ("", "file", "env"):
        raise BuildError(f"invalid --secret {text!r}: unsupported type {kind!r} (file or env)")
    src, env = fields.get("src", ""), fields.get("env", "")
    if kind == "env" and not env:
        env, src = src or sid, ""
    if not sid:
        sid = env or (os.path.basename(src) if src else "")
    if not sid:
        raise BuildError(f"invalid --secret {text!r}: needs id=")
    if not src and not env:
        if kind != "file" and sid in os.environ:
            env = sid
        else:
            src = sid
    if env:
        if env not in os.environ:
            raise BuildError(f"invalid --secret {text!r}: environment variable {env} is not set")
        return sid, os.environ[env].encode("utf-8", "surrogateescape")
    try:
        with open(src, "rb") as f:
            return sid, f.read()
    except OSError as e:
        raise BuildError(f"invalid --secret {text!r}: cannot read {src}: {e.strerror}") from None


def parse_ssh(text: str) -> tuple[str, list[str]]:
    """One --ssh value: (id, [agent socket] or [key files]); `default` alone means $SSH_AUTH_SOCK."""
    sid, sep, rest = text.partition("=")
    if not sid or "," in sid:
        raise BuildError(f"invalid --ssh {text!r}: want default, ID or ID=PATH[,PATH...]")
    paths = [p for p in rest.split(",") if p] if sep else []
    if not paths:
        sock = os.environ.get("SSH_AUTH_SOCK", "")
        if not sock:
            raise BuildError(f"invalid --ssh {text!r}: no path given and SSH_AUTH_SOCK is not set "
                             "(start an ssh-agent, or give ID=SOCKET or ID=KEYFILE)")
        paths = [sock]
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            raise BuildError(f"invalid --ssh {text!r}: {p}: {e.strerror}") from None
        if stat.S_ISSOCK(st.st_mode) and len(paths) > 1:
            raise BuildError(f"invalid --ssh {text!r}: an agent socket must be the only path of its id")
        if not stat.S_ISSOCK(st.st_mode) and not stat.S_ISREG(st.st_mode):
            raise BuildError(f"invalid --ssh {text!r}: {p} is neither an agent socket nor a key file")
    return sid, [os.path.abspath(p) for p in paths]


class Agents:
    """The build's ssh agents by id: sockets as given, key files loaded into an agent of our own, started
    the first time a step needs it and stopped when the build ends."""

    def __init__(self, sources: dict[str, list[str]]):
        self.sources = sources
        self._sockets: dict[str, str] = {}
        self._agents: list[subprocess.Popen] = []
        self._dirs: list[str] = []

    def socket_for(self, sid: str) -> str:
        if sid not in self._sockets:
            paths = self.sources[sid]
            if stat.S_ISSOCK(os.stat(paths[0]).st_mode):
                self._sockets[sid] = paths[0]
            else:
                self._sockets[sid] = self._start_agent(sid, paths)
        return self._sockets[sid]

    def _start_agent(self, sid: str, keys: list[str]) -> str:
        agent, add = shutil.which("ssh-agent"), shutil.which("ssh-add")
        if agent is None or add is None:
            raise BuildError(f"--ssh {sid}= names key files: loading them needs ssh-agent and ssh-add "
                             "(openssh-client), which are not installed")
        d = tempfile.mkdtemp(prefix="pydock-ssh-")  # short: a socket path has at most 107 bytes
        self._dirs.append(d)
        sock = os.path.join(d, "agent.sock")
        proc = subprocess.Popen([agent, "-D", "-a", sock], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self._agents.append(proc)
        for _ in range(200):
            if os.path.exists(sock) or proc.poll() is not None:
                break
            threading.Event().wait(0.01)
        env = {"SSH_AUTH_SOCK": sock, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        done = subprocess.run([add, "-q", *keys], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"--ssh {sid}: cannot load {', '.join(keys)}: "
                             f"{done.stderr.strip() or 'ssh-add failed'} (a key with a passphrase is not supported)")
        return sock

    def close(self) -> None:
        for proc in self._agents:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._agents.clear()
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._dirs.clear()


@contextmanager
def _short_path(path: str):
    """`path` as /proc/self/fd/N/NAME (N its directory), for bind() and connect(): a socket's path is
    limited to 107 bytes, and a store's scratch dirs can be deeper than that."""
    fd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


class AgentRelay:
    """A listening socket at `path` (mode and owner as the mount asks) whose connections are each relayed
    to the agent socket `upstream`, on a thread, until close()."""

    def __init__(self, path: str, upstream: str, mode: int, uid: int, gid: int):
        self.path = path
        self.upstream = upstream
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _short_path(path) as short:
            self._listener.bind(short)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        self._listener.listen(16)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="ssh-agent-relay", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        sel.register(self._stop_r, selectors.EVENT_READ, "stop")
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while True:
                for key, _ in sel.select():
                    if key.data == "stop":
                        return
                    if key.fileobj is self._listener:
                        client, _ = self._listener.accept()
                        agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        try:
                            with _short_path(self.upstream) as short:
                                agent.connect(short)
                        except OSError:
                            client.close()
                            agent.close()
                            continue
                        peers[client], peers[agent] = agent, client
                        sel.register(client, selectors.EVENT_READ, "peer")
                        sel.register(agent, selectors.EVENT_READ, "peer")
                        continue
                    src = key.fileobj
                    try:
                        data = src.recv(65536)
                        if data:
                            peers[src].sendall(data)
                            continue
                    except OSError:
                        pass
                    for s in (src, peers[src]):  # one side closed: close the pair
                        if s in peers:
                            sel.unregister(s)
                            peers.pop(s)
                            s.close()
        finally:
            for s in peers:
                s.close()
            sel.close()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=10)
        self._listener.close()
        os.close(self._stop_r)
        os.close(self._stop_w)
        try:
            os.unlink(self.path)
        except OSError:
            pass


class SecretFiles:
    """A private tmpfs (mode 0700, never on disk) holding a step's secret file."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700)
        linux.mount("tmpfs", str(self.dir), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=0700")
        self._count = 0

    def add(self, content: bytes, mode: int, uid: int, gid: int) -> str:
        path = self.dir / f"secret-{self._count}"
        self._count += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return str(path)

    def close(self) -> None:
        linux.umount2(str(self.dir), 2)  # MNT_DETACH: the contents go with the mount
        os.rmdir(self.dir)


# -- RUN --mount=type=secret|ssh -------------------------------------------------------------------

def secret_or_ssh_mount(b: Builder, state: ImageState, m, ssh_count: int) -> dict | None:
    """A secret or ssh mount as BuildKit places it; None when the build was not given it and the mount is
    optional. Its cache key names the mount, never the secret's content."""
    if m.type == "secret":
        sid = m.id or m.source or posixpath.basename(m.target.rstrip("/"))
        known = sid in b.opts.secrets
        default_target = "" if m.env else f"/run/secrets/{sid}"
        how = f"--secret id={sid},src=FILE"
    else:
        sid = m.id or "default"
        known = sid in b.opts.ssh
        default_target = f"/run/buildkit/ssh_agent.{ssh_count}"
        how = f"--ssh {sid}" + ("" if sid == "default" else "=SOCKET|KEYFILE")
    if not known:
        if m.required:
            raise BuildError(f"{m.type} {sid!r} is required by this step but the build was not given it "
                             f"(give it with {how})")
        return None
    target = posixpath.normpath(posixpath.join(state.workdir, m.target)) if m.target else default_target
    mode = m.mode if m.mode is not None else (0o400 if m.type == "secret" else 0o600)
    item = {"type": m.type, "id": sid, "target": target, "env": m.env, "mode": mode, "uid": m.uid or 0,
            "gid": m.gid or 0, "spec": m}
    item["key"] = {k: item[k] for k in ("type", "id", "target", "env", "mode", "uid", "gid")}
    return item


def secret_and_ssh_env(b: Builder, state: ImageState, mounts: list[dict]) -> list[str]:
    """Env entries the secret and ssh mounts add: env= secrets, and SSH_AUTH_SOCK for the first ssh mount
    (unless the image sets it), as BuildKit does. Never part of the cache key or the image."""
    env = []
    for m in mounts:
        if m["type"] == "secret" and m["env"]:
            value = b.opts.secrets[m["id"]]
            if b"\0" in value:
                raise BuildError(f"secret {m['id']!r} holds a NUL byte: it cannot be the variable {m['env']}")
            env.append(f"{m['env']}={value.decode('utf-8', 'surrogateescape')}")
    ssh = [m for m in mounts if m["type"] == "ssh"]
    if ssh and "SSH_AUTH_SOCK" not in state.env:
        env.append(f"SSH_AUTH_SOCK={ssh[0]['target']}")
    return env


def prepare_secret_or_ssh(b: Builder, stack, ws, item: dict) -> dict | None:
    """The runtime mount of a planned secret or ssh mount (None for an env-only secret); what it sets up
    (a tmpfs, a relay) is undone when `stack` closes, after the step."""
    if item["type"] == "secret":
        if not item["target"]:
            return None  # env= only
        files = SecretFiles(Path(ws.dir) / f"secret-{os.urandom(4).hex()}")
        stack.callback(files.close)
        source = files.add(b.opts.secrets[item["id"]], item["mode"], item["uid"], item["gid"])
        return {"destination": item["target"], "type": "bind", "source": source,
                "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}
    sock_dir = Path(ws.dir) / "ssh"
    sock_dir.mkdir(mode=0o711, exist_ok=True)
    relay = AgentRelay(str(sock_dir / f"agent-{len(os.listdir(sock_dir))}.sock"), b.agents.socket_for(item["id"]),
                       item["mode"], item["uid"], item["gid"])
    stack.callback(relay.close)
    return {"destination": item["target"], "type": "bind", "source": relay.path, "options": ["rbind", "rw"]}
