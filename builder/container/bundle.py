"""The container's OCI bundle (CONTAINER/bundle/config.json): the image's config with the run options
applied the way docker applies them, turned into a spec by builder.bundle.spec (the one spec builder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from builder.atomicfile import atomic_file


def effective_image_config(image_config: dict, options: dict) -> dict:
    """The image config with run's overrides: --entrypoint (which drops the image's Cmd), CMD, -e, -w, -u."""
    import copy  # here: exec merges only the environment (merged_env) and needs no copy

    merged = copy.deepcopy(image_config)
    cfg = merged.setdefault("config", {}) or {}
    merged["config"] = cfg
    if options.get("Entrypoint") is not None:
        cfg["Entrypoint"] = options["Entrypoint"]
        cfg["Cmd"] = []
    if options.get("Cmd"):
        cfg["Cmd"] = options["Cmd"]
    cfg["Env"] = merged_env(cfg.get("Env") or [], options.get("Env") or [])
    if options.get("WorkingDir"):
        cfg["WorkingDir"] = options["WorkingDir"]
    if options.get("User"):
        cfg["User"] = options["User"]
    return merged


def merged_env(env: list[str], overrides: list[str]) -> list[str]:
    """NAME=VALUE entries with overrides' replacing those of the same name, in place (new names last)."""
    merged = {e.split("=", 1)[0]: e for e in env}
    for e in overrides:
        merged[e.split("=", 1)[0]] = e
    return list(merged.values())


# docker's default capability set (the runtime's own default is runc's smaller one)
DOCKER_DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def capability_name(name: str) -> str:
    """A --cap-add/--cap-drop name as the runtime spells it: with CAP_, upper case (ALL stays ALL)."""
    name = name.upper()
    return name if name == "ALL" or name.startswith("CAP_") else "CAP_" + name


def capability_set(cap_add: list[str], cap_drop: list[str], privileged: bool = False) -> list[str]:
    """docker's rules: --privileged gets every capability (its --cap-drop is ignored); --cap-add ALL every
    one less --cap-drop; --cap-drop ALL only --cap-add's; else the defaults less --cap-drop plus --cap-add.
    Names with or without CAP_, any case; the runtime refuses names it does not know."""
    if privileged:
        return host_capabilities()
    adds, drops = [capability_name(c) for c in cap_add], [capability_name(c) for c in cap_drop]
    if "ALL" in adds:
        return [c for c in host_capabilities() if c not in drops]
    caps = [] if "ALL" in drops else [c for c in DOCKER_DEFAULT_CAPS if c not in drops]
    return list(dict.fromkeys(caps + adds))


# every capability, for --privileged (the runtime's names, in the kernel's order)
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
            "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]


def check_capabilities(names: list[str]) -> None:
    """Refuse, at create, a --cap-add/--cap-drop name docker would refuse (ALL or a capability's name)."""
    for name in names:
        full = capability_name(name)
        if full != "ALL" and full not in ALL_CAPS:
            from builder.container.records import ContainerError

            raise ContainerError(f'unknown capability: "{full}"')


def host_capabilities() -> list[str]:
    """Every capability we can pass on: those in our own bounding set (a capability outside it cannot be
    granted; asking for it would only make the start fail)."""
    try:
        with open("/proc/self/status") as f:
            bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, ValueError, StopIteration):
        return list(ALL_CAPS)
    return [c for i, c in enumerate(ALL_CAPS) if bounding >> i & 1]


# what docker leaves out of the host's /dev for --privileged (the container has its own of these)
_DEV_SKIPPED = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd", "/dev/console", "/dev/.lxc", "/dev/.udev",
                "/dev/.lxd-mounts"}


def host_devices() -> list[dict]:
    """The host's character and block devices under /dev, as linux.devices entries (docker's HostDevices)."""
    import stat

    devices = []
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in _DEV_SKIPPED)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if path in _DEV_SKIPPED or not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                continue
            devices.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return devices


def make_privileged(spec: dict) -> None:
    """docker's --privileged besides its capabilities and seccomp: the host's devices (all allowed), /sys
    and the cgroup tree read-write, and no masked or read-only /proc and /sys paths."""
    linux = spec["linux"]
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    linux["devices"] = host_devices()
    linux.setdefault("resources", {})["devices"] = [{"allow": True, "access": "rwm"}]
    for m in spec["mounts"]:
        if m["destination"] in ("/sys", "/sys/fs/cgroup"):
            m["options"] = [o for o in m.get("options") or [] if o != "ro"]


