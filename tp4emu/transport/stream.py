"""A byte-stream view of a transport connection, with trio's stream contract.

:class:`TSDUStream` turns any connection that sends and receives whole
messages (TSDUs) into a :class:`trio.abc.HalfCloseableStream`. It uses the
connection's public calls only (:class:`MessageConnection`: ``send``,
``receive``, ``aclose``, ``closed``, ``wait_send_ready``), so it serves either
transport: ``TP4Connection.as_stream()`` and ``TCPConnection.as_stream()``
both return one. The contract:

* ``send_all`` sends its data as one TSDU (``b""`` sends nothing);
* ``receive_some`` returns octets of the received TSDUs in order, and
  ``b""`` at the end of the stream;
* ISO transport has no half-close of its own: ``send_eof`` sends an empty
  TSDU, which this view reads as end of stream (so does the peer's normal
  release, ``trio.EndOfChannel`` from ``receive``);
* a release by the peer surfaces as :class:`trio.BrokenResourceError`, its
  cause the :class:`~tp4emu.core.errors.Disconnected` with the DR reason.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator
from typing import Protocol

import trio

from ..core import Disconnected

__all__ = ["ConnectionFacts", "MessageConnection", "TSDUStream"]


class MessageConnection(Protocol):
    """What :class:`TSDUStream` needs of a connection: whole TSDUs each way."""

    async def send(self, value: bytes | bytearray | memoryview) -> None:
        """Send one TSDU."""

    async def receive(self) -> bytes:
        """Receive one TSDU; ``trio.EndOfChannel`` after a normal release."""
        ...

    async def aclose(self) -> None:
        """Release the connection."""

    @property
    def closed(self) -> bool:
        """Whether our side closed the connection (or its endpoint)."""

    async def wait_send_ready(self) -> None:
        """Return when ``send`` would not wait for buffer room (or cannot send at all)."""


class TSDUStream(trio.abc.HalfCloseableStream):
    """Byte-stream view of a :class:`MessageConnection` (see the module docstring)."""

    def __init__(self, connection: MessageConnection) -> None:
        self.connection = connection
        """The connection viewed."""
        self._buffer = b""
        self._eof = False
        self._eof_sent = False
        self._closed = False
        self._busy = False

    def _check_open(self) -> None:
        if self._closed or self.connection.closed:
            raise trio.ClosedResourceError("stream was closed")

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        if self._busy:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._busy = True
        try:
            yield
        except Disconnected as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        finally:
            self._busy = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send *data* as one TSDU."""
        with self._sending():
            self._check_open()
            if self._eof_sent:
                raise trio.ClosedResourceError("send_eof() was called on this stream")
            if not data:
                await trio.lowlevel.checkpoint()
                return
            await self.connection.send(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the connection's send buffer has room."""
        with self._sending():
            self._check_open()
            await self.connection.wait_send_ready()
            self._check_open()

    async def send_eof(self) -> None:
        """Signal end of stream to the peer (an empty TSDU). Idempotent."""
        with self._sending():
            self._check_open()
            if self._eof_sent:
                await trio.lowlevel.checkpoint()
                return
            self._eof_sent = True
            await self.connection.send(b"")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive up to *max_bytes* octets; b"" at end of stream."""
        self._check_open()
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be at least 1")
        if not self._buffer and not self._eof:
            try:
                tsdu = await self.connection.receive()
            except trio.EndOfChannel:
                tsdu = b""
            except Disconnected as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            if not tsdu:
                self._eof = True
            self._buffer = tsdu
        else:
            await trio.lowlevel.checkpoint()
        n = len(self._buffer) if max_bytes is None else max_bytes
        chunk, self._buffer = self._buffer[:n], self._buffer[n:]
        return chunk

    async def aclose(self) -> None:
        """Close the stream and release the connection. Idempotent."""
        self._closed = True
        await self.connection.aclose()


class _Negotiated(Protocol):
    """The CR/CC facts a sans-IO engine (class 4 or class 0) records."""

    @property
    def calling_tsap(self) -> bytes | None: ...
    @property
    def called_tsap(self) -> bytes | None: ...
    @property
    def connect_data(self) -> bytes: ...
    @property
    def confirm_data(self) -> bytes: ...


class ConnectionFacts:
    """What a connection of either driver shows of its establishment, read from
    its engine (the attribute ``_facts``); reading them does not confirm."""

    __slots__ = ()
    _facts: _Negotiated

    @property
    def calling_tsap(self) -> bytes | None:
        """The calling TSAP-ID of the CR."""
        return self._facts.calling_tsap

    @property
    def called_tsap(self) -> bytes | None:
        """The called TSAP-ID of the CR."""
        return self._facts.called_tsap

    @property
    def connect_data(self) -> bytes:
        """The CR's user data (reading it does not confirm)."""
        return self._facts.connect_data

    @property
    def confirm_data(self) -> bytes:
        """The CC's user data."""
        return self._facts.confirm_data
