"""Incoming webhooks: managing them with MANAGE_WEBHOOKS, executing them and their messages with the token."""
from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from app.auth.permissions import Permission
from app.ratelimit import RateLimiter
from models import Webhook
from tests.support.factories import Actor
from tests.support.responses import error, field_error_codes, json_body, no_content
from tests.support.search import empty_search_index, index_now, mark_indexed

MEMBER_PERMISSIONS = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY


@dataclass
class Room:
    owner: Actor
    member: Actor  # no MANAGE_WEBHOOKS
    manager: Actor  # MANAGE_WEBHOOKS through a role
    outsider: Actor
    guild_id: int
    channel_id: int


@pytest.fixture
def room(make):
    owner, member, manager, outsider = (make.actor(n) for n in ("owner", "member", "manager", "outsider"))
    guild_id, channel_id = make.guild(owner, everyone=MEMBER_PERMISSIONS)
    make.member(guild_id, member)
    make.member(guild_id, manager, roles=[make.role(guild_id, Permission.MANAGE_WEBHOOKS, name="hooks")])
    return Room(owner, member, manager, outsider, guild_id, channel_id)


def create(client, room, name="Captain Hook", actor=None, channel_id=None):
    return client.post(f"/api/v10/channels/{channel_id or room.channel_id}/webhooks", json={"name": name},
                       headers=(actor or room.manager).headers)


@pytest.fixture
def hook(client, room):
    return json_body(create(client, room), 200)


def execute(client, hook, wait=True, **body):
    query = "?wait=true" if wait else ""
    return client.post(f"/api/v10/webhooks/{hook['id']}/{hook['token']}{query}", json=body)


# -- management -----------------------------------------------------------------------------------------------

def test_creation_answers_the_token_and_url_once(client, room, hook, published):
    assert hook["type"] == 1 and hook["name"] == "Captain Hook"
    assert hook["channel_id"] == str(room.channel_id) and hook["guild_id"] == str(room.guild_id)
    assert hook["user"]["id"] == str(room.manager.id)
    assert len(hook["token"]) == 68
    assert hook["url"] == f"http://localhost/api/v10/webhooks/{hook['id']}/{hook['token']}"
    fetched = json_body(client.get(f"/api/v10/webhooks/{hook['id']}", headers=room.owner.headers), 200)
    assert fetched["name"] == "Captain Hook" and fetched["user"]["id"] == str(room.manager.id)
    # Only a hash of the token is kept: it cannot be served again.
    assert "token" not in fetched and "url" not in fetched


def test_the_token_is_stored_hashed(client, room, hook, resources):
    with resources.session() as session:
        stored = session.get(Webhook, int(hook["id"]))
        assert hook["token"].encode() not in stored.token_sha256 and len(stored.token_sha256) == 32


def test_creation_records_webhooks_update(client, room, published):
    json_body(create(client, room), 200)
    assert published.dispatches() == [("WEBHOOKS_UPDATE", {"channel_id": str(room.channel_id),
                                                           "guild_id": str(room.guild_id)})]


@pytest.mark.parametrize("name,code", [("", "BASE_TYPE_MIN_LENGTH"), ("x" * 81, "BASE_TYPE_MAX_LENGTH"),
                                       ("my clyde", "USERNAME_INVALID_CONTAINS"),
                                       ("DiscordBot", "USERNAME_INVALID_CONTAINS")])
def test_invalid_names_are_refused(client, room, name, code):
    assert field_error_codes(create(client, room, name), "name") == [code]


def test_an_avatar_is_refused_not_dropped(client, room):
    response = client.post(f"/api/v10/channels/{room.channel_id}/webhooks",
                           json={"name": "hook", "avatar": "data:image/png;base64,iVBORw0KGgo="},
                           headers=room.manager.headers)
    assert field_error_codes(response, "avatar") == ["UNSUPPORTED_FIELD"]


