"""Unmodified discord.py's gateway client in a plain Python process (asyncio under gevent's patch is unreliable).

Usage: discord_bot_scenario.py BASE_URL TOKEN (content|plain). Only ``Route.BASE`` is changed; the gateway URL
comes from GET /gateway/bot (AutoShardedClient asks for it; discord.Client would connect to Discord's own).
Prints one JSON line per thing the client observed; stops on "stop" on stdin.
"""
import asyncio
import json
import logging
import sys

import discord
from discord.http import Route

Route.BASE = sys.argv[1] + "/api/v10"
TOKEN = sys.argv[2]
PRIVILEGED = sys.argv[3] == "content"

# discord.py's own log on stderr, which the test shows when the bot misses something.
discord.utils.setup_logging(level=logging.INFO)

intents = discord.Intents.default()
intents.message_content = PRIVILEGED
intents.members = PRIVILEGED
client = discord.AutoShardedClient(intents=intents)


def emit(kind, **data):
    print(json.dumps({"event": kind, **data}), flush=True)


@client.event
async def on_ready():
    emit("ready", user=client.user.id, guilds=[g.id for g in client.guilds],
         channels=sorted(c.id for g in client.guilds for c in g.channels),
         members=sorted(m.id for g in client.guilds for m in g.members))


@client.event
async def on_resumed():
    emit("resumed")


@client.event
async def on_message(message):
    emit("message", id=message.id, content=message.content, author=message.author.id,
         author_is_member=isinstance(message.author, discord.Member), channel=message.channel.id,
         guild=message.guild.id if message.guild else None)


@client.event
async def on_raw_message_edit(payload):
    emit("edit", id=payload.message_id, content=payload.data.get("content"))


@client.event
async def on_raw_message_delete(payload):
    emit("delete", id=payload.message_id)


@client.event
async def on_raw_reaction_add(payload):
    emit("reaction", id=payload.message_id, emoji=str(payload.emoji), user=payload.user_id)


@client.event
async def on_guild_channel_pins_update(channel, last_pin):
    emit("pins", channel=channel.id, last_pin=last_pin is not None)


async def stop_on_request():
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "stop":
        pass
    await client.close()


async def main():
    async with client:
        stopper = asyncio.create_task(stop_on_request())
        await client.start(TOKEN)
        stopper.cancel()


asyncio.run(main())
