"""GET /guilds/{guild_id}/messages/search: Discord's parameters, permissions at query time, 202 while a guild is
indexed, and messages served as the history routes serve them. Events go through the real relay, bus and indexer
(tests/support/search.py), on SQLite (FTS5 file) and PostgreSQL (tsvector in the database)."""
from urllib.parse import quote, urlencode

import pytest

from app.auth.permissions import Permission
from tests.api.test_attachments import upload
from tests.support.responses import error, field_error_codes, json_body, no_content
from tests.support.search import empty_search_index, index_now, mark_indexed

ROLE, MEMBER = 0, 1
HISTORY = int(Permission.READ_MESSAGE_HISTORY)


@pytest.fixture(autouse=True)
def _empty_index(resources):
    yield
    empty_search_index(resources)


def search(client, actor, guild_id, **params):
    pairs = [(k, v) for k, values in params.items() for v in (values if isinstance(values, list) else [values])]
    return client.get(f"/api/v10/guilds/{guild_id}/messages/search?{urlencode(pairs)}", headers=actor.headers)


def found(client, actor, guild_id, **params) -> list[str]:
    body = json_body(search(client, actor, guild_id, **params), 200)
    return [hit[0]["content"] for hit in body["messages"]]


def post(client, actor, channel_id, content, **body) -> dict:
    return json_body(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": content, **body},
                                 headers=actor.headers), 200)


@pytest.fixture
def room(make, resources):
    """A guild (ready to search) with its owner, a member and its first channel."""
    owner, member = make.actor("owner", bot=False), make.actor("member", bot=True)
    guild_id, channel_id = make.guild(owner)
    make.member(guild_id, member)
    mark_indexed(resources, guild_id)

    class Room:
        pass

    room = Room()
    room.owner, room.member, room.guild_id, room.channel_id = owner, member, guild_id, channel_id
    return room


def test_messages_posted_are_found_as_the_history_routes_serve_them(client, resources, room):
    hello = post(client, room.owner, room.channel_id, "Hello wonderful World")
    post(client, room.owner, room.channel_id, "something else")
    no_content(client.put(f"/api/v10/channels/{room.channel_id}/messages/{hello['id']}/reactions/{quote('🔥')}/@me",
                          headers=room.member.headers))
    index_now(resources)
    body = json_body(search(client, room.member, room.guild_id, content="world"), 200)
    served = json_body(client.get(f"/api/v10/channels/{room.channel_id}/messages/{hello['id']}",
                                  headers=room.member.headers), 200)
    assert body == {"total_results": 1, "messages": [[served]], "threads": [], "members": [],
                    "doing_deep_historical_index": False}
    assert served["reactions"][0]["me"] is True
    # The owner did not react: the same message, with their own ``me``.
    as_owner = json_body(search(client, room.owner, room.guild_id, content="world"), 200)
    assert as_owner["messages"][0][0]["reactions"][0]["me"] is False


def test_hits_of_many_channels_with_replies_and_files_are_served_as_their_channels_serve_them(
        client, make, resources, room):
    """A page spanning channels is read back in one store call per kind: each hit still comes with its own
    channel's reactions, reply and signed attachment links."""
    other = make.channel(room.guild_id, "other")
    first = post(client, room.owner, room.channel_id, "kiwi one")
    elsewhere = post(client, room.owner, other, "kiwi two")
    answer = post(client, room.owner, other, "kiwi three", message_reference={"message_id": elsewhere["id"]})
    filed = json_body(upload(client, room.owner, room.channel_id, [("kiwi.txt", b"kiwi")], {"content": "kiwi file"}),
                      200)
    no_content(client.put(f"/api/v10/channels/{other}/messages/{elsewhere['id']}/reactions/{quote('🥝')}/@me",
                          headers=room.member.headers))
    index_now(resources)
    body = json_body(search(client, room.member, room.guild_id, content="kiwi"), 200)
    served = [json_body(client.get(f"/api/v10/channels/{channel}/messages/{message['id']}",
                                   headers=room.member.headers), 200)
              for channel, message in ((room.channel_id, filed), (other, answer), (other, elsewhere),
                                       (room.channel_id, first))]
    assert body["total_results"] == 4
    assert [hit[0] for hit in body["messages"]] == served
    assert served[0]["attachments"][0]["url"].startswith("http")
    assert served[1]["referenced_message"]["id"] == elsewhere["id"]
    assert served[2]["reactions"][0]["me"] is True