def test_fifteen_webhooks_per_channel(client, room):
    for index in range(15):
        json_body(create(client, room, f"hook {index}"), 200)
    error(create(client, room, "one too many"), 400, 30007)


def test_listing_by_channel_and_guild(client, room, make, hook):
    other_channel = make.channel(room.guild_id, "other")
    other = json_body(create(client, room, "other", channel_id=other_channel), 200)
    by_channel = json_body(client.get(f"/api/v10/channels/{room.channel_id}/webhooks",
                                      headers=room.manager.headers), 200)
    assert [w["id"] for w in by_channel] == [hook["id"]]
    by_guild = json_body(client.get(f"/api/v10/guilds/{room.guild_id}/webhooks", headers=room.manager.headers), 200)
    assert [w["id"] for w in by_guild] == [hook["id"], other["id"]]
    assert all("token" not in w for w in by_guild)


def test_edit_renames_and_moves_within_the_guild(client, room, make, hook, published):
    other_channel = make.channel(room.guild_id, "other")
    published.clear()
    edited = json_body(client.patch(f"/api/v10/webhooks/{hook['id']}", json={"name": "Smee",
                                                                              "channel_id": str(other_channel)},
                                    headers=room.manager.headers), 200)
    assert (edited["name"], edited["channel_id"]) == ("Smee", str(other_channel))
    assert [d["channel_id"] for t, d in published.dispatches() if t == "WEBHOOKS_UPDATE"] == [
        str(room.channel_id), str(other_channel)]
    sent = json_body(execute(client, hook, content="moved"), 200)
    assert sent["channel_id"] == str(other_channel) and sent["author"]["username"] == "Smee"


def test_edit_refuses_a_channel_of_another_guild(client, room, make, hook):
    _, foreign_channel = make.guild(room.manager, name="elsewhere")
    response = client.patch(f"/api/v10/webhooks/{hook['id']}", json={"channel_id": str(foreign_channel)},
                            headers=room.manager.headers)
    assert field_error_codes(response, "channel_id") == ["CHANNEL_NOT_IN_GUILD"]


def test_delete_records_the_event_and_the_token_then_fails(client, room, hook, published):
    no_content(client.delete(f"/api/v10/webhooks/{hook['id']}", headers=room.manager.headers))
    assert published.dispatches() == [("WEBHOOKS_UPDATE", {"channel_id": str(room.channel_id),
                                                           "guild_id": str(room.guild_id)})]
    error(execute(client, hook, content="too late"), 404, 10015)
    error(client.get(f"/api/v10/webhooks/{hook['id']}/{hook['token']}"), 404, 10015)
    error(client.get(f"/api/v10/webhooks/{hook['id']}", headers=room.manager.headers), 404, 10015)


# -- the permission matrix -------------------------------------------------------------------------------------

MANAGEMENT = [
    ("post", "/channels/{channel}/webhooks", {"name": "x"}),
    ("get", "/channels/{channel}/webhooks", None),
    ("get", "/guilds/{guild}/webhooks", None),
    ("get", "/webhooks/{hook}", None),
    ("patch", "/webhooks/{hook}", {"name": "renamed"}),
    ("delete", "/webhooks/{hook}", None),
]


@pytest.mark.parametrize("method,path,body", MANAGEMENT)
def test_a_member_without_manage_webhooks_gets_50013(client, room, hook, method, path, body):
    url = "/api/v10" + path.format(channel=room.channel_id, guild=room.guild_id, hook=hook["id"])
    error(getattr(client, method)(url, json=body, headers=room.member.headers), 403, 50013)


@pytest.mark.parametrize("method,path,body", MANAGEMENT)
def test_an_outsider_gets_403(client, room, hook, method, path, body):
    url = "/api/v10" + path.format(channel=room.channel_id, guild=room.guild_id, hook=hook["id"])
    error(getattr(client, method)(url, json=body, headers=room.outsider.headers), 403, 50001)


