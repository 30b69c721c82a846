"""The one exception every seccomp module raises."""

from __future__ import annotations

from oci_runtime.errors import RuntimeFailure


class SeccompError(RuntimeFailure):
    """A seccomp profile that cannot become a filter, or a filter the kernel or agent refused.

    The message names the config field (`linux.seccomp.syscalls[3].action`) and the value at fault.
    """
