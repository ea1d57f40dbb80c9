"""Running the ``tp4emu`` command line in subprocesses, bounded in time.

The child is ``sys.executable -m tp4emu``, with this process's environment
(so the same ``tp4emu`` as the tests import). :class:`Running` reads the
child's output in threads, so that every wait for a line has a timeout;
nothing here sleeps except the polling steps of :func:`wait_until`.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

TIMEOUT = 20.0
"""Seconds any one wait may take."""


def cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tp4emu", *args]


def _default_sigint() -> None:
    # A child started from a shell's background job inherits SIGINT ignored,
    # and Python then keeps it ignored: give it the default disposition back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}
    out.pop("FORCE_COLOR", None)
    out.pop("NO_COLOR", None)
    return out


def run(
    *args: str,
    stdin: Any = subprocess.DEVNULL,
    timeout: float = TIMEOUT,
    extra_env: dict[str, str] | None = None,
) -> Result:
    """Run the command to its end; its exit status, stdout and stderr."""
    proc = subprocess.run(
        cmd(*args),
        stdin=stdin,
        capture_output=True,
        timeout=timeout,
        env=env(extra_env),
        preexec_fn=_default_sigint,
        check=False,
    )
    return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode())


class Result:
    """What a finished command did."""

    def __init__(self, status: int, out: str, err: str) -> None:
        self.status = status
        self.out = out
        self.err = err

    def __repr__(self) -> str:
        return f"Result(status={self.status}, out={self.out!r}, err={self.err!r})"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll *predicate* (every 10 ms) until it holds; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Running:
    """A command running in the background; its stdout read line by line."""

    def __init__(self, *args: str, stdin: bool = False) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            cmd(*args),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env(),
            preexec_fn=_default_sigint,
        )
        self.lines: list[str] = []
        """Every stdout line read so far (without its newline)."""
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._err: list[bytes] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_out, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_err, args=(self.proc.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_out(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._queue.put(raw.decode(errors="replace").rstrip("\n"))
        self._queue.put(None)

    def _read_err(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._err.append(raw)

    def line(self, timeout: float = TIMEOUT) -> str:
        """The next stdout line; fails on timeout or end of output."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"{self.args}: no line within {timeout} s after {self.lines}"
            ) from None
        if item is None:
            self._queue.put(None)
            raise AssertionError(f"{self.args}: output ended after {self.lines}; {self.err!r}")
        self.lines.append(item)
        return item

    def until(self, prefix: str, timeout: float = TIMEOUT) -> str:
        """Read lines until one starts with *prefix*; return it."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.0, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def port(self) -> int:
        """The port of the ``listening HOST:PORT ...`` line (the first one)."""
        first = self.line()
        assert first.startswith("listening "), (first, self.err)
        return int(first.split()[1].rsplit(":", 1)[1])

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT."""
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the exit; read the rest of the output. Returns the exit status."""
        status = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._queue.put(None)
                break
            self.lines.append(item)
        return status

    @property
    def err(self) -> str:
        """stderr so far."""
        return b"".join(self._err).decode(errors="replace")

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
