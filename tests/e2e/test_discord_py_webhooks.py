"""discord.py, unmodified, against real gunicorn: incoming webhooks (tests/e2e/discord_webhooks_scenario.py).
A bot creates one; the webhook, opened from its URL without the bot's token, sends (and sends a file), edits and
deletes its message, also in a thread (``thread=``); a forum's webhook starts a post (``thread_name=``); the bot and
the token rename it; the bot deletes it and its token stops working. Runs on
SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from app import create_app
from tests.e2e.scenarios import run_scenario
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.server import gunicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCENARIO_TIMEOUT = 120


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def observed(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(f"e2e-webhooks-{request.param}")
    with migrated_database(request.param, tmp_path) as settings:
        app = create_app(settings)
        try:
            make = Factory(app.extensions["chatstore"])
            bot = make.actor("hooks-bot")
            guild_id, channel_id = make.guild(bot, name="hooks guild")
            forum_id = make.channel(guild_id, "forum", type_=15)
        finally:
            app.extensions["chatstore"].close()
        with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "2"}) as server:
            config = {"base_url": server.url, "token": bot.token, "channel_id": channel_id, "forum_id": forum_id,
                      "timeout": SCENARIO_TIMEOUT}
            report = run_scenario("discord_webhooks_scenario.py", config, server)
            yield {"bot": bot, "channel_id": channel_id, "forum_id": forum_id}, report


def test_the_bot_creates_a_webhook_with_its_token(observed):
    seed, report = observed
    created = report["created"]
    assert (created["name"], created["channel_id"], created["type"]) == ("e2e hook", seed["channel_id"],
                                                                         "WebhookType.incoming")
    assert created["has_token"] and created["user"] == seed["bot"].id
    assert report["listed"] == [created["id"]]


def test_the_webhook_sends_from_its_url_as_itself(observed):
    _, report = observed
    hook_id = report["created"]["id"]
    expected = {"id": report["sent"]["id"], "content": "hello from the hook", "author_id": hook_id,
                "author_name": "Smee", "author_bot": True, "webhook_id": hook_id, "edited": False, "attachments": []}
    assert report["sent"] == expected
    assert report["seen_by_bot"] == expected and report["fetched_by_hook"] == expected


def test_the_webhook_edits_and_deletes_its_message(observed):
    _, report = observed
    edited = report["edited"]
    assert (edited["id"], edited["content"], edited["edited"]) == (report["sent"]["id"], "edited by the hook", True)
    assert report["deleted_fetch"] == {"status": 404, "code": 10008}


def test_the_webhook_sends_a_file(observed):
    _, report = observed
    assert report["with_file"]["attachments"] == [["hook.txt", 10]]
    assert report["file_bytes"] == "hook bytes"


def test_renames_and_delete(observed):
    _, report = observed
    assert report["renamed"] == "renamed hook"
    assert report["renamed_by_token"] == "renamed by token" == report["named_now"]
    assert report["sent_by_fetched_and_edited"] == ["from the fetched webhook", "from the edited webhook"]
    assert report["after_delete"] == {"status": 404, "code": 10015}


def test_the_webhook_sends_into_a_thread_of_its_channel(observed):
    _, report = observed
    sent = report["in_thread"]
    assert (sent["channel_id"], sent["webhook_id"], sent["content"]) == (
        sent["thread_id"], report["created"]["id"], "into the thread")
    assert report["in_thread_edited"] == report["in_thread_fetched"] == "edited in the thread"
    assert report["thread_counted"] == 1
    assert report["in_thread_deleted"] == {"status": 404, "code": 10008}


def test_a_forum_webhook_starts_a_post(observed):
    seed, report = observed
    post = report["post"]
    assert post["message_id"] == post["channel_id"] == post["id"]
    assert (post["name"], post["parent_id"], post["owner_id"]) == ("Deploy 42", seed["forum_id"], post["webhook_id"])
    assert post["starter"] == "the first message"
