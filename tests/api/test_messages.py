"""POST /channels/{id}/messages: the wire object, content rules, nonces, replies, mentions, tts, embeds, access."""
import time
from dataclasses import dataclass

import pytest

from app.auth.permissions import Permission
from app.ids import snowflake_from_ms
from app.messages.base import Message
from tests.support.factories import Actor
from tests.support.responses import error, field_error_codes, json_body

MEMBER_PERMISSIONS = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY
DISCORD_EPOCH_MS = 1420070400000


@dataclass
class Room:
    """A guild channel with its owner (every permission) and a member holding only MEMBER_PERMISSIONS."""

    owner: Actor
    member: Actor
    guild_id: int
    channel_id: int


@pytest.fixture
def room(make):
    owner, member = make.actor("owner"), make.actor("member")
    guild_id, channel_id = make.guild(owner, everyone=MEMBER_PERMISSIONS)
    make.member(guild_id, member)
    return Room(owner, member, guild_id, channel_id)


def post(client, actor, channel_id, **body):
    return client.post(f"/api/v10/channels/{channel_id}/messages", json=body, headers=actor.headers)


def send(client, actor, channel_id, content="hello", **body):
    return json_body(post(client, actor, channel_id, content=content, **body), 200)


def history(client, actor, channel_id):
    return json_body(client.get(f"/api/v10/channels/{channel_id}/messages", headers=actor.headers), 200)


def fetch(client, actor, channel_id, message_id):
    return json_body(client.get(f"/api/v10/channels/{channel_id}/messages/{message_id}", headers=actor.headers), 200)


