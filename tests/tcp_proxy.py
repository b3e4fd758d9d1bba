"""A loopback TCP proxy that a test can cut and restore, or partition and heal: a real network
fault, not a mock."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._partitioned = False
        self._connections: dict[int, set[asyncio.StreamWriter]] = {}
        """Both ends of each connection, by the partition generation it was opened in: those
        alive when a partition began are dead after it (see `heal`)."""
        self._generation = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self._generation
        self._writers.add(writer)
        self._connections.setdefault(generation, set()).add(writer)
        if self._partitioned:
            # The SYN was answered (the port is open) but nothing gets through: the client
            # waits, as it would for a host behind a dropped route, until it gives up.
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        self._connections[generation].add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if self._partitioned:
                        continue  # dropped on the floor: no error, no answer
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Drop every connection and refuse new ones (the port is closed)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    def partition(self) -> None:
        """A silent partition: connections stay open and new ones are accepted, but no byte
        gets through in either direction (dropped, not refused: nobody is told)."""
        self._partitioned = True
        self._generation += 1

    def heal(self) -> None:
        """End the partition. Connections that lived through it are closed, as TCP keepalives
        on both ends would have ended them (bytes were lost: their streams cannot resume);
        new connections work again."""
        self._partitioned = False
        for generation in [g for g in self._connections if g < self._generation]:
            for writer in self._connections.pop(generation):
                writer.close()
        self._generation += 1
