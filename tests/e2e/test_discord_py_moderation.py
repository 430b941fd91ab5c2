"""discord.py, unmodified, against real gunicorn: member.timeout(), member.edit(nick=, roles=), guild.ban() with
delete_message_seconds, guild.bans(), guild.unban() and guild.audit_logs() with the reasons given by ``reason=``.
Runs on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app import create_app
from app.auth.permissions import Permission
from tests.e2e.scenarios import run_scenario
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.server import gunicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCENARIO_TIMEOUT = 120
EVERYONE = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def observed(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(f"e2e-moderation-{request.param}")
    with migrated_database(request.param, tmp_path) as settings:
        app = create_app(settings)
        try:
            make = Factory(app.extensions["chatstore"])
            bot, member, spammer = make.actor("mod-bot"), make.actor("mod-member"), make.actor("mod-spammer")
            guild_id, channel_id = make.guild(bot, name="moderated", everyone=EVERYONE)
            make.member(guild_id, member)
            make.member(guild_id, spammer)
        finally:
            app.extensions["chatstore"].close()
        # One worker: the scenario's requests run in order, and its rate limits are the defaults.
        with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1",
                              "RATE_LIMIT_ENABLED": "false"}) as server:
            config = {"base_url": server.url, "token": bot.token, "member_token": member.token,
                      "spammer_token": spammer.token, "guild_id": guild_id, "channel_id": channel_id,
                      "member_id": member.id, "spammer_id": spammer.id, "timeout": SCENARIO_TIMEOUT}
            started = datetime.now(timezone.utc)
            report = run_scenario("discord_moderation_scenario.py", config, server)
            yield {"bot": bot, "member": member, "spammer": spammer, "started": started}, report


def test_a_timeout_is_served_back_and_stops_sending(observed):
    seeded, report = observed
    until = datetime.fromisoformat(report["timed_out_until"])
    assert seeded["started"] + timedelta(minutes=9) < until < seeded["started"] + timedelta(minutes=11)
    assert report["is_timed_out"] is True
    assert report["timed_out_send"] == 50013


def test_nick_and_roles_edit(observed):
    _, report = observed
    assert report["edited"]["nick"] == "renamed"
    assert len(report["edited"]["roles"]) == 1


def test_a_ban_purges_the_spam_and_lists_the_ban_until_unbanned(observed):
    seeded, report = observed
    assert report["history_after_ban"] == [[seeded["bot"].id, "kept"]]
    assert report["bans"] == [[seeded["spammer"].id, "spam"]]
    assert report["bans_after_unban"] == []


def test_the_audit_log_reads_back_with_reasons(observed):
    seeded, report = observed
    audit = [(e["action"], e["reason"]) for e in report["audit"]]
    assert audit == [("unban", "forgiven"), ("ban", "spam"), ("member_role_update", "promote"),
                     ("member_update", "promote"), ("role_create", "new team"), ("member_update", "calmer now"),
                     ("member_update", "cool off")]
    assert all(e["user"] == seeded["bot"].id for e in report["audit"])
    assert report["audit"][1]["target"] == seeded["spammer"].id
    assert report["audit_bans"] == [seeded["spammer"].id]
