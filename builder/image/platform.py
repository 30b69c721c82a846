"""The platform images are built and picked for: this host's, named as OCI and Go name platforms
(os "linux", architecture "amd64"/"arm64"/..., variant "v8"/"v7"/...). The one table from `uname -m`."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass

from builder.errors import BuildError

# uname -m -> GOARCH
_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
            "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}
# What containerd's platforms.Parse knows (GOOS and GOARCH values); anything else is refused.
KNOWN_OS = {"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux", "netbsd",
            "openbsd", "plan9", "solaris", "wasip1", "windows"}
KNOWN_ARCH = {"386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
              "ppc64le", "riscv64", "s390x", "wasm", "sparc64"}
_VARIANT = {"aarch64": "v8", "arm64": "v8", "armv7l": "v7", "armv6l": "v6"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def format(self) -> str:
        """"os/arch[/variant]", as --platform and $TARGETPLATFORM spell it."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.strip().lower().split("/")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise BuildError(f"invalid platform {text!r}: want os/arch[/variant]")
        if parts[0] not in KNOWN_OS or (len(parts) > 1 and _GO_ARCH.get(parts[1], parts[1]) not in KNOWN_ARCH):
            raise BuildError(f"invalid platform {text!r}: unknown operating system or architecture")
        if len(parts) == 1:
            return cls(parts[0], host_platform().architecture, "")
        return cls(parts[0], _GO_ARCH.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else "")


def host_platform() -> Platform:
    machine = _platform.machine().lower()
    return Platform("linux", _GO_ARCH.get(machine, machine), _VARIANT.get(machine, ""))
