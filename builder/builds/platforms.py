"""The platforms of a build: the target (`--platform`, else this host), each stage's (`FROM --platform`,
else the target), and the rule that only this host's platform can run. A stage for another platform
builds as long as it runs nothing (FROM, COPY, ADD, metadata); its RUN steps are refused with an error
naming both platforms, since pydock has no emulator. Cached steps run nothing, so they stay usable."""

from __future__ import annotations

from builder.errors import BuildError
from builder.image.platform import Platform, host_platform


def parse_target(value: str | None) -> Platform | None:
    """--platform: one os/arch[/variant] (a comma-separated list asks for a multi-platform build)."""
    if not value:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if len(names) > 1:
        raise BuildError(f"multiple platforms ({value}) need a multi-platform build, which pydock does not do: "
                         "build once per --platform")
    return Platform.parse(names[0]) if names else None


def of_config(config: dict) -> Platform:
    """The platform an image config says it is for."""
    return Platform(str(config.get("os") or ""), str(config.get("architecture") or ""),
                    str(config.get("variant") or ""))


def same(have: Platform, want: Platform) -> bool:
    """Whether an image for `have` serves a request for `want` (a variant counts only if both name one)."""
    if (have.os, have.architecture) != (want.os, want.architecture):
        return False
    return not (have.variant and want.variant) or have.variant == want.variant


def ensure_runnable(config: dict) -> None:
    """Refuse to run a command in a filesystem built for a platform this host cannot execute."""
    have, host = of_config(config), host_platform()
    if have.os and have.architecture and (have.os, have.architecture) != (host.os, host.architecture):
        raise BuildError(f"cannot run a command for platform {have.format()} on this {host.format()} host "
                         "(pydock does not emulate other platforms; a stage for another platform may only "
                         "use FROM, COPY, ADD and metadata instructions)")