def discord_time_of(snowflake):
    """The snowflake's time in Discord's form, computed independently of the service's code."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}000+00:00"


def mentionable_role(client, room, name="pingable"):
    response = client.post(f"/api/v10/guilds/{room.guild_id}/roles", json={"name": name, "mentionable": True},
                           headers=room.owner.headers)
    return int(json_body(response, 200)["id"])


# -- the wire object ---------------------------------------------------------------------------------------

def test_sent_message_is_the_full_object_discord_py_reads(client, room):
    before_ms = int(time.time() * 1000)
    response = post(client, room.member, room.channel_id, content="hello there")
    assert response.headers["Content-Type"] == "application/json"
    body = json_body(response, 200)
    assert body == {
        "id": body["id"], "type": 0, "content": "hello there", "channel_id": str(room.channel_id),
        "author": {"id": str(room.member.id), "username": "member", "discriminator": "0", "global_name": None,
                   "avatar": None, "bot": True, "public_flags": 0, "flags": 0},
        "attachments": [], "embeds": [], "mentions": [], "mention_roles": [], "pinned": False,
        "mention_everyone": False, "tts": False, "timestamp": discord_time_of(body["id"]),
        "edited_timestamp": None, "flags": 0, "components": [],
    }
    assert body["id"].isdigit()
    assert before_ms - 1000 <= (int(body["id"]) >> 22) + DISCORD_EPOCH_MS <= time.time() * 1000 + 1000


def test_history_and_get_serve_the_object_the_create_returned(client, room):
    sent = send(client, room.member, room.channel_id, "kept as sent")
    assert history(client, room.owner, room.channel_id) == [sent]
    assert fetch(client, room.owner, room.channel_id, sent["id"]) == sent


def test_timestamp_has_microseconds_and_utc_offset_even_on_a_whole_second(client, room, resources):
    whole_second = snowflake_from_ms(1_700_000_000_000)
    resources.message_store.create_message(Message(id=whole_second, channel_id=room.channel_id,
                                                   author_id=room.owner.id, content="on the second"))
    assert fetch(client, room.owner, room.channel_id, whole_second)["timestamp"] == "2023-11-14T22:13:20.000000+00:00"


# -- content -----------------------------------------------------------------------------------------------

def test_content_of_2000_characters_is_accepted_and_2001_is_not(client, room):
    assert send(client, room.member, room.channel_id, "é" * 2000)["content"] == "é" * 2000
    response = post(client, room.member, room.channel_id, content="x" * 2001)
    assert field_error_codes(response, "content") == ["BASE_TYPE_MAX_LENGTH"]
    error(post(client, room.member, room.channel_id, content=["not", "a", "string"]), 400, 50035)
    assert len(history(client, room.owner, room.channel_id)) == 1


def test_empty_or_whitespace_message_is_50006(client, room):
    for body in ({}, {"content": ""}, {"content": None}, {"content": "  \n\t "}, {"content": "", "embeds": []},
                 {"tts": True}):
        error(post(client, room.member, room.channel_id, **body), 400, 50006)
    assert history(client, room.owner, room.channel_id) == []


# -- nonces ------------------------------------------------------------------------------------------------

def test_nonce_of_up_to_25_characters_is_echoed_as_sent_on_the_create_response_only(client, room):
    as_string = send(client, room.member, room.channel_id, nonce="n" * 25)
    as_integer = send(client, room.member, room.channel_id, nonce=987654321)
    without = send(client, room.member, room.channel_id)
    assert as_string["nonce"] == "n" * 25
    assert as_integer["nonce"] == 987654321
    assert "nonce" not in without
    assert "nonce" not in fetch(client, room.member, room.channel_id, as_string["id"])
    response = post(client, room.member, room.channel_id, content="hi", nonce="n" * 26)
    assert "nonce" in error(response, 400, 50035)["errors"]


def test_enforced_nonce_repeat_returns_the_first_message_and_creates_nothing(client, room, published):
    first = send(client, room.member, room.channel_id, "first", nonce="retry-1", enforce_nonce=True)
    repeat = send(client, room.member, room.channel_id, "second try", nonce="retry-1", enforce_nonce=True)
    assert repeat["id"] == first["id"]
    assert repeat["content"] == "first"
    assert repeat["nonce"] == "retry-1"
    assert [m["id"] for m in history(client, room.owner, room.channel_id)] == [first["id"]]
    assert [event.type for event in published] == ["MESSAGE_CREATE"]


def test_nonce_without_enforcement_does_not_deduplicate(client, room):
    first = send(client, room.member, room.channel_id, nonce="same")
    second = send(client, room.member, room.channel_id, nonce="same")
    assert first["id"] != second["id"]
    assert len(history(client, room.owner, room.channel_id)) == 2


def test_enforced_nonce_is_per_author(client, room):
    mine = send(client, room.member, room.channel_id, nonce="shared", enforce_nonce=True)
    theirs = send(client, room.owner, room.channel_id, nonce="shared", enforce_nonce=True)
    assert mine["id"] != theirs["id"]
    assert theirs["author"]["id"] == str(room.owner.id)


def test_enforced_nonce_repeat_after_the_original_was_deleted_is_unknown_message(client, room):
    first = send(client, room.member, room.channel_id, nonce="gone", enforce_nonce=True)
    client.delete(f"/api/v10/channels/{room.channel_id}/messages/{first['id']}", headers=room.member.headers)
    response = post(client, room.member, room.channel_id, content="again", nonce="gone", enforce_nonce=True)
    error(response, 404, 10008)
    assert history(client, room.owner, room.channel_id) == []


def test_rejected_send_does_not_use_up_its_nonce(client, room):
    """A client fixes its request and retries with the same nonce; the fixed request must be sent."""
    rejected = post(client, room.member, room.channel_id, content="<@1>", nonce="fixable", enforce_nonce=True,
                    allowed_mentions={"parse": ["users"], "users": ["1"]})
    error(rejected, 400, 50035)
    fixed = send(client, room.member, room.channel_id, "<@1>", nonce="fixable", enforce_nonce=True,
                 allowed_mentions={"parse": ["users"]})
    assert [m["id"] for m in history(client, room.owner, room.channel_id)] == [fixed["id"]]


# -- replies -----------------------------------------------------------------------------------------------

def test_reply_is_type_19_with_its_reference_and_the_full_referenced_message(client, room):
    original = send(client, room.owner, room.channel_id, "question")
    reply = send(client, room.member, room.channel_id, "answer", message_reference={
        "message_id": int(original["id"]), "channel_id": room.channel_id, "guild_id": room.guild_id})
    assert reply["type"] == 19
    assert reply["message_reference"] == {"type": 0, "message_id": original["id"],
                                          "channel_id": str(room.channel_id), "guild_id": str(room.guild_id)}
    assert reply["referenced_message"] == fetch(client, room.owner, room.channel_id, original["id"])
    assert fetch(client, room.owner, room.channel_id, reply["id"]) == reply
    # Only message_id is required; the reference then takes the channel of the request.
    short_form = send(client, room.member, room.channel_id, "answer", message_reference={"message_id": original["id"]})
    assert short_form["message_reference"] == reply["message_reference"]
    assert short_form["referenced_message"] == reply["referenced_message"]


def test_reply_to_a_deleted_message_shows_referenced_message_null(client, room):
    original = send(client, room.owner, room.channel_id, "soon gone")
    reply = send(client, room.member, room.channel_id, "answer", message_reference={"message_id": original["id"]})
    client.delete(f"/api/v10/channels/{room.channel_id}/messages/{original['id']}", headers=room.owner.headers)
    fetched = fetch(client, room.member, room.channel_id, reply["id"])
    assert fetched["referenced_message"] is None
    assert fetched["message_reference"]["message_id"] == original["id"]


def test_reply_to_an_unknown_message_is_replies_unknown_message(client, room):
    response = post(client, room.member, room.channel_id, content="answer",
                    message_reference={"message_id": "4242", "channel_id": str(room.channel_id)})
    assert field_error_codes(response, "message_reference") == ["REPLIES_UNKNOWN_MESSAGE"]
    assert history(client, room.owner, room.channel_id) == []


def test_reply_to_an_unknown_message_without_fail_if_not_exists_is_a_plain_message(client, room):
    sent = send(client, room.member, room.channel_id, "answer",
                message_reference={"message_id": 4242, "fail_if_not_exists": False})
    assert sent["type"] == 0
    assert "message_reference" not in sent and "referenced_message" not in sent


def test_reply_to_a_system_message_is_a_form_error(client, resources, room):
    pin_notice = snowflake_from_ms(int(time.time() * 1000) - 60_000)
    resources.message_store.create_message(Message(id=pin_notice, channel_id=room.channel_id,
                                                   author_id=room.owner.id, type=6))
    response = post(client, room.member, room.channel_id, content="answer",
                    message_reference={"message_id": pin_notice})
    assert field_error_codes(response, "message_reference") == ["REPLIES_CANNOT_REFERENCE_SYSTEM_MESSAGE"]


def test_reply_reference_without_message_id_is_a_form_error(client, room):
    for reference in ({}, {"channel_id": str(room.channel_id)}, {"fail_if_not_exists": False}):
        response = post(client, room.member, room.channel_id, content="answer", message_reference=reference)
        assert field_error_codes(response, "message_reference", "message_id") == ["BASE_TYPE_REQUIRED"], reference
    assert history(client, room.owner, room.channel_id) == []


def test_reply_referencing_another_channel_is_rejected(client, make, room):
    other_channel = make.channel(room.guild_id, "elsewhere")
    elsewhere = send(client, room.owner, other_channel, "over there")
    response = post(client, room.member, room.channel_id, content="answer",
                    message_reference={"message_id": elsewhere["id"], "channel_id": other_channel})
    error(response, 400, 50035)
    assert history(client, room.owner, room.channel_id) == []


def test_reply_without_read_message_history_is_160002(client, make, room):
    original = send(client, room.owner, room.channel_id, "question")
    make.overwrite(room.channel_id, room.guild_id, 0, deny=Permission.READ_MESSAGE_HISTORY)
    response = post(client, room.member, room.channel_id, content="answer",
                    message_reference={"message_id": original["id"]})
    error(response, 403, 160002)
    assert send(client, room.member, room.channel_id, "plain message")["type"] == 0


# -- mentions ----------------------------------------------------------------------------------------------

def mentioned_ids(message):
    return [u["id"] for u in message["mentions"]]


def test_user_mentions_in_both_forms_become_user_objects_and_unknown_users_are_dropped(client, make, room):
    carol = make.actor("carol")
    sent = send(client, room.member, room.channel_id, f"<@{room.owner.id}> <@!{carol.id}> <@{room.owner.id}> <@4242>")
    assert mentioned_ids(sent) == [str(room.owner.id), str(carol.id)]
    assert sent["mentions"][1] == {"id": str(carol.id), "username": "carol", "discriminator": "0",
                                   "global_name": None, "avatar": None, "bot": True, "public_flags": 0, "flags": 0}
    assert sent["mention_roles"] == [] and sent["mention_everyone"] is False


def test_mentions_of_ids_past_the_largest_snowflake_mention_nobody(client, room):
    too_large = 2**63
    sent = send(client, room.member, room.channel_id, f"<@{too_large}> <@&{too_large}> <@{room.owner.id}>")
    assert mentioned_ids(sent) == [str(room.owner.id)]
    assert sent["mention_roles"] == []


def test_digits_of_other_scripts_mention_nobody(client, room):
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in str(room.owner.id))
    sent = send(client, room.member, room.channel_id, f"<@{arabic_indic}> <@&{arabic_indic}>")
    assert mentioned_ids(sent) == [] and sent["mention_roles"] == []


def test_role_mentions_need_a_mentionable_role_of_the_guild_or_mention_everyone(client, make, room):
    pingable = mentionable_role(client, room, "pingable")
    private = make.role(room.guild_id, name="private")
    content = f"<@&{pingable}> <@&{private}> <@&4242>"
    assert send(client, room.member, room.channel_id, content)["mention_roles"] == [str(pingable)]
    assert send(client, room.owner, room.channel_id, content)["mention_roles"] == [str(pingable), str(private)]
    foreign_guild, _ = make.guild(room.owner)
    foreign_role = make.role(foreign_guild, name="foreign")
    assert send(client, room.owner, room.channel_id, f"<@&{foreign_role}>")["mention_roles"] == []


def test_everyone_and_here_need_mention_everyone(client, make, room):
    herald = make.actor()
    make.member(room.guild_id, herald, roles=[make.role(room.guild_id, Permission.MENTION_EVERYONE)])
    for content in ("@everyone look", "@here look"):
        assert send(client, room.member, room.channel_id, content)["mention_everyone"] is False
        assert send(client, herald, room.channel_id, content)["mention_everyone"] is True
    assert send(client, herald, room.channel_id, "no ping here")["mention_everyone"] is False


def test_allowed_mentions_parse_lists_the_kinds_that_ping(client, room):
    role = mentionable_role(client, room)
    content = f"@everyone <@{room.member.id}> <@&{role}>"

    def pinged(allowed):
        sent = send(client, room.owner, room.channel_id, content, allowed_mentions=allowed)
        return mentioned_ids(sent), sent["mention_roles"], sent["mention_everyone"]

    everything = ([str(room.member.id)], [str(role)], True)
    assert mentioned_ids(send(client, room.owner, room.channel_id, content)) == everything[0]
    assert pinged({"parse": ["users", "roles", "everyone"]}) == everything
    assert pinged({"parse": []}) == ([], [], False)
    assert pinged({}) == ([], [], False)
    assert pinged({"parse": ["users"]}) == ([str(room.member.id)], [], False)
    assert pinged({"parse": ["roles"]}) == ([], [str(role)], False)
    assert pinged({"parse": ["everyone"]}) == ([], [], True)


def test_allowed_mentions_lists_restrict_to_the_ids_given(client, make, room):
    carol = make.actor("carol")
    first_role, second_role = mentionable_role(client, room, "first"), mentionable_role(client, room, "second")
    content = f"<@{room.member.id}> <@{carol.id}> <@&{first_role}> <@&{second_role}>"
    sent = send(client, room.owner, room.channel_id, content,
                allowed_mentions={"users": [str(carol.id)], "roles": [second_role]})
    assert mentioned_ids(sent) == [str(carol.id)]
    assert sent["mention_roles"] == [str(second_role)]
    # A listed id that the content does not mention pings nobody.
    sent = send(client, room.owner, room.channel_id, "nobody", allowed_mentions={"users": [str(carol.id)]})
    assert sent["mentions"] == []


def test_allowed_mentions_parse_and_list_of_the_same_kind_conflict(client, room):
    for allowed in ({"parse": ["users"], "users": [str(room.member.id)]}, {"parse": ["roles"], "roles": ["1"]}):
        response = post(client, room.owner, room.channel_id, content="hi", allowed_mentions=allowed)
        assert field_error_codes(response, "allowed_mentions", "parse") == ["MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"]
    assert history(client, room.owner, room.channel_id) == []


def test_replied_author_is_pinged_unless_allowed_mentions_says_otherwise(client, room):
    original = send(client, room.owner, room.channel_id, "question")
    reference = {"message_id": original["id"]}

    def reply(**body):
        return mentioned_ids(send(client, room.member, room.channel_id, "answer", message_reference=reference, **body))

    assert reply() == [str(room.owner.id)]
    assert reply(allowed_mentions={"parse": ["users", "roles", "everyone"]}) == []
    assert reply(allowed_mentions={"parse": ["users", "roles", "everyone"], "replied_user": False}) == []
    assert reply(allowed_mentions={"parse": [], "replied_user": True}) == [str(room.owner.id)]


# -- tts, flags, embeds ------------------------------------------------------------------------------------

def test_tts_needs_send_tts_messages_and_is_otherwise_stored_false(client, make, room):
    speaker = make.actor()
    make.member(room.guild_id, speaker, roles=[make.role(room.guild_id, Permission.SEND_TTS_MESSAGES)])
    assert send(client, speaker, room.channel_id, tts=True)["tts"] is True
    quiet = send(client, room.member, room.channel_id, tts=True)
    assert quiet["tts"] is False
    assert fetch(client, room.owner, room.channel_id, quiet["id"])["tts"] is False


def test_only_suppress_flags_can_be_set_on_create(client, room):
    suppress_embeds, suppress_notifications, urgent = 1 << 2, 1 << 12, 1 << 4
    sent = send(client, room.member, room.channel_id, flags=suppress_embeds | suppress_notifications | urgent)
    assert sent["flags"] == suppress_embeds | suppress_notifications


def test_embeds_are_stored_as_rich_embeds(client, room):
    embed = {"title": "Report", "description": "All good", "fields": [{"name": "a", "value": "b"}],
             "footer": {"text": "bye"}}
    sent = send(client, room.member, room.channel_id, "", embeds=[embed])
    assert sent["embeds"] == [{**embed, "type": "rich"}]
    assert fetch(client, room.owner, room.channel_id, sent["id"])["embeds"] == sent["embeds"]


def test_embed_limits_are_form_errors(client, room):
    def codes(embeds, *path):
        return field_error_codes(post(client, room.member, room.channel_id, content="x", embeds=embeds), *path)

    assert codes([{"title": "t" * 257}], "embeds", "0", "title") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes([{}, {"description": "d" * 4097}], "embeds", "1", "description") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes([{"footer": {"text": "f" * 2049}}], "embeds", "0", "footer", "text") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes([{"author": {"name": "a" * 257}}], "embeds", "0", "author", "name") == ["BASE_TYPE_MAX_LENGTH"]
    too_many_fields = [{"fields": [{"name": "n", "value": "v"}] * 26}]
    assert codes(too_many_fields, "embeds", "0", "fields") == ["BASE_TYPE_MAX_LENGTH"]
    long_field_value = [{"fields": [{"name": "n", "value": "v" * 1025}]}]
    assert codes(long_field_value, "embeds", "0", "fields", "0", "value") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes([{"title": "t"}] * 11, "embeds") == ["BASE_TYPE_MAX_LENGTH"]
    over_6000_in_total = [{"description": "d" * 4000}, {"description": "d" * 2001}]
    error(post(client, room.member, room.channel_id, content="x", embeds=over_6000_in_total), 400, 50035)
    assert history(client, room.owner, room.channel_id) == []
    at_6000_in_total = [{"description": "d" * 4000}, {"description": "d" * 2000}]
    assert len(send(client, room.member, room.channel_id, "x", embeds=at_6000_in_total)["embeds"]) == 2


# -- access ------------------------------------------------------------------------------------------------

def test_sending_needs_send_messages(client, make, room):
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.SEND_MESSAGES)
    error(post(client, room.member, room.channel_id, content="hi"), 403, 50013)
    assert history(client, room.owner, room.channel_id) == []


def test_sending_to_an_invisible_or_unknown_channel(client, make, room):
    outsider = make.actor()
    error(post(client, outsider, room.channel_id, content="hi"), 403, 50001)
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.VIEW_CHANNEL)
    error(post(client, room.member, room.channel_id, content="hi"), 403, 50001)
    error(post(client, room.member, 4242, content="hi"), 404, 10003)


def test_voice_and_category_channels_take_no_messages(client, make, room):
    for channel_type in (2, 4):
        channel_id = make.channel(room.guild_id, f"type {channel_type}", type_=channel_type)
        error(post(client, room.owner, channel_id, content="hi"), 400, 50008)


def test_message_create_event_carries_the_message_as_sent(client, room, published):
    sent = send(client, room.member, room.channel_id)
    [event] = published
    assert (event.type, event.channel_id, event.guild_id) == ("MESSAGE_CREATE", room.channel_id, room.guild_id)
    assert event.data == {**sent, "guild_id": str(room.guild_id)}
    assert event.data["author"]["id"] == str(room.member.id)
