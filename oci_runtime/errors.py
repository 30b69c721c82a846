"""Exceptions the CLI turns into one clear error line and a non-zero exit."""


class RuntimeFailure(Exception):
    """A user-facing failure; str() is the message printed and logged (runc's wording where engines match it)."""


class ConfigInvalid(RuntimeFailure):
    """config.json (or an exec process.json) is malformed or refused."""


class ContainerNotFound(RuntimeFailure):
    @classmethod
    def for_id(cls, container_id: str) -> "ContainerNotFound":
        return cls(f"container {container_id} does not exist")


class ContainerExists(RuntimeFailure):
    @classmethod
    def for_id(cls, container_id: str) -> "ContainerExists":
        return cls(f"container with id {container_id} already exists")


class StateCorrupt(RuntimeFailure):
    """A container's state.json cannot be read or does not hold what pyrunc wrote."""


class BadState(RuntimeFailure):
    """The operation is not allowed in the container's current status."""


def error_kind(e: RuntimeFailure) -> str:
    """The name of the most specific class of this module that e is: the error's kind for API callers."""
    return next(cls.__name__ for cls in type(e).__mro__ if cls.__module__ == __name__)


def error_text(e: BaseException) -> str:
    """The one-line message for any exception raised while setting up a container."""
    if isinstance(e, RuntimeFailure):
        return str(e)
    if isinstance(e, OSError):
        return e.strerror if e.strerror and not e.filename else str(e)
    return f"{type(e).__name__}: {e}"


def child_failed(report, e: BaseException, code: int = 1):
    """End a forked child after a failure: report it (report(text), best effort), then _exit. Never
    returns, whatever happens while reporting: a forked child must not fall back into its parent's code.
    Imports nothing: the child may already be inside the container's filesystem."""
    import os

    try:
        report(error_text(e))
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code)
