"""Threads with discord.py's HTTP layer, unmodified, against real gunicorn (2 gevent workers) on SQLite and on
PostgreSQL: tests/e2e/discord_threads_scenario.py starts threads from a message and on their own (public and
private), posts in a forum, sends, joins and leaves, lists archived threads and archives with ``Thread.edit``."""
from __future__ import annotations

import pytest

from app import create_app
from tests.e2e.scenarios import run_scenario
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.server import gunicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SCENARIO_TIMEOUT = 90


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def observed(request, tmp_path_factory):
    """(seed, report): one scenario run per database."""
    tmp_path = tmp_path_factory.mktemp(f"e2e-threads-{request.param}")
    with migrated_database(request.param, tmp_path) as settings:
        app = create_app(settings)
        try:
            make = Factory(app.extensions["chatstore"])
            bot, friend = make.actor("threads-bot"), make.actor("threads-friend")
            guild_id, channel_id = make.guild(bot, name="threads guild")
            make.member(guild_id, friend)
            forum_id = make.channel(guild_id, "forum", type_=15)
        finally:
            app.extensions["chatstore"].close()
        seed = {"bot": bot.id, "friend": friend.id, "channel_id": channel_id, "forum_id": forum_id}
        with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "2"}) as server:
            config = {"base_url": server.url, "token": bot.token, "friend_token": friend.token,
                      "channel_id": channel_id, "forum_id": forum_id, "timeout": SCENARIO_TIMEOUT}
            report = run_scenario("discord_threads_scenario.py", config, server)
            yield seed, report


def test_threads_started_from_a_message_and_on_their_own(observed):
    seed, report = observed
    from_message = report["from_message"]
    assert from_message["id"] == from_message["message_id"]
    assert (from_message["type"], from_message["parent_id"], from_message["owner_id"]) == (
        "public_thread", seed["channel_id"], seed["bot"])
    assert (from_message["auto_archive_duration"], from_message["archived"]) == (60, False)
    assert (report["public"]["type"], report["private"]["type"]) == ("public_thread", "private_thread")
    assert report["friend_private"] == {"status": 403, "code": 50001}


def test_sending_joining_and_leaving(observed):
    seed, report = observed
    assert report["sent"]["channel_id"] == report["public"]["id"]
    assert report["thread_history"] == ["in the thread"]
    assert report["members_after_join"] == sorted([seed["bot"], seed["friend"]])
    assert report["members_after_leave"] == [seed["bot"]]


def test_a_forum_post_with_its_first_message(observed):
    seed, report = observed
    post = report["post"]
    assert (post["parent_id"], post["type"], post["name"]) == (seed["forum_id"], "public_thread", "a post")
    assert post["message_id"] == post["id"] == post["message_channel_id"]
    assert post["message_content"] == "the post's first message"


def test_archiving_listing_and_reopening(observed):
    _, report = observed
    public_id = report["public"]["id"]
    assert report["edited"]["archived"] is True and report["edited"]["id"] == public_id
    assert report["archived_threads"] == [public_id]
    assert report["archived_private"] == []
    assert report["reopened"]["archived"] is False and report["reopened_message"] == "reopens it"