@pytest.mark.parametrize("method,path,body", MANAGEMENT)
def test_management_needs_a_token(client, room, hook, method, path, body):
    url = "/api/v10" + path.format(channel=room.channel_id, guild=room.guild_id, hook=hook["id"])
    error(getattr(client, method)(url, json=body), 401, 0)


def test_moving_needs_manage_webhooks_in_the_target_channel(client, room, make, hook):
    hidden = make.channel(room.guild_id, "hidden")
    make.overwrite(hidden, room.manager.id, 1, deny=Permission.MANAGE_WEBHOOKS)
    response = client.patch(f"/api/v10/webhooks/{hook['id']}", json={"channel_id": str(hidden)},
                            headers=room.manager.headers)
    error(response, 403, 50013)


TOKEN_ROUTES = [
    ("get", "", None),
    ("patch", "", {"name": "renamed"}),
    ("delete", "", None),
    ("post", "?wait=true", {"content": "hi"}),
]


@pytest.mark.parametrize("method,suffix,body", TOKEN_ROUTES)
def test_a_wrong_token_gets_50027(client, hook, method, suffix, body):
    wrong = "A" * 68
    response = getattr(client, method)(f"/api/v10/webhooks/{hook['id']}/{wrong}{suffix}", json=body)
    error(response, 401, 50027)


@pytest.mark.parametrize("method,suffix,body", TOKEN_ROUTES)
def test_an_unknown_webhook_gets_10015(client, hook, method, suffix, body):
    response = getattr(client, method)(f"/api/v10/webhooks/{int(hook['id']) + 1}/{hook['token']}{suffix}",
                                       json=body)
    error(response, 404, 10015)


# -- with the token --------------------------------------------------------------------------------------------

def test_the_token_routes_show_no_user_and_take_no_authorization(client, room, hook):
    """They answer with the token their caller sent (and its url), as Discord does: discord.py's fetch() and
    edit() build the webhook they return from it."""
    fetched = json_body(client.get(f"/api/v10/webhooks/{hook['id']}/{hook['token']}"), 200)
    assert fetched["id"] == hook["id"] and "user" not in fetched
    assert (fetched["token"], fetched["url"]) == (hook["token"], hook["url"])
    renamed = json_body(client.patch(f"/api/v10/webhooks/{hook['id']}/{hook['token']}", json={"name": "Smee"}), 200)
    assert renamed["name"] == "Smee" and "user" not in renamed and renamed["token"] == hook["token"]


def test_the_token_edit_refuses_channel_id(client, room, hook):
    response = client.patch(f"/api/v10/webhooks/{hook['id']}/{hook['token']}",
                            json={"channel_id": str(room.channel_id)})
    assert field_error_codes(response, "channel_id") == ["UNSUPPORTED_FIELD"]


def test_the_token_deletes(client, room, hook, published):
    no_content(client.delete(f"/api/v10/webhooks/{hook['id']}/{hook['token']}"))
    assert [t for t, _ in published.dispatches()] == ["WEBHOOKS_UPDATE"]
    error(execute(client, hook, content="gone"), 404, 10015)


def test_execute_with_wait_answers_the_message_with_the_webhook_as_author(client, room, hook, published):
    published.clear()
    sent = json_body(execute(client, hook, content="ahoy", username="Smee", avatar_url="https://example.com/a.png"),
                     200)
    assert sent["webhook_id"] == hook["id"] and sent["content"] == "ahoy"
    assert sent["author"] == {"id": hook["id"], "username": "Smee", "discriminator": "0000", "global_name": None,
                              "avatar": None, "bot": True, "public_flags": 0, "flags": 0,
                              "avatar_url": "https://example.com/a.png"}
    [(kind, data)] = published.dispatches()
    assert kind == "MESSAGE_CREATE" and data["webhook_id"] == hook["id"] and data["author"] == sent["author"]
    # History shows it the same way, whoever reads it.
    history = json_body(client.get(f"/api/v10/channels/{room.channel_id}/messages", headers=room.member.headers),
                        200)
    assert history[0]["author"] == sent["author"] and history[0]["webhook_id"] == hook["id"]


