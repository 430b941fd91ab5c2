"""Drive attachments, typing, DMs and the guild list with discord.py, unmodified, and read back a channel of every
kind of message the service stores; print a JSON report of what the client observed.

Run by tests/e2e/test_discord_py_attachments.py as a plain Python process (asyncio and aiohttp are unreliable
under the test process's gevent patch). Reads its configuration as JSON on stdin::

    {"base_url": "http://127.0.0.1:PORT", "token": "...", "friend_token": "...", "channel_id": 1,
     "corpus_channel_id": 2, "image": "<base64 PNG>", "timeout": 120}

Prints one JSON object and exits 0; on a failure prints the report so far with an ``error`` and exits 1.
"""
from __future__ import annotations

import base64
import hashlib
import io
import sys

import discord
from scenario_main import login, run


def attachment_summary(attachment: discord.Attachment) -> dict:
    return {"id": attachment.id, "filename": attachment.filename, "size": attachment.size,
            "content_type": attachment.content_type, "width": attachment.width, "height": attachment.height,
            "description": attachment.description, "url": attachment.url}


async def downloaded(attachment: discord.Attachment) -> str:
    """The SHA-256 of the bytes discord.py fetches from the attachment's url."""
    return hashlib.sha256(await attachment.read()).hexdigest()



async def scenario(config: dict, report: dict) -> None:
    bot = await login(config["token"])
    friend = await login(config["friend_token"])
    try:
        channel = await bot.fetch_channel(config["channel_id"])
        log = b"first line\nsecond line\n" * 100
        one = await channel.send("log", file=discord.File(io.BytesIO(log), "log.txt", description="the log"))
        report["one"] = [attachment_summary(a) for a in one.attachments]
        report["one_downloaded"] = [await downloaded(a) for a in one.attachments]

        image = base64.b64decode(config["image"])
        several = await channel.send("several", files=[
            discord.File(io.BytesIO(image), "picture.png"), discord.File(io.BytesIO(b"{}"), "data.json"),
            discord.File(io.BytesIO(bytes(range(256))), "bytes.bin")])
        report["several"] = [attachment_summary(a) for a in several.attachments]
        report["several_downloaded"] = [await downloaded(a) for a in several.attachments]

        edited = await several.edit(attachments=[several.attachments[0], several.attachments[2]])
        report["edited"] = [attachment_summary(a) for a in edited.attachments]
        refetched = await channel.fetch_message(several.id)
        report["edited_refetched"] = [a.id for a in refetched.attachments]

        async with channel.typing():
            report["typed"] = True

        friend_user = await bot.fetch_user(friend.user.id)
        dm_message = await friend_user.send("hi", file=discord.File(io.BytesIO(b"secret"), "dm.txt"))
        dm = dm_message.channel
        report["dm"] = {"type": str(dm.type), "message_channel": dm.id, "content": dm_message.content,
                        "recipient": dm.recipient.id if isinstance(dm, discord.DMChannel) and dm.recipient else None}
        friend_dm = await friend.fetch_channel(dm.id)
        report["dm_friend_view"] = {"type": str(friend_dm.type),
                                    "history": [m.content async for m in friend_dm.history(limit=10)],
                                    "file": [await downloaded(a) async for m in friend_dm.history(limit=10)
                                             for a in m.attachments]}
        answer = await friend_dm.send("hello back")
        report["dm_answer"] = answer.content

        report["guilds"] = [guild.id async for guild in bot.fetch_guilds(limit=None)]
        report["guilds_with_counts"] = [(guild.id, guild.approximate_member_count)
                                        async for guild in bot.fetch_guilds(limit=None, with_counts=True)]

        corpus = await bot.fetch_channel(config["corpus_channel_id"])
        read = []
        async for message in corpus.history(limit=None):
            read.append({"id": message.id, "embeds": [embed.to_dict() for embed in message.embeds],
                         "timestamps": [embed.timestamp.isoformat() if embed.timestamp else None
                                        for embed in message.embeds],
                         "colors": [embed.color.value if embed.color else None for embed in message.embeds],
                         "components": [len(row.children) for row in message.components],
                         "attachments": len(message.attachments)})
        report["corpus"] = read
    finally:
        await bot.close()
        await friend.close()


if __name__ == "__main__":
    sys.exit(run(scenario))