def _apply_network(spec: dict, record: dict) -> None:
    """The network namespace builder.network made (its path: NetworkSettings.SandboxKey), the host's for
    --network host, a new empty one for none; and the hostname, hosts and resolv.conf files it wrote."""
    mode = record["HostConfig"].get("NetworkMode") or "none"
    key = (record.get("NetworkSettings") or {}).get("SandboxKey")
    namespaces = spec["linux"]["namespaces"]
    if mode == "host" or record.get("JoinedHostNetwork"):
        spec["linux"]["namespaces"] = [n for n in namespaces if n["type"] != "network"]
    elif key:
        for n in namespaces:
            if n["type"] == "network":
                n["path"] = key
    if mode == "host":
        spec["hostname"] = record["Config"].get("Hostname") or os.uname().nodename
    elif mode.startswith("container:"):
        spec["hostname"] = record["Config"].get("Hostname") or spec["hostname"]
    for key, target in (("HostnamePath", "/etc/hostname"), ("HostsPath", "/etc/hosts"),
                        ("ResolvConfPath", "/etc/resolv.conf")):
        if record.get(key):
            spec["mounts"].append({"destination": target, "type": "bind", "source": record[key],
                                   "options": ["rbind", "rprivate"]})


def write_bundle(container_dir: Path, record: dict, image_config: dict, rootfs: Path) -> Path:
    """CONTAINER/bundle/config.json for the record, whose Config holds the resolved process (made by
    effective_image_config at create) and HostConfig the rest. Returns the bundle dir."""
    from builder.bundle.spec import image_spec  # here: exec needs this module's rules, not the spec builder

    import copy

    config, host = record["Config"], record["HostConfig"]
    resolved = copy.deepcopy(image_config)
    resolved["config"] = dict(resolved.get("config") or {},
                              **{k: config.get(k) for k in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User")})
    spec = image_spec(resolved, rootfs, terminal=bool(config.get("Tty")))
    spec["root"] = {"path": os.fspath(rootfs), "readonly": bool(host.get("ReadonlyRootfs"))}
    spec["hostname"] = config.get("Hostname") or record["Id"][:12]
    caps = capability_set(host.get("CapAdd") or [], host.get("CapDrop") or [], bool(host.get("Privileged")))
    spec["process"]["capabilities"] = {kind: list(caps) for kind in ("bounding", "effective", "permitted")}
    spec["process"]["noNewPrivileges"] = False  # docker's default: setuid programs work
    from builder.container.security import container_seccomp

    seccomp = container_seccomp(host, caps)
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    resources = spec["linux"].setdefault("resources", {})
    if host.get("Memory"):
        resources["memory"] = {"limit": host["Memory"]}
    if host.get("NanoCpus"):
        period = 100000
        resources["cpu"] = {"period": period, "quota": host["NanoCpus"] * period // 10**9}
    if host.get("PidsLimit"):
        resources["pids"] = {"limit": host["PidsLimit"]}
    from builder.container.mounts import bind_options, root_propagation, tmpfs_spec_mounts

    for m in record.get("Mounts") or []:
        if m.get("Type") != "tmpfs":
            spec["mounts"].append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                                   "options": bind_options(m)})
    propagation = root_propagation(record.get("Mounts") or [])
    if propagation:
        spec["linux"]["rootfsPropagation"] = propagation
    spec["mounts"] += tmpfs_spec_mounts(host)
    if host.get("Init"):
        from builder.container.init import apply_init, host_init_binary

        apply_init(spec, host_init_binary())
    if host.get("Ulimits") or host.get("SecurityOpt"):
        from builder.container.security import apply_security

        apply_security(spec, host)
    if host.get("Privileged"):
        make_privileged(spec)
    _apply_network(spec, record)
    bundle = Path(container_dir) / "bundle"
    bundle.mkdir(exist_ok=True)
    with atomic_file(bundle / "config.json", durable=False) as f:
        f.write(json.dumps(spec, indent=1).encode())
    return bundle
