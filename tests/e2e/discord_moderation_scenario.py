"""Moderate with discord.py, unmodified: a timeout, a nick and roles edit, a ban that purges the banned user's
recent messages, the ban list, an unban, and the audit log with the reasons given; print a JSON report.

Run by tests/e2e/test_discord_py_moderation.py as a plain Python process (asyncio and aiohttp are unreliable
under the test process's gevent patch). Reads its configuration as JSON on stdin::

    {"base_url": "http://127.0.0.1:PORT", "token": "...", "member_token": "...", "spammer_token": "...",
     "guild_id": 1, "channel_id": 2, "member_id": 3, "spammer_id": 4, "timeout": 120}

Prints one JSON object and exits 0; on a failure prints the report so far with an ``error`` and exits 1.
"""
from __future__ import annotations

import datetime
import sys

import discord
from scenario_main import login, run


async def scenario(config: dict, report: dict) -> None:
    bot = await login(config["token"])
    member_client = await login(config["member_token"])
    spammer = await login(config["spammer_token"])
    try:
        guild = await bot.fetch_guild(config["guild_id"])
        member = await guild.fetch_member(config["member_id"])

        await member.timeout(datetime.timedelta(minutes=10), reason="cool off")
        member = await guild.fetch_member(config["member_id"])
        report["timed_out_until"] = member.timed_out_until.isoformat() if member.timed_out_until else None
        report["is_timed_out"] = member.is_timed_out()
        # The timed-out member may read but not send.
        member_channel = await member_client.fetch_channel(config["channel_id"])
        try:
            await member_channel.send("may I?")
            report["timed_out_send"] = "sent"
        except discord.Forbidden as refused:
            report["timed_out_send"] = refused.code
        await member.timeout(None, reason="calmer now")

        role = await guild.create_role(name="helpers", reason="new team")
        await member.edit(nick="renamed", roles=[role], reason="promote")
        guild = await bot.fetch_guild(config["guild_id"])  # with the new role, so that member.roles resolves it
        member = await guild.fetch_member(config["member_id"])
        report["edited"] = {"nick": member.nick, "roles": sorted(r.id for r in member.roles if r.id != guild.id)}

        spam_channel = await spammer.fetch_channel(config["channel_id"])
        for i in range(3):
            await spam_channel.send(f"spam {i}")
        channel = await bot.fetch_channel(config["channel_id"])
        await channel.send("kept")
        await guild.ban(discord.Object(config["spammer_id"]), delete_message_seconds=3600, reason="spam")
        report["history_after_ban"] = [(m.author.id, m.content) async for m in channel.history(limit=50)]
        report["bans"] = [(entry.user.id, entry.reason) async for entry in guild.bans()]
        await guild.unban(discord.Object(config["spammer_id"]), reason="forgiven")
        report["bans_after_unban"] = [entry.user.id async for entry in guild.bans()]

        report["audit"] = [{"action": entry.action.name, "reason": entry.reason,
                            "user": entry.user.id if entry.user else None,
                            "target": getattr(entry.target, "id", None)}
                           async for entry in guild.audit_logs(limit=50)]
        report["audit_bans"] = [entry.target.id async for entry in guild.audit_logs(action=discord.AuditLogAction.ban)]
    finally:
        for client in (bot, member_client, spammer):
            await client.close()


if __name__ == "__main__":
    sys.exit(run(scenario))
