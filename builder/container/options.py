"""`create`/`run` options turned into a new container record (docker's inspect shape), checked before
anything is written: a bad option leaves nothing behind."""

from __future__ import annotations

import os

from builder.container.bundle import effective_image_config
from builder.container.liveness import ZERO_TIME
from builder.container.records import ContainerError
from oci_runtime.specgen import DEFAULT_PATH
from oci_runtime.units import rfc3339


def read_env(env: list[str], env_files: list[str]) -> list[str]:
    """--env-file lines then -e values; a bare NAME takes our own value (and is skipped when unset)."""
    out = []
    for path in env_files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except OSError as e:
            raise ContainerError(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
        out += [line for line in lines if line and not line.startswith("#")]
    out += env
    resolved = []
    for item in out:
        if "=" in item:
            resolved.append(item)
        elif item in os.environ:
            resolved.append(f"{item}={os.environ[item]}")
    return resolved


def _volume_mode(mode: str, bind: bool) -> tuple[bool, str]:
    """-v's third part, docker's comma-separated list (ro|rw, a propagation for binds, nocopy for volumes,
    and the SELinux and macOS words docker accepts and ignores here): (read-only, propagation)."""
    from builder.container.mounts import PROPAGATIONS

    words = [w for w in mode.split(",")] if mode else []
    access = [w for w in words if w in ("ro", "rw")]
    propagation = [w for w in words if w in PROPAGATIONS]
    unknown = [w for w in words if w not in ("ro", "rw", "nocopy", "z", "Z", "consistent", "cached", "delegated")
               + PROPAGATIONS]
    if unknown or len(access) > 1 or len(propagation) > 1 or len(set(words)) != len(words):
        raise ContainerError(f"invalid mode: {mode}")
    kind = "bind" if bind else "volume"
    if bind and "nocopy" in words:
        raise ContainerError(f'invalid mount config for type "{kind}": field VolumeOptions must not be specified')
    if not bind and propagation:
        raise ContainerError(f'invalid mount config for type "{kind}": field BindOptions must not be specified')
    return access == ["ro"], (propagation or ["rprivate"])[0]


def parse_volume(spec: str) -> dict:
    """-v HOST:CTR[:MODE] (a bind mount; HOST is made if missing, as docker does), NAME:CTR[:MODE] (a named
    volume: STORE/volumes/NAME/_data, made on first use) or /CTR (an anonymous volume) as an inspect Mounts
    entry (a volume's Source is filled in when it is made)."""
    from builder.container.volumes import volume_mount

    parts = spec.split(":")
    if len(parts) == 1 and spec.startswith("/"):
        return volume_mount(None, spec)
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ContainerError(f"invalid volume specification: {spec!r}")
    host, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if not target.startswith("/"):
        raise ContainerError(f"invalid volume specification: {spec!r}: mount path must be absolute")
    readonly, propagation = _volume_mode(mode, host.startswith("/"))
    if host.startswith("/"):
        return {"Type": "bind", "Source": os.path.normpath(host), "Destination": os.path.normpath(target),
                "Mode": mode, "RW": not readonly, "Propagation": propagation}
    from builder.volume.store import check_name

    check_name(host)
    return dict(volume_mount(host, target, mode), RW=not readonly)


def volumes_from(records, refs: list[str]) -> list[dict]:
    """--volumes-from CONTAINER[:ro|rw]: that container's mounts (read-only with :ro)."""
    mounts = []
    for ref in refs:
        name, _, mode = ref.partition(":")
        if mode not in ("", "ro", "rw"):
            raise ContainerError(f"invalid mode {mode!r} in --volumes-from {ref!r}")
        for m in records.lookup(name).get("Mounts") or []:
            if m.get("Type") == "tmpfs":
                continue  # docker shares volumes and binds, not a container's tmpfs
            m = dict(m)
            if mode:
                m.update(Mode=mode, RW=mode == "rw")
            mounts.append(m)
    return mounts


def new_record(image, ref: str, args, records) -> dict:
    """The record for `create`/`run` (without Id and Name, which the records add)."""
    from builder.network.endpoints import settings_for_create

    network_mode, network_settings = settings_for_create(records.dir.parent, records, args.network,
                                                         getattr(args, "ip", None),
                                                         list(getattr(args, "network_alias", None) or []),
                                                         args.hostname)
    from builder.container.mounts import parse_mount, parse_tmpfs

    mount_flags = [parse_mount(m) for m in args.mount]
    tmpfs = parse_tmpfs(args.tmpfs)
    mounts = volumes_from(records, args.volumes_from) + [parse_volume(v) for v in args.volume] + \
        [entry for entry, _ in mount_flags]
    targets = [m["Destination"] for m in mounts] + list(tmpfs)
    if len(set(targets)) != len(targets):
        raise ContainerError(f"duplicate mount point: {sorted(t for t in targets if targets.count(t) > 1)[0]}")
    env = read_env(args.env, args.env_file)
    if args.workdir and not args.workdir.startswith("/"):
        raise ContainerError(f"the working directory '{args.workdir}' is invalid, it needs to be an absolute path")
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = [args.entrypoint] if args.entrypoint else []
    cfg = effective_image_config(image.config, {"Entrypoint": entrypoint, "Cmd": list(args.cmd), "Env": env,
                                                "WorkingDir": args.workdir, "User": args.user})["config"]
    command = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not command:
        raise ContainerError("no command specified")
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")  # docker records the default PATH too
    from builder.container.bundle import check_capabilities

    check_capabilities(args.cap_add + args.cap_drop)
    resources = _resources(args)
    from builder.container.logs import log_options

    log_config = {"Type": "json-file", "Config": log_options(args.log_opt)}
    ports = _ports(image.config, args)
    stop_signal, stop_timeout = _stop_settings(args, cfg)
    from builder.container.security import parse_security_opts, parse_ulimits

    security = {"Ulimits": parse_ulimits(args.ulimit), "SecurityOpt": parse_security_opts(args.security_opt)}
    labels = {**(cfg.get("Labels") or {}), **dict((item.split("=", 1) + [""])[:2] for item in args.label)}
    restart = parse_restart(args.restart)
    if args.rm and restart["Name"] != "no":
        raise ContainerError("conflicting options: --restart and --rm")
    if args.init:
        from builder.container.init import host_init_binary

        host_init_binary()  # refused now, not at start
    from builder.container.volumes import provision
    from builder.volume.store import Volumes

    mounts = provision(Volumes(records.dir.parent), mounts, (image.config.get("config") or {}).get("Volumes"))
    return {
        "Created": rfc3339(), "Path": command[0], "Args": command[1:], "Image": image.id,
        "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                  "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                  "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
        "Config": {"Hostname": args.hostname or "", "User": cfg.get("User") or "", "Tty": args.tty,
                   "OpenStdin": args.interactive, "AttachStdin": args.interactive, "Env": env,
                   "Cmd": cfg.get("Cmd") or [], "Entrypoint": cfg.get("Entrypoint") or None, "Image": ref,
                   "WorkingDir": cfg.get("WorkingDir") or "", "StopSignal": stop_signal, "Labels": labels,
                   "ExposedPorts": ports["ExposedPorts"],
                   **({"StopTimeout": stop_timeout} if stop_timeout is not None else {})},
        "HostConfig": {"Binds": list(args.volume), "ReadonlyRootfs": args.read_only,
                       "NetworkMode": network_mode, "AutoRemove": args.rm,
                       "CapAdd": list(args.cap_add), "CapDrop": list(args.cap_drop),
                       "Privileged": bool(getattr(args, "privileged", False)), **resources,
                       "Init": True if args.init else None, "LogConfig": log_config,
                       **{k: v for k, v in security.items() if v},
                       **({"Mounts": [host for _, host in mount_flags]} if mount_flags else {}),
                       **({"Tmpfs": tmpfs} if tmpfs else {}),
                       "RestartPolicy": restart, "PortBindings": ports["PortBindings"],
                       "PublishAllPorts": ports["PublishAllPorts"]},
        "RestartCount": 0,
        "Mounts": mounts,
        "NetworkSettings": network_settings,
    }


def _ports(image_config: dict, args) -> dict:
    """-p, -P and --expose as docker records them (PortBindings, PublishAllPorts, ExposedPorts)."""
    from builder.network.portspec import PortSpecError, exposed_ports, port_bindings

    try:
        bindings = port_bindings(list(getattr(args, "publish", None) or []))
        exposed = exposed_ports((image_config.get("config") or {}).get("ExposedPorts"),
                                list(getattr(args, "expose", None) or []), bindings)
    except PortSpecError as e:
        raise ContainerError(str(e)) from None
    if (bindings or getattr(args, "publish_all", False)) and str(args.network).startswith("container:"):
        raise ContainerError("conflicting options: port publishing and the container type network mode")
    if bindings and args.network == "host":
        import sys

        print("WARNING: Published ports are discarded when using host network mode", file=sys.stderr)
    return {"PortBindings": bindings, "PublishAllPorts": bool(getattr(args, "publish_all", False)),
            "ExposedPorts": exposed}


def _resources(args) -> dict:
    """--memory, --cpus and --pids-limit as docker's HostConfig keys (0: no limit)."""
    from oci_runtime.units import ram_in_bytes

    try:
        memory = ram_in_bytes(args.memory) if args.memory else 0
        nano_cpus = int(float(args.cpus) * 10**9) if args.cpus else 0
    except ValueError as e:
        raise ContainerError(f"invalid resource limit: {e}") from None
    if memory and memory < 6 * 1024 * 1024:
        raise ContainerError("minimum memory limit allowed is 6MB")
    if nano_cpus < 0 or (args.pids_limit or 0) < 0:
        raise ContainerError("resource limits must not be negative")
    return {"Memory": memory, "NanoCpus": nano_cpus, "PidsLimit": args.pids_limit or 0}


def _stop_settings(args, cfg: dict) -> tuple[str, int | None]:
    """--stop-signal (else the image's STOPSIGNAL) and --stop-timeout, checked."""
    from oci_runtime.units import parse_signal

    signal = args.stop_signal or cfg.get("StopSignal") or ""
    if args.stop_signal:
        try:
            parse_signal(args.stop_signal)
        except ValueError as e:
            raise ContainerError(f"invalid --stop-signal: {e}") from None
    return signal, args.stop_timeout


def parse_restart(text: str) -> dict:
    """--restart no|always|unless-stopped|on-failure[:MAX] as docker's RestartPolicy."""
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (count and name != "on-failure"):
        raise ContainerError(f"invalid restart policy {text!r}")
    try:
        limit = int(count) if count else 0
    except ValueError:
        raise ContainerError(f"invalid restart count in {text!r}") from None
    return {"Name": name, "MaximumRetryCount": limit}
