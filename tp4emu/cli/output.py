"""Output of the command line: text lines, in colour only on a terminal."""

from __future__ import annotations

import os
from typing import Any, TextIO

__all__ = ["Printer", "event_style"]


class Printer:
    """Writes lines to a text stream, with rich colours only on a terminal.

    ``color`` is ``"auto"`` (colours when the stream is a TTY and ``NO_COLOR``
    is not set), ``"always"`` or ``"never"``. Without colours the lines are
    written with :func:`print` exactly as given, so the output stays greppable.
    Every line is flushed at once (a server's log is read while it runs).
    """

    def __init__(self, stream: TextIO, color: str = "auto") -> None:
        self.stream = stream
        if color == "always":
            enabled = True
        elif color == "never":
            enabled = False
        else:
            isatty = getattr(stream, "isatty", None)
            enabled = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")
        self._console: Any = None
        if enabled:
            from rich.console import Console

            self._console = Console(
                file=stream,
                force_terminal=True,
                soft_wrap=True,
                highlight=False,
                markup=False,
                emoji=False,
            )

    @property
    def colored(self) -> bool:
        """Whether the lines are coloured."""
        return self._console is not None

    def line(self, text: str, style: str | None = None, *, head: str | None = None) -> None:
        """Write *text*; *style* colours it, *head* is a prefix in bold (on a TTY)."""
        if self._console is None:
            print(text if head is None else head + text, file=self.stream, flush=True)
            return
        from rich.text import Text

        out = Text()
        if head is not None:
            out.append(head, style="bold")
        out.append(text, style=style or "")
        self._console.print(out)
        self.stream.flush()


_EVENT_STYLES = {
    "listening": "bold",
    "accept": "cyan",
    "allow": "green",
    "connected": "green",
    "reply": "",
    "recv": "",
    "reject": "yellow",
    "refuse": "yellow",
    "close": "dim",
    "rejected:": "red",
    "refused:": "red",
    "timeout:": "red",
    "disconnected:": "red",
    "error": "red",
}


def event_style(line: str) -> str | None:
    """The colour of one line of ``serve``/``connect`` output, from its first word."""
    return _EVENT_STYLES.get(line.split(" ", 1)[0]) or None