def test_a_deleted_thread_leaves_the_index_alone_or_with_its_parent(client, make, resources, room):
    parent = make.channel(room.guild_id, "parent")
    threads = [json_body(client.post(f"/api/v10/channels/{channel}/threads", json={"name": "t", "type": 11},
                                     headers=room.owner.headers), 201)["id"] for channel in (room.channel_id, parent)]
    for thread in threads:
        post(client, room.owner, thread, "zebra in a thread")
    post(client, room.owner, room.channel_id, "zebra outside")
    index_now(resources)
    assert json_body(search(client, room.owner, room.guild_id, content="zebra"), 200)["total_results"] == 3
    json_body(client.delete(f"/api/v10/channels/{threads[0]}", headers=room.owner.headers), 200)
    json_body(client.delete(f"/api/v10/channels/{parent}", headers=room.owner.headers), 200)
    index_now(resources)
    body = json_body(search(client, room.owner, room.guild_id, content="zebra"), 200)
    assert (body["total_results"], [hit[0]["content"] for hit in body["messages"]]) == (1, ["zebra outside"])


def test_a_guild_never_indexed_is_answered_202_until_its_history_is_rebuilt(client, make, resources):
    owner = make.actor()
    guild_id, channel_id = make.guild(owner)  # made without events: its history predates the index
    for n in range(3):
        post(client, owner, channel_id, f"old message {n}")
    index_now(resources)
    body = json_body(search(client, owner, guild_id, content="old"), 202)
    assert body == {"code": 110000, "message": "Index not yet available. Try again later", "retry_after": 2.0,
                    "documents_indexed": 3}
    from app.search.indexer import build_indexer

    assert build_indexer(resources).backfill_once()
    assert found(client, owner, guild_id, content="old") == ["old message 2", "old message 1", "old message 0"]


def test_a_guild_created_over_the_api_is_searchable_at_once(client, make, resources):
    owner = make.actor()
    guild = json_body(client.post("/api/v10/guilds", json={"name": "fresh guild"}, headers=owner.headers), 201)
    channel_id = json_body(client.get(f"/api/v10/guilds/{guild['id']}/channels", headers=owner.headers), 200)[0]["id"]
    post(client, owner, channel_id, "born indexed")
    index_now(resources)
    assert found(client, owner, guild["id"], content="born") == ["born indexed"]


def test_an_edited_or_deleted_message_is_not_found_by_its_old_content(client, resources, room):
    edited = post(client, room.owner, room.channel_id, "first draft")
    deleted = post(client, room.owner, room.channel_id, "draft to delete")
    index_now(resources)
    json_body(client.patch(f"/api/v10/channels/{room.channel_id}/messages/{edited['id']}",
                           json={"content": "final version"}, headers=room.owner.headers), 200)
    no_content(client.delete(f"/api/v10/channels/{room.channel_id}/messages/{deleted['id']}",
                             headers=room.owner.headers))
    index_now(resources)
    assert found(client, room.owner, room.guild_id, content="draft") == []
    assert found(client, room.owner, room.guild_id, content="final") == ["final version"]


