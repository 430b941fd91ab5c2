"""Drive the service with discord.py's HTTP layer and print a JSON report of what the client observed.

Run by tests/e2e/test_discord_py.py as a plain Python process: the test process is gevent-patched, and asyncio
with aiohttp is not reliable under that patch. Reads its configuration as JSON on stdin::

    {"base_url": "http://127.0.0.1:PORT", "token": "...", "friend_token": "...", "channel_id": 1,
     "after_id": 2, "before_id": 3, "around_id": 4, "before_time": "2025-01-20T00:00:00+00:00",
     "after_time": "2025-02-20T00:00:00+00:00",
     "old_message_id": 5, "timeout": 120}

Prints one JSON object on stdout and exits 0; on any failure prints the report so far with an ``error``
(the traceback) and exits 1. It only logs in over HTTP: never start(), run() or connect(), which need a gateway.
"""
from __future__ import annotations

import sys
from datetime import datetime

import discord
from scenario_main import login, run

CUSTOM_EMOJI = discord.PartialEmoji(name="blobwave", id=987654321098765432)


def message_summary(message: discord.Message) -> dict:
    return {
        "id": message.id, "content": message.content, "author_id": message.author.id,
        "channel_id": message.channel.id, "type": message.type.name, "pinned": message.pinned,
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "reference_message_id": message.reference.message_id if message.reference else None,
        "mention_ids": sorted(user.id for user in message.mentions),
        "reactions": [[str(r.emoji), r.count, r.me] for r in message.reactions],
    }


async def ids(history) -> list[int]:
    return [message.id async for message in history]


async def fetch_status(channel, message_id: int) -> dict:
    """What fetching a message gives: its id, or the HTTP error discord.py raised."""
    try:
        return {"found": (await channel.fetch_message(message_id)).id}
    except discord.HTTPException as exc:
        return {"status": exc.status, "code": exc.code}



async def scenario(config: dict, report: dict) -> None:
    bot = await login(config["token"])
    friend = await login(config["friend_token"])
    try:
        report["user"] = {"id": bot.user.id, "name": bot.user.name, "bot": bot.user.bot}
        report["application_id"] = bot.application_id
        channel = await bot.fetch_channel(config["channel_id"])
        report["channel"] = {"id": channel.id, "name": channel.name, "type": channel.type.name,
                             "guild_id": channel.guild.id, "last_message_id": channel.last_message_id}

        sent = [await channel.send(f"live {n}") for n in range(3)]
        report["sent"] = [message_summary(m) for m in sent]

        report["history"] = {
            "default": await ids(channel.history(limit=None)),
            "oldest_first": await ids(channel.history(limit=None, oldest_first=True)),
            "after": await ids(channel.history(limit=None, after=discord.Object(config["after_id"]))),
            "after_30": await ids(channel.history(limit=30, after=discord.Object(config["after_id"]))),
            "before_150": await ids(channel.history(limit=150, before=discord.Object(config["before_id"]))),
            "before_time": await ids(channel.history(
                limit=None, before=datetime.fromisoformat(config["before_time"]))),
            "after_time": await ids(channel.history(limit=None, after=datetime.fromisoformat(config["after_time"]))),
            "around_10": await ids(channel.history(limit=10, around=discord.Object(config["around_id"]))),
        }

        old = await channel.fetch_message(config["old_message_id"])
        report["old_message"] = message_summary(old)

        edited = await sent[0].edit(content="live 0, edited")
        report["edited"] = message_summary(edited)
        report["edited_refetched"] = message_summary(await channel.fetch_message(sent[0].id))

        await sent[1].delete()
        report["deleted_fetch"] = await fetch_status(channel, sent[1].id)

        doomed = [await channel.send(f"doomed {n}") for n in range(2)]
        await channel.delete_messages(doomed)
        report["bulk_deleted"] = {"ids": [m.id for m in doomed],
                                  "fetch": [await fetch_status(channel, m.id) for m in doomed],
                                  "newest_after": await ids(channel.history(limit=3))}

        target = sent[2]
        await target.add_reaction("🔥")
        friend_view = await (await friend.fetch_channel(channel.id)).fetch_message(target.id)
        for emoji in ("🔥", "👍", CUSTOM_EMOJI):
            await friend_view.add_reaction(emoji)
        reacted = await channel.fetch_message(target.id)
        report["reactions"] = message_summary(reacted)["reactions"]
        report["reaction_users"] = {str(r.emoji): await ids(r.users()) for r in reacted.reactions}
        await reacted.remove_reaction("🔥", bot.user)
        await reacted.remove_reaction("👍", discord.Object(friend.user.id))
        report["reactions_after_removal"] = message_summary(await channel.fetch_message(target.id))["reactions"]
        await reacted.clear_reaction(CUSTOM_EMOJI)
        report["reactions_after_clearing_one"] = message_summary(await channel.fetch_message(target.id))["reactions"]
        await reacted.clear_reactions()
        report["reactions_after_clearing_all"] = message_summary(await channel.fetch_message(target.id))["reactions"]

        await target.pin()
        report["pins"] = [[m.id, m.pinned_at.isoformat()] async for m in channel.pins(limit=None)]
        await target.unpin()
        report["pins_after_unpin"] = [m.id async for m in channel.pins(limit=None)]

        reply = await target.reply("a reply")
        report["reply"] = message_summary(reply)
        fetched_reply = await channel.fetch_message(reply.id)
        report["reply_fetched"] = message_summary(fetched_reply)
        resolved = fetched_reply.reference.resolved if fetched_reply.reference else None
        report["reply_resolved"] = message_summary(resolved) if isinstance(resolved, discord.Message) else None

        report["newest_at_end"] = await ids(channel.history(limit=3))
        report["last_message_id_at_end"] = (await bot.fetch_channel(channel.id)).last_message_id
    finally:
        await bot.close()
        await friend.close()


if __name__ == "__main__":
    sys.exit(run(scenario))