def test_execute_without_wait_answers_204_and_still_sends(client, room, hook):
    no_content(execute(client, hook, wait=False, content="quiet"))
    history = json_body(client.get(f"/api/v10/channels/{room.channel_id}/messages", headers=room.member.headers),
                        200)
    assert [m["content"] for m in history] == ["quiet"]
    assert history[0]["author"]["username"] == "Captain Hook"


def test_execute_takes_embeds_components_and_mentions(client, room, hook):
    sent = json_body(execute(client, hook, content=f"<@{room.member.id}> @everyone", embeds=[{"title": "t"}],
                             allowed_mentions={"parse": ["users"]}, tts=True,
                             components=[{"type": 1, "components": [{"type": 2, "style": 1, "label": "b",
                                                                      "custom_id": "c"}]}]), 200)
    assert sent["embeds"][0]["title"] == "t" and sent["components"][0]["components"][0]["custom_id"] == "c"
    assert [u["id"] for u in sent["mentions"]] == [str(room.member.id)] and sent["mention_everyone"] is False
    assert sent["tts"] is True


def test_execute_with_a_file(client, room, hook):
    response = client.post(f"/api/v10/webhooks/{hook['id']}/{hook['token']}?wait=true",
                           data={"payload_json": '{"content": "a file"}',
                                 "files[0]": (io.BytesIO(b"hello"), "hello.txt")},
                           content_type="multipart/form-data")
    sent = json_body(response, 200)
    assert [(a["filename"], a["size"]) for a in sent["attachments"]] == [("hello.txt", 5)]
    assert client.get(sent["attachments"][0]["url"]).data == b"hello"


# -- threads and forum posts ----------------------------------------------------------------------------------

def thread_of(client, room, channel_id=None, **body):
    body = {"name": "a thread", "type": 11, **body}
    return json_body(client.post(f"/api/v10/channels/{channel_id or room.channel_id}/threads", json=body,
                                 headers=room.owner.headers), 201)


def execute_in(client, hook, thread_id, **body):
    return client.post(f"/api/v10/webhooks/{hook['id']}/{hook['token']}?wait=true&thread_id={thread_id}",
                       json=body)


def channel(client, room, channel_id):
    return json_body(client.get(f"/api/v10/channels/{channel_id}", headers=room.owner.headers), 200)


def test_execute_into_a_thread_of_its_channel_counts_there_and_joins_nobody(client, room, hook, published):
    thread = thread_of(client, room)
    published.clear()
    sent = json_body(execute_in(client, hook, thread["id"], content="in the thread"), 200)
    assert (sent["channel_id"], sent["webhook_id"]) == (thread["id"], hook["id"])
    assert [t for t, _ in published.dispatches()] == ["MESSAGE_CREATE"]
    counted = channel(client, room, thread["id"])
    assert (counted["message_count"], counted["total_message_sent"], counted["member_count"]) == (1, 1, 1)
    members = json_body(client.get(f"/api/v10/channels/{thread['id']}/thread-members",
                                   headers=room.owner.headers), 200)
    assert [m["user_id"] for m in members] == [str(room.owner.id)]
    # Its messages there are found with the thread's id, and only with it.
    base = f"/api/v10/webhooks/{hook['id']}/{hook['token']}/messages/{sent['id']}"
    error(client.get(base), 404, 10008)
    assert json_body(client.get(f"{base}?thread_id={thread['id']}"), 200)["content"] == "in the thread"
    edited = json_body(client.patch(f"{base}?thread_id={thread['id']}", json={"content": "edited"}), 200)
    assert (edited["content"], edited["channel_id"]) == ("edited", thread["id"])
    no_content(client.delete(f"{base}?thread_id={thread['id']}"))
    error(client.get(f"{base}?thread_id={thread['id']}"), 404, 10008)
    assert channel(client, room, thread["id"])["message_count"] == 0