def test_results_and_totals_come_only_from_channels_the_caller_may_read_now(client, make, resources, room):
    secret = make.channel(room.guild_id, "secret")
    post(client, room.owner, room.channel_id, "plan in general")
    post(client, room.owner, secret, "plan in secret")
    index_now(resources)
    assert json_body(search(client, room.member, room.guild_id, content="plan"), 200)["total_results"] == 2
    # Hidden after indexing: invisible at once, in results and in the total.
    make.overwrite(secret, room.guild_id, ROLE, deny=int(Permission.VIEW_CHANNEL))
    body = json_body(search(client, room.member, room.guild_id, content="plan"), 200)
    assert (body["total_results"], [m[0]["content"] for m in body["messages"]]) == (1, ["plan in general"])
    # Seeing a channel without reading its history is not enough either.
    make.overwrite(secret, room.guild_id, ROLE, deny=HISTORY)
    assert found(client, room.member, room.guild_id, content="plan") == ["plan in general"]
    assert found(client, room.member, room.guild_id, content="plan", channel_id=str(secret)) == []
    # The owner sees everything.
    assert found(client, room.owner, room.guild_id, content="plan") == ["plan in secret", "plan in general"]


def test_hits_in_threads_list_those_threads_and_the_callers_thread_members(client, resources, room):
    def thread(type_):
        return json_body(client.post(f"/api/v10/channels/{room.channel_id}/threads",
                                     json={"name": f"thread {type_}", "type": type_}, headers=room.owner.headers), 201)

    public, private = thread(11), thread(12)
    post(client, room.owner, room.channel_id, "plan in the channel")
    post(client, room.owner, public["id"], "plan in public")
    post(client, room.owner, private["id"], "plan in private")
    no_content(client.put(f"/api/v10/channels/{public['id']}/thread-members/@me", headers=room.member.headers))
    index_now(resources)

    def served(thread_id):
        return json_body(client.get(f"/api/v10/channels/{thread_id}", headers=room.owner.headers), 200)

    # The private thread's hit (and so the thread) is not the member's to see.
    body = json_body(search(client, room.member, room.guild_id, content="plan"), 200)
    assert sorted(m[0]["content"] for m in body["messages"]) == ["plan in public", "plan in the channel"]
    assert body["threads"] == [served(public["id"])]
    assert [(m["id"], m["user_id"]) for m in body["members"]] == [(public["id"], str(room.member.id))]
    body = json_body(search(client, room.owner, room.guild_id, content="plan"), 200)
    assert body["threads"] == [served(public["id"]), served(private["id"])]
    assert [m["id"] for m in body["members"]] == [public["id"], private["id"]]
    # A page without thread hits lists none.
    body = json_body(search(client, room.owner, room.guild_id, content="channel"), 200)
    assert (body["threads"], body["members"]) == ([], [])


def test_only_members_may_search(client, make, room):
    stranger = make.actor()
    error(search(client, stranger, room.guild_id, content="x"), 403, 50001)
    error(search(client, stranger, 4242, content="x"), 404, 10004)


def test_filters_and_sorting_through_the_route(client, make, resources, room):
    general, other = room.channel_id, make.channel(room.guild_id, "other")
    human = post(client, room.owner, general, f"ping <@{room.member.id}> see https://example.com")
    bot = post(client, room.member, general, "bot says hi")
    elsewhere = post(client, room.owner, other, "hi from other")
    no_content(client.put(f"/api/v10/channels/{general}/messages/pins/{bot['id']}", headers=room.owner.headers))
    index_now(resources)
    everything = [elsewhere["content"], bot["content"], human["content"]]
    assert found(client, room.owner, room.guild_id) == everything
    assert found(client, room.owner, room.guild_id, sort_order="asc") == everything[::-1]
    assert found(client, room.owner, room.guild_id, author_id=str(room.member.id)) == [bot["content"]]
    assert found(client, room.owner, room.guild_id, author_id=[str(room.member.id), str(room.owner.id)]) == everything
    assert found(client, room.owner, room.guild_id, author_type="bot") == [bot["content"]]
    assert found(client, room.owner, room.guild_id, author_type="-bot") == [elsewhere["content"], human["content"]]
    assert found(client, room.owner, room.guild_id, mentions=str(room.member.id)) == [human["content"]]
    assert found(client, room.owner, room.guild_id, has="link") == [human["content"]]
    assert found(client, room.owner, room.guild_id, has="-link") == [elsewhere["content"], bot["content"]]
    assert found(client, room.owner, room.guild_id, pinned="true") == [bot["content"]]
    assert found(client, room.owner, room.guild_id, channel_id=str(other)) == [elsewhere["content"]]
    assert found(client, room.owner, room.guild_id, min_id=human["id"], max_id=elsewhere["id"]) == [bot["content"]]
    assert found(client, room.owner, room.guild_id, content="hi", author_type="user") == [elsewhere["content"]]
    assert found(client, room.owner, room.guild_id, mention_everyone="false", limit=1, offset=1) == [bot["content"]]
    assert found(client, room.owner, room.guild_id, content="hi", sort_by="relevance") == [
        elsewhere["content"], bot["content"]]


