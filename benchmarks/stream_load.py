"""The stream benchmark's load: S real WebSocket clients in one asyncio
process (aiohttp), each subscribed to ``prices`` (4 instruments) and
``copies``, answering pings. Reads its orders from argv (JSON) and prints one
JSON line of results when told to stop (stdin closes) — run by
benchmarks.stream, never alone."""

import asyncio
import json
import sys
import time

import aiohttp
import orjson

CONNECT_CONCURRENCY = 50


async def client(session, url, token, symbols, latencies, counts, ready, stop) -> None:
    async with session.ws_connect(url, headers={"Authorization": f"Token {token}"}, heartbeat=None) as ws:
        await ws.send_str(json.dumps({"op": "subscribe", "topic": "prices", "instruments": symbols}))
        await ws.send_str(json.dumps({"op": "subscribe", "topic": "copies"}))
        snapshots = 0
        while not stop.is_set():
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            counts[0] += 1
            for item in orjson.loads(message.data):
                kind = item.get("type")
                if kind == "snapshot":
                    snapshots += 1
                    if snapshots == 2:
                        ready.release()
                elif kind == "delta" and item["topic"] == "prices" and counts[1]:
                    for row in item["data"]["changed"]:
                        latencies.append((row["at"], now))
                elif kind == "ping":
                    await ws.send_str(orjson.dumps({"op": "pong", "t": item["t"]}).decode())


async def main(orders: dict) -> None:
    url, tokens, symbols, sockets = orders["url"], orders["tokens"], orders["symbols"], orders["sockets"]
    latencies: list[tuple[float, float]] = []  # (the mark's time, when it arrived)
    counts = [0, 0]  # messages, measuring (0/1)
    ready = asyncio.Semaphore(0)
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []

        async def start(i: int) -> None:
            async with gate:
                task = asyncio.create_task(
                    client(session, url, tokens[i % len(tokens)], symbols, latencies, counts, ready, stop)
                )
                tasks.append(task)
                await ready.acquire()  # its two snapshots arrived

        await asyncio.gather(*(start(i) for i in range(sockets)))
        print(json.dumps({"connected": sockets}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.readline()  # "measure"
        counts[0], counts[1] = 0, 1
        started = time.monotonic()
        await reader.readline()  # EOF or "stop"
        elapsed = time.monotonic() - started
        failed = sum(1 for t in tasks if t.done())
        print(json.dumps({"latencies": latencies, "messages": counts[0], "seconds": elapsed, "closed": failed}))
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
