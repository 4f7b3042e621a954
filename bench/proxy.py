#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that counts the bytes the server sends, and can
SIGKILL a process once a number of bytes has passed: how `bench/update.sh`
measures the bytes an interrupted and resumed update costs on the wire.

usage: proxy.py LISTEN_PORT SERVER_PORT COUNT_FILE [RATE [DELAY_MS]]
  RATE      bytes per second the server may send in all (default: 0, no
            limit), a link of that speed
  DELAY_MS  milliseconds each request waits before it reaches the server
            (default: 0): a link with that round trip, as a client sees it
            (a request's answer starts that much later)
  Control by files next to COUNT_FILE (re-read on every read):
    COUNT_FILE.kill   "PID BYTES": SIGKILL PID once BYTES more have passed
                      since the file appeared (then the file is removed)
  COUNT_FILE holds the total forwarded from the server, rewritten as it grows.
"""
import asyncio
import os
import signal
import sys

import time

listen_port, server_port, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 0
delay = int(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0
total = 0
kill_base = None
started = None  # the link's clock starts with its first byte


def account(n):
    global total, kill_base, started
    if started is None:
        started = time.monotonic()
    total += n
    kill = count_file + ".kill"
    if os.path.exists(kill):
        try:
            pid, after = (int(x) for x in open(kill).read().split())
        except ValueError:
            return
        if kill_base is None:
            kill_base = total - n
        if total - kill_base >= after:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.remove(kill)
            kill_base = None


async def pipe(reader, writer, count):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            if not count and delay:
                await asyncio.sleep(delay)
            if count:
                account(len(data))
                if rate:
                    # The link: all connections share `rate` bytes per second.
                    wait = started + total / rate - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_connection("127.0.0.1", server_port)
    await asyncio.gather(
        pipe(client_reader, server_writer, False),
        pipe(server_reader, client_writer, True),
    )


async def report():
    while True:
        await asyncio.sleep(0.05)
        with open(count_file + ".tmp", "w") as f:
            f.write(str(total))
        os.replace(count_file + ".tmp", count_file)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    asyncio.create_task(report())
    async with server:
        await server.serve_forever()


asyncio.run(main())
