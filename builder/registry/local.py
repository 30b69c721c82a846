"""An image a command names (`run`, `create`, FROM): the store's, found also under its familiar name
("docker.io/library/busybox" is in the store as "busybox:latest"), else None when a registry may have it."""

from __future__ import annotations

from builder.errors import BuildError


def resolve_local(store, ref: str):
    """The store's image for ref; None when the store lacks it and ref is a name (not an id) that could
    be pulled; the store's own error for anything else (an ambiguous id prefix, a malformed name)."""
    try:
        return store.resolve(ref)
    except BuildError as e:
        if ref.startswith("sha256:") or "not found" not in str(e):
            raise
        from builder.registry.reference import parse

        try:
            familiar = parse(ref).familiar()
        except BuildError:
            raise e from None
        if familiar != ref:
            try:
                return store.resolve(familiar)
            except BuildError:
                pass
    return None
