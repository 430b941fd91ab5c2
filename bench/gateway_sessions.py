"""Holds N gateway sessions in one asyncio process (aiohttp), for bench/gateway_fanout.py; not a gevent program.

    python bench/gateway_sessions.py WS_URL TOKEN COUNT

Opens COUNT zlib-stream sessions (IDENTIFY with GUILDS | GUILD_MESSAGES, a few at a time), heartbeats each as
HELLO asks, and prints JSON lines on stdout: {"ready": COUNT} once every session has its GUILD_CREATE, then for
every MESSAGE_CREATE whose nonce starts with "fanout" {"content": NONCE, "sessions": COUNT, "last": T} when the
last session received it (the nonce, since sessions without MESSAGE_CONTENT get no content; T is
time.monotonic(), the same clock in every process of the machine). Exits on "stop" on stdin.
"""
import asyncio
import json
import sys
import time
import zlib

import aiohttp

GUILDS, GUILD_MESSAGES = 1 << 0, 1 << 9
OPENING_AT_ONCE = 50


class Session:
    def __init__(self, http, url, token, on_message):
        self.http, self.url, self.token, self.on_message = http, url, token, on_message
        self.inflator = zlib.decompressobj()
        self.buffer = bytearray()
        self.sequence = None
        self.guild_created = asyncio.Event()

    async def run(self, opened: asyncio.Semaphore):
        async with opened:
            self.ws = await self.http.ws_connect(self.url + "?v=10&encoding=json&compress=zlib-stream",
                                                 max_msg_size=0)
            hello = await self.receive()
            await self.ws.send_json({"op": 2, "d": {"token": self.token, "intents": GUILDS | GUILD_MESSAGES,
                                                    "properties": {"os": "linux", "browser": "b", "device": "b"}}})
            self.heartbeat = asyncio.create_task(self.heartbeats(hello["d"]["heartbeat_interval"] / 1000))
            while not self.guild_created.is_set():
                self.handle(await self.receive())
        while True:
            self.handle(await self.receive())

    async def heartbeats(self, interval):
        while True:
            await asyncio.sleep(interval * 0.9)
            await self.ws.send_json({"op": 1, "d": self.sequence})

    async def receive(self):
        while True:
            message = await self.ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"session ended: {message.type} {message.data} {message.extra}")
            self.buffer.extend(message.data)
            if self.buffer.endswith(b"\x00\x00\xff\xff"):
                payload = json.loads(self.inflator.decompress(bytes(self.buffer)))
                self.buffer.clear()
                return payload

    def handle(self, payload):
        if payload.get("s") is not None:
            self.sequence = payload["s"]
        if payload["t"] == "GUILD_CREATE":
            self.guild_created.set()
        elif payload["t"] == "MESSAGE_CREATE":
            self.on_message(str(payload["d"].get("nonce")))


async def main():
    url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    received: dict[str, int] = {}

    def on_message(content):
        if not content.startswith("fanout"):
            return
        received[content] = received.get(content, 0) + 1
        if received[content] == count:
            print(json.dumps({"content": content, "sessions": count, "last": time.monotonic()}), flush=True)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sessions = [Session(http, url, token, on_message) for _ in range(count)]
        opened = asyncio.Semaphore(OPENING_AT_ONCE)
        tasks = [asyncio.create_task(s.run(opened)) for s in sessions]
        waiting = asyncio.gather(*(s.guild_created.wait() for s in sessions))
        done, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:
            for task in done:
                task.result()
        print(json.dumps({"ready": count}), flush=True)
        loop = asyncio.get_running_loop()
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "stop":
            pass
        for task in tasks:
            task.cancel()


asyncio.run(main())
