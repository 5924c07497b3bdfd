"""The auth_http endpoint nginx's mail proxy needs: every request is answered

    HTTP/1.0 200 OK
    Auth-Status: OK
    Auth-Server: 127.0.0.1
    Auth-Port: <sink port>

usage: auth_http.py LISTEN_PORT SINK_PORT   (listens on 127.0.0.1 only; runs until SIGTERM)

`GET /served` answers with a `Served: <n>` header: how many auth requests were answered.

A plain asyncio server rather than http.server: nginx opens one HTTP/1.0 connection per
session, and on the shared load-generator core a thread per request would cost more than the
benchmark should spend on it.
"""
import asyncio
import signal
import sys


async def main(port: int, sink_port: int):
    reply = ("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
             f"Auth-Port: {sink_port}\r\nContent-Length: 0\r\n\r\n").encode()

    served = 0

    async def handle(reader, writer):
        nonlocal served
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if head.startswith(b"GET /served "):      # for bench/compare's check, not nginx
                writer.write(f"HTTP/1.0 200 OK\r\nServed: {served}\r\n\r\n".encode())
            else:
                served += 1
                writer.write(reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
