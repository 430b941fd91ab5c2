"""A discord.py bot run against chatstore: the usual `client.run()`, only discord.py's REST base URL changed.

    CHATSTORE_URL=http://127.0.0.1:8080 CHATSTORE_TOKEN=<bot token> python docs/examples/gateway_bot.py

It answers "!ping" with "pong" and prints every message it sees. AutoShardedClient asks GET /gateway/bot for
the gateway's URL and shard count; discord.Client (discord.py 2.x) connects to wss://gateway.discord.gg without
asking, so with it also set ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(<url of /gateway/bot>)``.
"""
import os

import discord
from discord.http import Route

Route.BASE = os.environ.get("CHATSTORE_URL", "http://127.0.0.1:8080") + "/api/v10"

intents = discord.Intents.default()
intents.message_content = True  # privileged: `flask users intents BOT_ID --allow message_content`
client = discord.AutoShardedClient(intents=intents)


@client.event
async def on_ready():
    print(f"ready as {client.user} in {[guild.name for guild in client.guilds]}", flush=True)


@client.event
async def on_message(message: discord.Message):
    print(f"#{message.channel} {message.author}: {message.content}", flush=True)
    if message.content == "!ping":
        await message.channel.send("pong")


client.run(os.environ["CHATSTORE_TOKEN"])
