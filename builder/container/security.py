"""`--ulimit` and `--security-opt`, read as docker reads them and applied to the container's spec.

--ulimit NAME=SOFT[:HARD] (nofile, nproc, core, ...; -1 is unlimited) replaces the runtime's default for
that resource. --security-opt no-new-privileges[=true|false], seccomp=unconfined, seccomp=PROFILE.json
(docker's profile format, checked at create and translated by seccomp.py for the container's capabilities;
it applies to --privileged too, as in docker). As docker's CLI does, the profile's content, not its path, is
kept in HostConfig.SecurityOpt: the file may change or go after create."""

from __future__ import annotations

import json

from builder.container.records import ContainerError
from builder.container.seccomp import seccomp_from_profile

_RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack")
_UNLIMITED = 2**64 - 1
MAX_PROFILE_BYTES = 16 << 20  # docker's default profile is ~25 KiB; config.json has the same bound


def parse_ulimits(specs: list[str]) -> list[dict]:
    """--ulimit values as docker's HostConfig.Ulimits."""
    out = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        soft, _, hard = values.partition(":")
        try:
            if not sep or name not in _RLIMITS:
                raise ValueError
            soft_n = int(soft)
            hard_n = int(hard) if hard else soft_n
        except ValueError:
            raise ContainerError(f"invalid ulimit argument: {spec!r} (NAME=SOFT[:HARD], NAME one of "
                                 f"{', '.join(_RLIMITS)})") from None
        if hard_n != -1 and (soft_n == -1 or soft_n > hard_n):
            raise ContainerError(f"ulimit soft limit must be less than or equal to hard limit: {spec}")
        out[name] = {"Name": name, "Hard": hard_n, "Soft": soft_n}
    return list(out.values())


def parse_security_opts(specs: list[str]) -> list[str]:
    """--security-opt values, checked (and a seccomp profile read once, so a bad file fails at create)."""
    out = []
    for spec in specs:
        key, sep, value = spec.partition("=")
        if key == "no-new-privileges":
            if sep and value not in ("true", "false"):
                raise ContainerError(f"invalid --security-opt {spec!r}: no-new-privileges takes true or false")
        elif key == "seccomp" and sep and value:
            if value != "unconfined":
                spec = "seccomp=" + json.dumps(_read_profile(value), separators=(",", ":"))
        else:
            raise ContainerError(f"invalid --security-opt: {spec!r} (no-new-privileges, seccomp=unconfined "
                                 "or seccomp=PROFILE.json)")
        out.append(spec)
    return out


def _read_profile(path: str) -> dict:
    """The profile file, checked as docker's daemon would use it (so a bad file fails at create)."""
    from oci_runtime.jsonio import load_file

    try:  # a regular file or a pipe, bounded: never a device such as /dev/zero read for ever
        profile = load_file(path, MAX_PROFILE_BYTES, pipes=True)
    except OSError as e:
        raise ContainerError(f"opening seccomp profile ({path}) failed: {e.strerror}") from None
    except ValueError as e:
        raise ContainerError(f"decoding seccomp profile ({path}) failed: {e}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise ContainerError(f"decoding seccomp profile ({path}) failed: no defaultAction")
    _check_profile(profile, path)
    return profile


def _check_profile(profile: dict, path: str) -> None:
    from builder.container.bundle import host_capabilities
    from oci_runtime.api import check_seccomp
    from oci_runtime.errors import RuntimeFailure

    try:  # with no capability and with all, so rules excluded or included by caps are checked too
        for caps in ([], host_capabilities()):
            check_seccomp(seccomp_from_profile(profile, caps))
    except (ContainerError, RuntimeFailure) as e:
        raise ContainerError(f"invalid seccomp profile ({path}): {str(e).removeprefix('seccomp profile: ')}") from None


def apply_security(spec: dict, host_config: dict) -> None:
    """--ulimit and --security-opt no-new-privileges into the spec (seccomp: container_seccomp)."""
    limits = {r["type"]: r for r in spec["process"].get("rlimits") or []}
    for u in host_config.get("Ulimits") or []:
        limits[f"RLIMIT_{u['Name'].upper()}"] = {
            "type": f"RLIMIT_{u['Name'].upper()}",
            "soft": _UNLIMITED if u["Soft"] == -1 else u["Soft"], "hard": _UNLIMITED if u["Hard"] == -1 else u["Hard"]}
    spec["process"]["rlimits"] = list(limits.values())
    for opt in host_config.get("SecurityOpt") or []:
        key, _, value = opt.partition("=")
        if key == "no-new-privileges":
            spec["process"]["noNewPrivileges"] = value in ("", "true")


def container_seccomp(host_config: dict, caps: list[str]) -> dict | None:
    """The container's linux.seccomp, as docker chooses it: seccomp=unconfined none, seccomp=FILE that
    profile (even with --privileged), --privileged none, else the default profile; all for these caps."""
    from builder.container.seccomp import default_seccomp, without_unknown_names

    for opt in host_config.get("SecurityOpt") or []:
        key, _, value = opt.partition("=")
        if key == "seccomp":
            if value == "unconfined":
                return None
            # the profile's JSON, checked at create (a record from before that kept the file's path: the file)
            profile = json.loads(value) if value.startswith("{") else _read_profile(value)
            return without_unknown_names(seccomp_from_profile(profile, caps))
    return None if host_config.get("Privileged") else without_unknown_names(default_seccomp(caps))
