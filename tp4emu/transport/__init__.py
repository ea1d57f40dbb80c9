"""The I/O drivers: trio tasks and sockets around the sans-IO engines.

* :mod:`tp4emu.transport.udp` — class 4 over UDP (drives :class:`tp4emu.core.Endpoint`);
* :mod:`tp4emu.transport.tcp` — class 0 over TCP (RFC 1006; drives
  :class:`tp4emu.core.class0.Class0Connection`);
* :mod:`tp4emu.transport.stream` — a byte-stream view of a connection of either.

Both give the same API (``listen``/``accept``/``connect``, connections with
``confirm``/``reject``/``send``/``receive``/``aclose``); :func:`tp4emu.open_endpoint`
picks one with ``transport=``. Nothing here decides protocol behaviour.
"""
