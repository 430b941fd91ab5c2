"""GET /channels/{id}/messages (every cursor mode, paging across buckets) and GET /channels/{id}/messages/{id}.

discord.py's ``history()`` takes ``data[-1]`` as the next ``before`` and ``data[0]`` as the next ``after`` and stops
at the first page shorter than its limit, so every mode must answer newest first, as Discord does.
"""
import time
from datetime import datetime, timedelta, timezone

import pytest

from app.auth.permissions import Permission
from app.ids import MAX_SNOWFLAKE, bucket_bounds, bucket_of, snowflake_from_ms
from app.messages.base import Message
from tests.support.responses import error, field_error_codes, json_body

MEMBER_PERMISSIONS = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY


@pytest.fixture
def owner(make):
    return make.actor("owner")


@pytest.fixture
def guild(make, owner):
    """(guild_id, channel_id) of a guild whose members may view, send and read history."""
    return make.guild(owner, everyone=MEMBER_PERMISSIONS)


@pytest.fixture
def channel_id(guild):
    return guild[1]


def store_messages(resources, channel_id, author_id, message_ids):
    """Messages written straight to the store, as an import does, so tests choose their ids (and times)."""
    for message_id in message_ids:
        resources.message_store.create_message(
            Message(id=message_id, channel_id=channel_id, author_id=author_id, content=f"message {message_id}"))
    return sorted(message_ids)


def spaced_ids(count, step_ms=10):
    """Ids of recent messages ``step_ms`` apart, oldest first, leaving room for synthetic cursors between them."""
    start_ms = int(time.time() * 1000) - 60_000
    return [snowflake_from_ms(start_ms + i * step_ms) for i in range(count)]


def history(client, actor, channel_id, **params):
    response = client.get(f"/api/v10/channels/{channel_id}/messages", query_string=params, headers=actor.headers)
    return [int(m["id"]) for m in json_body(response, 200)]


def newest_first(ids):
    return sorted(ids, reverse=True)


# -- modes -------------------------------------------------------------------------------------------------

def test_without_cursor_the_newest_messages_come_first(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(7))
    assert history(client, owner, channel_id) == newest_first(ids)
    assert history(client, owner, channel_id, limit=3) == newest_first(ids)[:3]


def test_limit_defaults_to_50_and_accepts_1_to_100(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(101, step_ms=1))
    assert history(client, owner, channel_id) == newest_first(ids)[:50]
    assert history(client, owner, channel_id, limit=1) == [ids[-1]]
    assert history(client, owner, channel_id, limit=100) == newest_first(ids)[:100]


def test_before_gives_the_newest_messages_older_than_the_cursor(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(10))
    assert history(client, owner, channel_id, before=ids[6], limit=3) == [ids[5], ids[4], ids[3]]
    assert history(client, owner, channel_id, before=ids[2], limit=50) == [ids[1], ids[0]]


def test_after_gives_the_messages_right_after_the_cursor_newest_first(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(10))
    assert history(client, owner, channel_id, after=ids[2], limit=3) == [ids[5], ids[4], ids[3]]
    assert history(client, owner, channel_id, after=ids[7], limit=50) == [ids[9], ids[8]]


def test_cursors_need_not_be_message_ids(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(6))
    between_2_and_3 = ids[2] + 1  # a synthetic snowflake newer than message 2, older than message 3
    assert history(client, owner, channel_id, before=between_2_and_3) == [ids[2], ids[1], ids[0]]
    assert history(client, owner, channel_id, after=between_2_and_3, limit=2) == [ids[4], ids[3]]
    assert history(client, owner, channel_id, after=0, limit=2) == [ids[1], ids[0]]
    assert history(client, owner, channel_id, after=0) == newest_first(ids)
    assert history(client, owner, channel_id, before=0) == []
    assert history(client, owner, channel_id, before=MAX_SNOWFLAKE, limit=1) == [ids[-1]]
    assert history(client, owner, channel_id, after=MAX_SNOWFLAKE) == []


def test_around_gives_half_the_limit_on_each_side_of_the_message(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(11))
    expected_positions_by_limit = {
        5: [7, 6, 5, 4, 3],  # two on each side and the message itself
        4: [7, 6, 5, 4, 3],  # an even limit gives limit + 1 messages, as discord.py documents
        2: [6, 5, 4],
        1: [5],
    }
    for limit, positions in expected_positions_by_limit.items():
        page = history(client, owner, channel_id, around=ids[5], limit=limit)
        assert page == [ids[i] for i in positions], f"limit={limit}"


def test_around_a_synthetic_cursor_gives_half_the_limit_on_each_side(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(11))
    assert history(client, owner, channel_id, around=ids[5] + 1, limit=4) == [ids[7], ids[6], ids[5], ids[4]]


