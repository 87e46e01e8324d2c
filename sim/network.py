"""Small real-network pieces of the sim: TCP listeners that can go down and come back on the same port."""

from __future__ import annotations

import asyncio


class TcpListener:
    """Accepts and closes connections (enough for a TCP probe); stop() and start() keep the port."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (again); the first start picks an ephemeral port."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening: probes get 'connection refused'."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    @property
    def up(self) -> bool:
        """Listening now."""
        return self._server is not None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        del reader
        writer.close()
