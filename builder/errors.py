"""User-facing builder errors.

Every error a user can cause (a bad Dockerfile, a missing image, a bad flag) is a
BuildError; its str() is exactly the line the CLI prints after "pydock: error: ".
"""

from __future__ import annotations


class BuildError(Exception):
    """Base class of every builder error meant for the user."""


class StepFailed(BuildError):
    """A step failed with a message that needs no "<CMD> failed:" prefix (RUN's exit status)."""


class DockerfileError(BuildError):
    """A problem in a Dockerfile, located by file name and (1-based) line number.

    lineno 0 means the problem belongs to the file as a whole (an empty file),
    and the line number is left out of the message.
    """

    def __init__(self, filename: str, lineno: int, message: str) -> None:
        self.filename = filename
        self.lineno = lineno
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.lineno > 0:
            return f"{self.filename}:{self.lineno}: {self.message}"
        return f"{self.filename}: {self.message}"
