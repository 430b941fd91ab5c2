"""Run by test_rate_limits_served.py in a plain (not gevent-patched) Python: discord.py sends messages and
reports, as JSON on stdout, what it sent and the rate-limit warnings it logged.

    python discord_client.py BASE_URL TOKEN CHANNEL_ID COUNT
"""
import asyncio
import json
import logging
import sys
import time

import discord
from discord.http import Route


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


async def main(base_url: str, token: str, channel_id: int, count: int) -> dict:
    Route.BASE = base_url + "/api/v10"
    recorder = Recorder()
    logging.getLogger("discord.http").addHandler(recorder)
    client = discord.Client(intents=discord.Intents.none())
    await client.login(token)
    try:
        channel = client.get_partial_messageable(channel_id)
        started = time.monotonic()
        sent = [(await channel.send(f"discord.py {i}")).id for i in range(count)]
        return {"sent": [str(i) for i in sent], "seconds": time.monotonic() - started, "warnings": recorder.messages}
    finally:
        await client.close()


if __name__ == "__main__":
    url, token, channel, number = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(url, token, int(channel), int(number)))))
