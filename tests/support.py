"""What tests share besides fixtures: the commands under test, a busybox rootfs builder, a process runner
that never waits on a container's pipes, and the config edit for user-namespaced containers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path


BUSYBOX = shutil.which("busybox") or "/bin/busybox"
REPO = Path(__file__).resolve().parent.parent


def _bin(name: str) -> list[str]:
    """The command for one of our console scripts, preferring the one beside this interpreter."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", {"pyrunc": "oci_runtime", "pydock": "builder"}[name]]


PYRUNC = _bin("pyrunc")
PYDOCK = _bin("pydock")


def build_busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs: static busybox with every applet linked, plus passwd/group files."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = dest / applet
        if link.name == "busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "user:x:1000:1000:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (dest / "etc" / "group").write_text(
        "root:x:0:\ndaemon:x:1:\ntty:x:5:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n")
    return dest


def userns_edit(rootfs: Path, host_id: int):
    """A config edit for a user-namespaced container mapping 0-65535 to host_id..; the rootfs is given to
    host_id and made reachable for it (the tmp dirs above it are root's 0700 ones)."""
    subprocess.run(["chown", "-R", f"{host_id}:{host_id}", str(rootfs)], check=True)
    for parent in rootfs.parents:
        if parent == parent.parent:
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o001)

    def edit(spec: dict) -> None:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        spec["mounts"] = [m for m in spec["mounts"] if m["type"] not in ("sysfs", "cgroup")]

    return edit


def run_captured(cmd: list[str], timeout: float = 60, input: str | None = None, **kw) -> subprocess.CompletedProcess:
    """Run with stdout/stderr captured in files, not pipes: a container created by `cmd` inherits them
    and may outlive it, and waiting for EOF on a pipe would wait for the container too."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = subprocess.PIPE if input is not None else kw.pop("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, **kw)
        try:
            if input is not None:
                proc.communicate(input.encode(), timeout=timeout)
            else:
                proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def leftovers(state_root, cid: str) -> list[str]:
    """Anything a failed create of `cid` could have left: state, cgroups, mounts, processes."""
    found = [f"state {p}" for p in os.listdir(state_root)]
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        if cid in dirs:
            found.append(f"cgroup {base}/{cid}")
        dirs[:] = [d for d in dirs if base.count("/") < 5]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if str(state_root.parent) in line.split()[4]]
    return found


def check_refused(pyrunc, state_root, tmp_path, cid, args, expect):
    """Run pyrunc with args; assert one error line containing expect (also in the JSON log) and no leftovers."""
    log = tmp_path / "log.json"
    out = subprocess.run([*PYRUNC, "--root", str(state_root), "--log", str(log), "--log-format", "json", *args],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], out.stderr
    logged = log.read_text().splitlines()
    entries = [json.loads(line) for line in logged]
    assert logged == [json.dumps(e, separators=(",", ":")) for e in entries]  # compact, as runc's logrus writes
    errors = [e for e in entries if e["level"] == "error"]
    assert errors and expect in errors[-1]["msg"] and errors[-1]["time"].endswith("Z")
    assert leftovers(state_root, cid) == []
    return lines[0]


def tar_bytes(files: dict[str, bytes], fmt: int | None = None) -> bytes:
    """A tar archive (in memory) of regular files {name: content}."""
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt if fmt is not None else tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll predicate() until it is true (True) or the timeout passes (False)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@contextlib.contextmanager
def own_netns():
    """Run the block in a new network namespace of this process (loopback up), then go back: what the
    block and the processes it starts do to links, addresses, routes and nftables stays in there."""
    from oci_runtime import linux
    from oci_runtime.process.namespaces import loopback_up

    before = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.unshare(linux.CLONE_NEWNET)
        loopback_up()
        yield
    finally:
        linux.setns(before, linux.CLONE_NEWNET)
        os.close(before)


def unavailable(reason: str) -> None:
    """A tool the test needs is missing: skip, or fail when the engines and tools are required
    (PYRUNC_ENGINES=require, as in CI)."""
    import pytest

    if os.environ.get("PYRUNC_ENGINES") == "require":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- a registry on loopback

REGISTRY = shutil.which("docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A real registry (distribution's `docker-registry serve`) on a free loopback port, with filesystem
    storage in a temp dir, optionally behind auth (the config's `auth:` section) and TLS."""

    def __init__(self, root: Path, auth_yaml: str = "", tls: tuple[Path, Path] | None = None,
                 storage: Path | None = None):
        """`storage`: another (stopped) registry's, to serve what it held."""
        import requests

        if REGISTRY is None:
            unavailable("docker-registry is not installed")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.storage = storage or root / "storage"
        self.storage.mkdir(parents=True, exist_ok=storage is not None)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = root / "config.yml"
        config.write_text(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {self.storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
  secret: test-secret
{f"  tls:{chr(10)}    certificate: {tls[0]}{chr(10)}    key: {tls[1]}{chr(10)}" if tls else ""}{auth_yaml}""")
        self.log = open(root / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                with warnings.catch_warnings():  # only asks whether it is up: no need to check its cert
                    warnings.simplefilter("ignore")
                    requests.get(f"{'https' if tls else 'http'}://{self.host}/v2/", timeout=2, verify=False)
                break
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"registry did not start: {(root / 'registry.log').read_text()}")
                time.sleep(0.05)

    def blob_data(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
