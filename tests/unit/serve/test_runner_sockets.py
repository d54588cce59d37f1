"""The listening sockets Palestra's servers run on: connections accepted from them have
Nagle's algorithm off, as asyncio gives sockets it opens itself. With it on, each reply on
a kept-alive connection (API server -> controller, API server -> worker) waited for the
client's delayed ACK, about 40 ms a hop."""

from __future__ import annotations

import asyncio
import socket

from palestra.serve.runner import reserve


def test_accepted_connections_send_without_delay() -> None:
    async def accepted_nodelay() -> int:
        listening = reserve("127.0.0.1", 0)
        port = listening.getsockname()[1]
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Capture(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Capture, sock=listening)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0