def test_a_webhooks_message_in_an_archived_thread_is_neither_edited_nor_deleted(client, room, hook):
    thread = thread_of(client, room)
    sent = json_body(execute_in(client, hook, thread["id"], content="in the thread"), 200)
    json_body(client.patch(f"/api/v10/channels/{thread['id']}", json={"archived": True}, headers=room.owner.headers),
              200)
    base = f"/api/v10/webhooks/{hook['id']}/{hook['token']}/messages/{sent['id']}?thread_id={thread['id']}"
    error(client.patch(base, json={"content": "edited"}), 400, 50083)
    error(client.delete(base), 400, 50083)
    assert json_body(client.get(base), 200)["content"] == "in the thread"


def test_thread_id_must_name_a_thread_of_the_webhooks_channel(client, room, hook, make):
    elsewhere = make.channel(room.guild_id, "elsewhere")
    foreign = thread_of(client, room, elsewhere)
    for thread_id in (123, room.channel_id, elsewhere, foreign["id"]):
        error(execute_in(client, hook, thread_id, content="x"), 404, 10003)
    sent = json_body(execute(client, hook, content="x"), 200)
    error(client.get(f"/api/v10/webhooks/{hook['id']}/{hook['token']}/messages/{sent['id']}"
                     f"?thread_id={foreign['id']}"), 404, 10003)
    assert channel(client, room, foreign["id"])["message_count"] == 0


def test_a_send_reopens_an_archived_thread_and_a_locked_one_refuses(client, room, hook):
    thread = thread_of(client, room)
    url = f"/api/v10/channels/{thread['id']}"
    json_body(client.patch(url, json={"archived": True}, headers=room.owner.headers), 200)
    json_body(execute_in(client, hook, thread["id"], content="wake up"), 200)
    assert channel(client, room, thread["id"])["thread_metadata"]["archived"] is False
    json_body(client.patch(url, json={"locked": True}, headers=room.owner.headers), 200)
    error(execute_in(client, hook, thread["id"], content="x"), 403, 160005)
    json_body(client.patch(url, json={"archived": True}, headers=room.owner.headers), 200)
    error(execute_in(client, hook, thread["id"], content="x"), 403, 50083)
    assert channel(client, room, thread["id"])["thread_metadata"]["archived"] is True
    assert channel(client, room, thread["id"])["message_count"] == 1


def test_thread_name_is_for_forum_webhooks_and_not_with_thread_id(client, room, hook):
    thread = thread_of(client, room)
    error(execute(client, hook, content="x", thread_name="post"), 400, 220003)
    error(execute_in(client, hook, thread["id"], content="x", thread_name="post"), 400, 220002)
    assert field_error_codes(execute(client, hook, content="x", applied_tags=["1"]), "applied_tags") == [
        "UNSUPPORTED_FIELD"]


def test_a_forum_webhook_starts_a_post_whose_first_message_is_its_own(client, room, make, published):
    forum = make.channel(room.guild_id, "forum", type_=15)
    hook = json_body(create(client, room, channel_id=forum), 200)
    error(execute(client, hook, content="where?"), 400, 220001)
    assert field_error_codes(execute(client, hook, content="x", thread_name="x" * 101), "thread_name") == [
        "BASE_TYPE_MAX_LENGTH"]
    published.clear()
    error(execute(client, hook, content=" ", thread_name="empty"), 400, 50006)
    assert published.dispatches() == []
    sent = json_body(execute(client, hook, content="first", thread_name="Deploy 42"), 200)
    assert sent["id"] == sent["channel_id"] and sent["webhook_id"] == hook["id"]
    post = channel(client, room, sent["channel_id"])
    assert (post["type"], post["name"], post["parent_id"], post["owner_id"]) == (11, "Deploy 42", str(forum),
                                                                                 hook["id"])
    assert (post["member_count"], post["message_count"]) == (0, 0)
    assert [t for t, _ in published.dispatches()] == ["THREAD_CREATE", "MESSAGE_CREATE"]
    # The post then takes the webhook's messages with thread_id, as any thread of its channel.
    json_body(execute_in(client, hook, post["id"], content="second"), 200)
    assert channel(client, room, post["id"])["message_count"] == 1
    messages = json_body(client.get(f"/api/v10/channels/{post['id']}/messages", headers=room.owner.headers), 200)
    assert [m["content"] for m in messages] == ["second", "first"]