def test_around_near_the_ends_of_history_returns_what_exists(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(5))
    assert history(client, owner, channel_id, around=ids[0], limit=6) == [ids[3], ids[2], ids[1], ids[0]]
    assert history(client, owner, channel_id, around=ids[4], limit=6) == [ids[4], ids[3], ids[2], ids[1]]
    assert history(client, owner, channel_id, around=MAX_SNOWFLAKE, limit=4) == [ids[4], ids[3]]
    assert history(client, owner, channel_id, around=0, limit=4) == [ids[1], ids[0]]


def test_empty_channel_has_empty_history_in_every_mode(client, owner, channel_id):
    for params in ({}, {"before": 12345}, {"after": 0}, {"around": 12345}):
        assert history(client, owner, channel_id, **params) == []


# -- paging across buckets ---------------------------------------------------------------------------------

@pytest.fixture
def imported_history(resources, owner, channel_id):
    """Back-dated history in four 10-day buckets with empty buckets between them, and a pair of messages
    on each side of one bucket boundary."""
    now = datetime.now(timezone.utc)
    ids = []
    for days_ago in (400, 250, 249, 30):
        start_ms = int((now - timedelta(days=days_ago)).timestamp() * 1000)
        ids += [snowflake_from_ms(start_ms + minute * 60_000) for minute in range(4)]
    boundary_bucket = bucket_of(snowflake_from_ms(int((now - timedelta(days=120)).timestamp() * 1000)))
    first_of_bucket, _ = bucket_bounds(boundary_bucket)
    ids += [first_of_bucket - (2 << 22), first_of_bucket - 1, first_of_bucket, first_of_bucket + (2 << 22)]
    ids = store_messages(resources, channel_id, owner.id, ids)
    assert len({bucket_of(i) for i in ids}) >= 5
    return ids


def page_backwards_like_discord_py(client, actor, channel_id, limit):
    """history(limit=None): before = data[-1]['id'] until a page is short."""
    pages, before = [], None
    while True:
        params = {"limit": limit} if before is None else {"limit": limit, "before": before}
        page = history(client, actor, channel_id, **params)
        pages.append(page)
        if len(page) < limit:
            return pages
        before = page[-1]


def page_forwards_like_discord_py(client, actor, channel_id, limit):
    """history(oldest_first=True): after starts at 0, then after = data[0]['id'], each page yielded reversed."""
    pages, after = [], 0
    while True:
        page = history(client, actor, channel_id, limit=limit, after=after)
        pages.append(page)
        if len(page) < limit:
            return pages
        after = page[0]


PAGE_SIZES = (5, 10, 100)  # 20 messages: full pages then an empty one, full pages then an empty one, one page


def test_paging_backwards_yields_every_imported_message_once(client, owner, channel_id, imported_history):
    for limit in PAGE_SIZES:
        pages = page_backwards_like_discord_py(client, owner, channel_id, limit)
        assert all(page == newest_first(page) for page in pages), f"limit={limit}"
        assert [m for page in pages for m in page] == newest_first(imported_history), f"limit={limit}"


def test_paging_forwards_yields_every_imported_message_once(client, owner, channel_id, imported_history):
    for limit in PAGE_SIZES:
        pages = page_forwards_like_discord_py(client, owner, channel_id, limit)
        assert all(page == newest_first(page) for page in pages), f"limit={limit}"
        assert [m for page in pages for m in reversed(page)] == imported_history, f"limit={limit}"


def test_around_spans_a_bucket_boundary_and_empty_buckets(client, owner, channel_id, imported_history):
    boundary = next(i for i in imported_history if bucket_of(i) != bucket_of(i - 1) and i - 1 in imported_history)
    position = imported_history.index(boundary)
    expected = newest_first(imported_history[position - 2: position + 3])
    assert history(client, owner, channel_id, around=boundary, limit=4) == expected
    # The oldest message of the 30-days-ago group: its older neighbours are ~90 days and several buckets away.
    recent_group_start = imported_history[-4]
    expected = newest_first(imported_history[-6:-1])
    assert history(client, owner, channel_id, around=recent_group_start, limit=4) == expected


def test_synthetic_time_cursors_select_by_time_across_buckets(client, owner, channel_id, imported_history):
    now = datetime.now(timezone.utc)
    two_hundred_days_ago = snowflake_from_ms(int((now - timedelta(days=200)).timestamp() * 1000))
    older = [i for i in imported_history if i < two_hundred_days_ago]
    newer = [i for i in imported_history if i > two_hundred_days_ago]
    assert history(client, owner, channel_id, before=two_hundred_days_ago, limit=100) == newest_first(older)
    assert history(client, owner, channel_id, after=two_hundred_days_ago, limit=3) == newest_first(newer[:3])


# -- request errors ----------------------------------------------------------------------------------------

def test_limit_outside_1_to_100_is_a_form_error(client, owner, channel_id):
    codes = {"0": "NUMBER_TYPE_MIN", "-1": "NUMBER_TYPE_MIN", "101": "NUMBER_TYPE_MAX",
             "ten": "NUMBER_TYPE_COERCE", "1.5": "NUMBER_TYPE_COERCE", "": "NUMBER_TYPE_COERCE"}
    for limit, code in codes.items():
        response = client.get(f"/api/v10/channels/{channel_id}/messages", query_string={"limit": limit},
                              headers=owner.headers)
        assert field_error_codes(response, "limit") == [code], f"limit={limit!r}"


