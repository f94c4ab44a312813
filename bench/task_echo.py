"""task_echo.py - bench/task_echo.lua in Python asyncio (streams): an echo
server over Unix stream sockets and 100 clients in one process on one event
loop, each client sending 64-byte requests one after another and reading each
echo before the next.  Prints requests per second (the best of 3 runs after
a warm-up run).  BENCH_ECHO_CLIENTS (100), BENCH_ECHO_REQUESTS (200)."""
import asyncio
import os
import time

CLIENTS = int(os.environ.get("BENCH_ECHO_CLIENTS", "100"))
REQUESTS = int(os.environ.get("BENCH_ECHO_REQUESTS", "200"))
MSG = b"x" * 64


async def serve(reader, writer):
    while True:
        data = await reader.read(64)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def client(path):
    reader, writer = await asyncio.open_unix_connection(path)
    for _ in range(REQUESTS):
        writer.write(MSG)
        await writer.drain()
        await reader.readexactly(64)
    writer.close()
    await writer.wait_closed()


async def run(n):
    path = "\0py-bench-echo-%d-%d" % (os.getpid(), n)
    server = await asyncio.start_unix_server(serve, path=path, backlog=CLIENTS)
    t0 = time.perf_counter()
    await asyncio.gather(*(client(path) for _ in range(CLIENTS)))
    took = time.perf_counter() - t0
    server.close()
    await server.wait_closed()
    return took


def main():
    asyncio.run(run(0))
    best = min(asyncio.run(run(n)) for n in range(1, 4))
    print("metric task_echo_rps %.0f req/s higher" % (CLIENTS * REQUESTS / best))


main()
