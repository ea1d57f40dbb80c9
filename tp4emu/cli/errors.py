"""The one error of the command line that is not a bug: a command that cannot run."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A command cannot run: one line for stderr, and the exit status.

    ``status`` is 2 when the command line is wrong, 1 when the system said no
    (a port in use, an address not of this host, a file that cannot be written).
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
