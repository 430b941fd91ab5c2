"""Drive threads with discord.py's HTTP layer and print a JSON report of what the client observed.

Run by tests/e2e/test_discord_py_threads.py as a plain Python process (asyncio with aiohttp is not reliable under
the test process's gevent patch). Reads its configuration as JSON on stdin::

    {"base_url": "http://127.0.0.1:PORT", "token": "...", "friend_token": "...", "channel_id": 1,
     "forum_id": 2, "timeout": 120}

Prints one JSON object on stdout and exits 0; on any failure prints the report so far with an ``error`` (the
traceback) and exits 1. It only logs in over HTTP.
"""
from __future__ import annotations

import sys

import discord
from scenario_main import login, run


def thread_summary(thread: discord.Thread) -> dict:
    return {"id": thread.id, "name": thread.name, "type": thread.type.name, "parent_id": thread.parent_id,
            "owner_id": thread.owner_id, "archived": thread.archived, "locked": thread.locked,
            "auto_archive_duration": thread.auto_archive_duration, "message_count": thread.message_count,
            "member_count": thread.member_count}



async def scenario(config: dict, report: dict) -> None:
    bot = await login(config["token"])
    friend = await login(config["friend_token"])
    try:
        channel = await bot.fetch_channel(config["channel_id"])
        message = await channel.send("start a thread here")
        from_message = await message.create_thread(name="from a message", auto_archive_duration=60)
        report["from_message"] = {**thread_summary(from_message), "message_id": message.id}

        public = await channel.create_thread(name="public one", type=discord.ChannelType.public_thread)
        private = await channel.create_thread(name="private one", type=discord.ChannelType.private_thread)
        report["public"], report["private"] = thread_summary(public), thread_summary(private)

        sent = await public.send("in the thread")
        report["sent"] = {"id": sent.id, "channel_id": sent.channel.id, "content": sent.content}
        report["thread_history"] = [m.content async for m in public.history(limit=10)]

        friend_public = await friend.fetch_channel(public.id)
        await friend_public.join()
        report["members_after_join"] = sorted(m.id for m in await public.fetch_members())
        await friend_public.leave()
        report["members_after_leave"] = sorted(m.id for m in await public.fetch_members())
        try:
            await friend.fetch_channel(private.id)
            report["friend_private"] = "visible"
        except discord.HTTPException as exc:
            report["friend_private"] = {"status": exc.status, "code": exc.code}

        forum = await bot.fetch_channel(config["forum_id"])
        post = await forum.create_thread(name="a post", content="the post's first message")
        report["post"] = {**thread_summary(post.thread), "message_id": post.message.id,
                          "message_content": post.message.content, "message_channel_id": post.message.channel.id}

        archived = await public.edit(archived=True)
        report["edited"] = thread_summary(archived)
        report["archived_threads"] = [t.id async for t in channel.archived_threads(limit=None)]
        report["archived_private"] = [t.id async for t in channel.archived_threads(private=True, limit=None)]
        reopened = await public.send("reopens it")
        report["reopened"] = thread_summary(await bot.fetch_channel(public.id))
        report["reopened_message"] = reopened.content
    finally:
        await bot.close()
        await friend.close()


if __name__ == "__main__":
    sys.exit(run(scenario))
