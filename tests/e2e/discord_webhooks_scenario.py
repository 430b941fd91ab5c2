"""Drive incoming webhooks with discord.py, unmodified: create one as a bot, execute it from its URL alone (no bot
token) with and without a file, edit and delete its messages, send into a thread (``thread=``), start a forum post
from a forum's webhook (``thread_name=``), edit and delete the webhook; print a JSON report of
what the client observed.

Run by tests/e2e/test_discord_py_webhooks.py as a plain Python process (asyncio and aiohttp are unreliable under
the test process's gevent patch). discord.py's webhook module builds its requests with discord.http.Route, so
setting ``Route.BASE`` points it at the server too; ``Webhook.from_url`` reads the id and token from Discord's
URL form (``webhook.url``), which is all it needs. Reads its configuration as JSON on stdin::

    {"base_url": "http://127.0.0.1:PORT", "token": "...", "channel_id": 1, "forum_id": 2, "timeout": 120}

Prints one JSON object and exits 0; on a failure prints the report so far with an ``error`` and exits 1.
"""
from __future__ import annotations

import io
import sys

import aiohttp
import discord
from scenario_main import run


def message_summary(message: discord.Message) -> dict:
    return {"id": message.id, "content": message.content, "author_id": message.author.id,
            "author_name": message.author.name, "author_bot": message.author.bot, "webhook_id": message.webhook_id,
            "edited": message.edited_at is not None,
            "attachments": [(a.filename, a.size) for a in message.attachments]}


async def not_found(call) -> dict | None:
    try:
        await call
    except discord.NotFound as exc:
        return {"status": exc.status, "code": exc.code}
    return None


async def scenario(config: dict, report: dict) -> None:
    bot = discord.Client(intents=discord.Intents.none())
    await bot.login(config["token"])
    try:
        channel = await bot.fetch_channel(config["channel_id"])
        webhook = await channel.create_webhook(name="e2e hook")
        report["created"] = {"id": webhook.id, "name": webhook.name, "channel_id": webhook.channel_id,
                             "type": str(webhook.type), "has_token": bool(webhook.token),
                             "user": webhook.user.id if webhook.user else None}
        report["listed"] = [hook.id for hook in await channel.webhooks()]

        async with aiohttp.ClientSession() as session:
            hook = discord.Webhook.from_url(webhook.url, session=session)
            sent = await hook.send("hello from the hook", username="Smee", wait=True)
            report["sent"] = message_summary(sent)
            report["seen_by_bot"] = message_summary(await channel.fetch_message(sent.id))
            report["fetched_by_hook"] = message_summary(await hook.fetch_message(sent.id))

            edited = await hook.edit_message(sent.id, content="edited by the hook")
            report["edited"] = message_summary(edited)

            with_file = await hook.send("with a file", file=discord.File(io.BytesIO(b"hook bytes"), "hook.txt"),
                                        wait=True)
            report["with_file"] = message_summary(with_file)
            report["file_bytes"] = (await (await channel.fetch_message(with_file.id)).attachments[0].read()).decode()

            await hook.delete_message(sent.id)
            report["deleted_fetch"] = await not_found(channel.fetch_message(sent.id))

            renamed = await webhook.edit(name="renamed hook")
            report["renamed"] = renamed.name
            by_token = await hook.edit(name="renamed by token")
            report["renamed_by_token"] = by_token.name
            # Both answers of the token routes carry the token: the webhooks discord.py builds from them can send.
            refetched = await hook.fetch()
            report["sent_by_fetched_and_edited"] = [
                (await again.send(f"from the {kind} webhook", wait=True)).content
                for kind, again in (("fetched", refetched), ("edited", by_token))]
            report["named_now"] = (await bot.fetch_webhook(webhook.id)).name

            # Into a thread of its channel (thread=), and a forum webhook's post (thread_name=).
            thread = await channel.create_thread(name="hook thread", type=discord.ChannelType.public_thread)
            in_thread = await hook.send("into the thread", thread=discord.Object(thread.id), wait=True)
            report["in_thread"] = {**message_summary(in_thread), "channel_id": in_thread.channel.id,
                                   "thread_id": thread.id}
            edited = await hook.edit_message(in_thread.id, content="edited in the thread",
                                             thread=discord.Object(thread.id))
            report["in_thread_edited"] = edited.content
            fetched = await hook.fetch_message(in_thread.id, thread=discord.Object(thread.id))
            report["in_thread_fetched"] = fetched.content
            report["thread_counted"] = (await bot.fetch_channel(thread.id)).message_count
            await hook.delete_message(in_thread.id, thread=discord.Object(thread.id))
            report["in_thread_deleted"] = await not_found(thread.fetch_message(in_thread.id))

            forum = await bot.fetch_channel(config["forum_id"])
            forum_webhook = await forum.create_webhook(name="forum hook")
            forum_hook = discord.Webhook.from_url(forum_webhook.url, session=session)
            first = await forum_hook.send("the first message", thread_name="Deploy 42", wait=True)
            post = await bot.fetch_channel(first.channel.id)
            report["post"] = {"message_id": first.id, "channel_id": first.channel.id, "id": post.id,
                              "name": post.name, "parent_id": post.parent_id, "owner_id": post.owner_id,
                              "webhook_id": forum_webhook.id, "starter": (await post.fetch_message(first.id)).content}

            await webhook.delete()
            report["after_delete"] = await not_found(hook.send("too late", wait=True))
    finally:
        await bot.close()


if __name__ == "__main__":
    sys.exit(run(scenario))
