"""Exceptions the CLI turns into one clear error line and a non-zero exit."""


class RuntimeFailure(Exception):
    """A user-facing failure; str() is the message printed and logged (runc's wording where engines match it)."""


class ConfigInvalid(RuntimeFailure):
    """config.json (or an exec process.json) is malformed or refused."""


class ContainerNotFound(RuntimeFailure):
    def __init__(self, container_id: str):
        super().__init__(f"container {container_id} does not exist")
        self.container_id = container_id


class ContainerExists(RuntimeFailure):
    def __init__(self, container_id: str):
        super().__init__(f"container with id {container_id} already exists")


class BadState(RuntimeFailure):
    """The operation is not allowed in the container's current status."""