def test_a_forum_webhook_post_whose_message_is_refused_leaves_no_thread(client, room, make):
    forum = make.channel(room.guild_id, "forum", type_=15)
    hook = json_body(create(client, room, channel_id=forum), 200)
    refused = execute(client, hook, content="x", thread_name="post", attachments=[{"id": 0}])
    assert refused.status_code == 400, refused.get_data(as_text=True)
    active = json_body(client.get(f"/api/v10/guilds/{room.guild_id}/threads/active", headers=room.owner.headers),
                       200)
    assert active["threads"] == []


@pytest.mark.parametrize("body,path,code", [
    ({"content": ""}, (), None),
    ({"content": "x", "username": "clyde"}, ("username",), "USERNAME_INVALID_CONTAINS"),
    ({"content": "x", "avatar_url": "ftp://x"}, ("avatar_url",), "URL_TYPE_INVALID_SCHEME"),
    ({"content": "x" * 2001}, ("content",), "BASE_TYPE_MAX_LENGTH"),
])
def test_execute_validates_like_a_message(client, hook, body, path, code):
    response = execute(client, hook, **body)
    if code is None:
        error(response, 400, 50006)
    else:
        assert field_error_codes(response, *path) == [code]


def test_a_webhook_reads_edits_and_deletes_only_its_own_messages(client, room, hook, published):
    other = json_body(create(client, room, "other"), 200)
    mine = json_body(execute(client, hook, content="mine"), 200)
    theirs = json_body(execute(client, other, content="theirs"), 200)
    user_message = json_body(client.post(f"/api/v10/channels/{room.channel_id}/messages", json={"content": "user"},
                                         headers=room.member.headers), 200)
    base = f"/api/v10/webhooks/{hook['id']}/{hook['token']}/messages"
    assert json_body(client.get(f"{base}/{mine['id']}"), 200)["content"] == "mine"
    for foreign in (theirs["id"], user_message["id"]):
        error(client.get(f"{base}/{foreign}"), 404, 10008)
        error(client.patch(f"{base}/{foreign}", json={"content": "hijacked"}), 404, 10008)
        error(client.delete(f"{base}/{foreign}"), 404, 10008)

    published.clear()
    edited = json_body(client.patch(f"{base}/{mine['id']}", json={"content": "edited"}), 200)
    assert edited["content"] == "edited" and edited["edited_timestamp"] is not None
    assert edited["author"]["username"] == "Captain Hook" and edited["webhook_id"] == hook["id"]
    [(kind, data)] = published.dispatches()
    assert kind == "MESSAGE_UPDATE" and data["webhook_id"] == hook["id"]

    published.clear()
    no_content(client.delete(f"{base}/{mine['id']}"))
    assert published.dispatches() == [("MESSAGE_DELETE", {"id": mine["id"], "channel_id": str(room.channel_id),
                                                          "guild_id": str(room.guild_id)})]
    error(client.get(f"{base}/{mine['id']}"), 404, 10008)


def test_webhook_message_routes_need_the_right_token(client, room, hook):
    mine = json_body(execute(client, hook, content="mine"), 200)
    wrong = f"/api/v10/webhooks/{hook['id']}/{'B' * 68}/messages/{mine['id']}"
    error(client.get(wrong), 401, 50027)
    error(client.patch(wrong, json={"content": "x"}), 401, 50027)
    error(client.delete(wrong), 401, 50027)