def test_cursor_that_is_not_a_snowflake_is_a_form_error(client, owner, channel_id):
    for cursor in ("before", "after", "around"):
        for value in ("abc", "-5", "1e3", str(MAX_SNOWFLAKE + 1)):
            response = client.get(f"/api/v10/channels/{channel_id}/messages", query_string={cursor: value},
                                  headers=owner.headers)
            assert field_error_codes(response, cursor) == ["NUMBER_TYPE_COERCE"], f"{cursor}={value}"


def test_more_than_one_cursor_is_a_form_error(client, owner, channel_id):
    for cursors in ({"before": 10, "after": 5}, {"before": 10, "around": 5}, {"after": 10, "around": 5},
                    {"before": 10, "after": 5, "around": 7}):
        response = client.get(f"/api/v10/channels/{channel_id}/messages", query_string=cursors,
                              headers=owner.headers)
        error(response, 400, 50035)


# -- access ------------------------------------------------------------------------------------------------

def test_without_read_message_history_the_history_is_empty_not_an_error(
        client, make, resources, owner, guild, channel_id):
    reader = make.actor()
    guild_id, _ = guild
    make.member(guild_id, reader)
    store_messages(resources, channel_id, owner.id, spaced_ids(3))
    make.overwrite(channel_id, guild_id, 0, deny=Permission.READ_MESSAGE_HISTORY)
    for params in ({}, {"before": MAX_SNOWFLAKE}, {"after": 0}, {"around": MAX_SNOWFLAKE}):
        assert history(client, reader, channel_id, **params) == []
    assert len(history(client, owner, channel_id)) == 3


def test_without_view_channel_history_is_403_missing_access(client, make, guild, channel_id):
    viewer, outsider = make.actor(), make.actor()
    guild_id, _ = guild
    make.member(guild_id, viewer)
    make.overwrite(channel_id, viewer.id, 1, deny=Permission.VIEW_CHANNEL)
    error(client.get(f"/api/v10/channels/{channel_id}/messages", headers=viewer.headers), 403, 50001)
    error(client.get(f"/api/v10/channels/{channel_id}/messages", headers=outsider.headers), 403, 50001)


def test_history_of_an_unknown_channel_is_404(client, owner):
    error(client.get("/api/v10/channels/4242/messages", headers=owner.headers), 404, 10003)


# -- a single message --------------------------------------------------------------------------------------

def test_get_message_returns_the_same_object_as_history(client, resources, owner, channel_id):
    ids = store_messages(resources, channel_id, owner.id, spaced_ids(3))
    listed = json_body(client.get(f"/api/v10/channels/{channel_id}/messages", headers=owner.headers), 200)
    fetched = json_body(client.get(f"/api/v10/channels/{channel_id}/messages/{ids[1]}", headers=owner.headers), 200)
    assert fetched == listed[1]
    assert fetched["content"] == f"message {ids[1]}"


def test_get_message_of_another_channel_or_unknown_is_10008(client, make, resources, owner, guild, channel_id):
    guild_id, _ = guild
    other_channel = make.channel(guild_id, "elsewhere")
    [elsewhere] = store_messages(resources, other_channel, owner.id, spaced_ids(1))
    error(client.get(f"/api/v10/channels/{channel_id}/messages/{elsewhere}", headers=owner.headers), 404, 10008)
    error(client.get(f"/api/v10/channels/{channel_id}/messages/4242", headers=owner.headers), 404, 10008)
    error(client.get(f"/api/v10/channels/4242/messages/{elsewhere}", headers=owner.headers), 404, 10003)


def test_get_message_with_a_non_snowflake_id_is_a_form_error(client, owner, channel_id):
    response = client.get(f"/api/v10/channels/{channel_id}/messages/latest", headers=owner.headers)
    assert field_error_codes(response, "message_id") == ["NUMBER_TYPE_COERCE"]


def test_get_message_needs_view_channel_and_read_message_history(client, make, resources, owner, guild, channel_id):
    reader = make.actor()
    guild_id, _ = guild
    make.member(guild_id, reader)
    [message_id] = store_messages(resources, channel_id, owner.id, spaced_ids(1))
    url = f"/api/v10/channels/{channel_id}/messages/{message_id}"
    assert json_body(client.get(url, headers=reader.headers), 200)["id"] == str(message_id)
    make.overwrite(channel_id, reader.id, 1, deny=Permission.READ_MESSAGE_HISTORY)
    error(client.get(url, headers=reader.headers), 403, 50001)
    make.overwrite(channel_id, reader.id, 1, deny=Permission.VIEW_CHANNEL)
    error(client.get(url, headers=reader.headers), 403, 50001)