def test_offset_paging_neither_repeats_nor_skips(client, resources, room):
    for n in range(30):
        post(client, room.owner, room.channel_id, f"page item {n}")
    index_now(resources)
    seen = []
    for offset in range(0, 30, 7):
        body = json_body(search(client, room.owner, room.guild_id, content="item", offset=offset, limit=7), 200)
        assert body["total_results"] == 30
        seen.extend(m[0]["content"] for m in body["messages"])
    assert seen == [f"page item {n}" for n in reversed(range(30))]


@pytest.mark.parametrize(("params", "path", "code"), [
    ({"limit": "0"}, ("limit",), "NUMBER_TYPE_MIN"),
    ({"limit": "26"}, ("limit",), "NUMBER_TYPE_MAX"),
    ({"offset": "9976"}, ("offset",), "NUMBER_TYPE_MAX"),
    ({"offset": "-1"}, ("offset",), "NUMBER_TYPE_MIN"),
    ({"offset": "ten"}, ("offset",), "NUMBER_TYPE_COERCE"),
    ({"author_id": "alice"}, ("author_id",), "NUMBER_TYPE_COERCE"),
    ({"author_id": ["1", "bob"]}, ("author_id", "1"), "NUMBER_TYPE_COERCE"),
    ({"channel_id": "x"}, ("channel_id",), "NUMBER_TYPE_COERCE"),
    ({"mentions": "me"}, ("mentions",), "NUMBER_TYPE_COERCE"),
    ({"min_id": "old"}, ("min_id",), "NUMBER_TYPE_COERCE"),
    ({"author_type": "robot"}, ("author_type",), "BASE_TYPE_CHOICES"),
    ({"has": ["link", "gif"]}, ("has", "1"), "BASE_TYPE_CHOICES"),
    ({"sort_by": "size"}, ("sort_by",), "BASE_TYPE_CHOICES"),
    ({"sort_order": "up"}, ("sort_order",), "BASE_TYPE_CHOICES"),
    ({"pinned": "maybe"}, ("pinned",), "BOOLEAN_TYPE_COERCE"),
    ({"mention_everyone": "2"}, ("mention_everyone",), "BOOLEAN_TYPE_COERCE"),
    ({"content": "x" * 1025}, ("content",), "BASE_TYPE_MAX_LENGTH"),
    ({"content": "nul\x00"}, ("content",), "STRING_TYPE_INVALID_CHARACTERS"),
    ({"author_id": ["1"] * 101}, ("author_id",), "BASE_TYPE_MAX_LENGTH"),
    ({"embed_type": "image"}, ("embed_type",), "SEARCH_PARAMETER_UNSUPPORTED"),
])
def test_bad_parameters_are_400_50035_at_their_path(client, room, params, path, code):
    response = search(client, room.owner, room.guild_id, **params)
    error(response, 400, 50035)
    assert field_error_codes(response, *path) == [code]


def test_an_unreadable_event_is_skipped_and_does_not_stop_the_ones_behind_it(client, resources, room):
    from app.events.base import Event

    resources.event_bus.publish([Event(id=resources.ids.next_id(), type="MESSAGE_CREATE", guild_id=room.guild_id,
                                       channel_id=room.channel_id, data={"id": "1", "content": "no author"})])
    post(client, room.owner, room.channel_id, "after the bad one")
    index_now(resources)
    assert found(client, room.owner, room.guild_id) == ["after the bad one"]
    assert index_now(resources) == 0, "the bad event was acknowledged, not left to block the group"