def test_members_cannot_edit_a_webhook_message_but_moderators_delete_it(client, room, hook, make):
    mine = json_body(execute(client, hook, content="mine"), 200)
    url = f"/api/v10/channels/{room.channel_id}/messages/{mine['id']}"
    error(client.patch(url, json={"content": "x"}, headers=room.owner.headers), 403, 50005)
    error(client.delete(url, headers=room.member.headers), 403, 50013)
    no_content(client.delete(url, headers=room.owner.headers))


@pytest.fixture
def rate_limits(app):
    """A fresh limiter with Discord's webhook limit (the suite's app runs without limits), for this test."""
    app.extensions["ratelimit"] = RateLimiter(app.config["SETTINGS"].replace(rate_limit_enabled=True,
                                                                             rate_limit_webhook_execute="5/30"))
    yield
    app.extensions.pop("ratelimit", None)


def test_executions_have_a_bucket_per_webhook(client, room, hook, rate_limits):
    other = json_body(create(client, room, "other"), 200)
    first = execute(client, hook, content="1")
    assert first.headers["X-RateLimit-Bucket"] and first.headers["X-RateLimit-Limit"] == "5"
    remaining = [int(execute(client, hook, content=str(i)).headers["X-RateLimit-Remaining"]) for i in range(4)]
    assert remaining == [3, 2, 1, 0]
    assert execute(client, hook, content="over").status_code == 429
    # Another webhook of the same channel has its own bucket.
    assert execute(client, other, content="fine").status_code == 200


def test_wrong_tokens_do_not_spend_the_webhooks_requests(client, room, hook, rate_limits):
    """A webhook's id is public (its messages name it): requests with a wrong token count apart from its own."""
    forged = {**hook, "token": "x" * len(hook["token"])}
    for _ in range(6):
        assert execute(client, forged, content="spoof").status_code in (401, 429)
    assert execute(client, hook, content="still mine").status_code == 200


def test_a_webhook_message_survives_export_and_import(app, client, room, hook, make, tmp_path):
    sent = json_body(execute(client, hook, content="exported", username="Smee",
                             avatar_url="https://example.com/a.png"), 200)
    exported = app.test_cli_runner().invoke(args=["messages", "export", "--channel", str(room.channel_id)])
    assert exported.exit_code == 0, exported.output
    # Into another channel, once the webhook is gone: the message names its sender itself.
    no_content(client.delete(f"/api/v10/webhooks/{hook['id']}", headers=room.manager.headers))
    other = make.channel(room.guild_id, "archive")
    line = exported.stdout.replace(str(room.channel_id), str(other))
    path = tmp_path / "hooks.jsonl"
    path.write_text(line)
    imported = app.test_cli_runner().invoke(args=["messages", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    restored = json_body(client.get(f"/api/v10/channels/{other}/messages/{sent['id']}", headers=room.owner.headers),
                         200)
    assert restored["author"] == sent["author"] and restored["webhook_id"] == hook["id"]


def test_search_finds_webhook_messages_by_author_type(client, resources, room, hook):
    mark_indexed(resources, room.guild_id)
    try:
        json_body(execute(client, hook, content="hooked message"), 200)
        json_body(client.post(f"/api/v10/channels/{room.channel_id}/messages", json={"content": "human message"},
                              headers=room.member.headers), 200)
        index_now(resources)
        response = client.get(f"/api/v10/guilds/{room.guild_id}/messages/search?author_type=webhook",
                              headers=room.owner.headers)
        hits = json_body(response, 200)["messages"]
        assert [(hit[0]["content"], hit[0]["webhook_id"]) for hit in hits] == [("hooked message", hook["id"])]
    finally:
        empty_search_index(resources)
