"""DMs (POST /users/@me/channels and everything in a DM channel), typing, and GET /users/@me/guilds."""
from __future__ import annotations

import io
import json

import pytest

from app.auth.permissions import Permission
from tests.support.responses import error, field_error_codes, json_body, no_content


@pytest.fixture
def pair(make):
    """Two users who share a guild, and an outsider who shares none with them."""
    alice, bob, outsider = make.actor("alice"), make.actor("bob"), make.actor("outsider")
    guild_id, channel_id = make.guild(alice)
    make.member(guild_id, bob)
    return alice, bob, outsider, guild_id, channel_id


def open_dm(client, actor, recipient_id):
    return client.post("/api/v10/users/@me/channels", json={"recipient_id": str(recipient_id)},
                       headers=actor.headers)


def test_a_dm_is_one_channel_per_pair(client, pair):
    alice, bob, *_ = pair
    dm = json_body(open_dm(client, alice, bob.id), 200)
    assert dm["type"] == 1 and [u["id"] for u in dm["recipients"]] == [str(bob.id)] and "guild_id" not in dm
    again = json_body(open_dm(client, alice, bob.id), 200)
    from_bob = json_body(open_dm(client, bob, alice.id), 200)
    assert again["id"] == from_bob["id"] == dm["id"]
    assert [u["id"] for u in from_bob["recipients"]] == [str(alice.id)]
    fetched = json_body(client.get(f"/api/v10/channels/{dm['id']}", headers=bob.headers), 200)
    assert fetched["recipients"][0]["id"] == str(alice.id)


def test_a_dm_needs_a_shared_guild(client, pair):
    alice, bob, outsider, *_ = pair
    error(open_dm(client, alice, outsider.id), 403, 50007)
    error(open_dm(client, alice, 12345678901234567), 403, 50007)
    error(open_dm(client, alice, alice.id), 403, 50007)
    assert field_error_codes(client.post("/api/v10/users/@me/channels", json={}, headers=alice.headers),
                             "recipient_id") == ["BASE_TYPE_REQUIRED"]


def test_group_dm_fields_are_refused(client, pair):
    alice, bob, *_ = pair
    response = client.post("/api/v10/users/@me/channels", json={"recipient_id": str(bob.id), "access_tokens": ["x"]},
                           headers=alice.headers)
    assert field_error_codes(response, "access_tokens") == ["UNSUPPORTED_FIELD"]


def test_messages_reactions_pins_and_files_work_in_a_dm(client, pair):
    alice, bob, *_ = pair
    dm_id = json_body(open_dm(client, alice, bob.id), 200)["id"]
    sent = json_body(client.post(f"/api/v10/channels/{dm_id}/messages", json={"content": "hi bob"},
                                 headers=alice.headers), 200)
    assert "guild_id" not in sent and sent["channel_id"] == dm_id
    reply = json_body(client.post(f"/api/v10/channels/{dm_id}/messages", json={
        "content": "hi alice", "message_reference": {"message_id": sent["id"]}}, headers=bob.headers), 200)
    assert reply["referenced_message"]["id"] == sent["id"]
    history = json_body(client.get(f"/api/v10/channels/{dm_id}/messages", headers=bob.headers), 200)
    assert [m["content"] for m in history] == ["hi alice", "hi bob"]
    no_content(client.put(f"/api/v10/channels/{dm_id}/messages/{sent['id']}/reactions/%F0%9F%91%8D/@me",
                          headers=bob.headers))
    no_content(client.put(f"/api/v10/channels/{dm_id}/messages/pins/{sent['id']}", headers=bob.headers))
    pins = json_body(client.get(f"/api/v10/channels/{dm_id}/messages/pins", headers=alice.headers), 200)
    assert [p["message"]["id"] for p in pins["items"]] == [sent["id"]]
    with_file = json_body(client.post(
        f"/api/v10/channels/{dm_id}/messages", content_type="multipart/form-data", headers=bob.headers,
        data={"payload_json": json.dumps({"content": "file"}), "files[0]": (io.BytesIO(b"data"), "d.txt")}), 200)
    assert with_file["attachments"][0]["filename"] == "d.txt"
    # Nobody manages the other's messages in a DM.
    error(client.delete(f"/api/v10/channels/{dm_id}/messages/{sent['id']}", headers=bob.headers), 403, 50013)
    no_content(client.delete(f"/api/v10/channels/{dm_id}/messages/{sent['id']}", headers=alice.headers))


def test_nobody_else_sees_a_dm_not_even_its_existence(client, make, pair):
    alice, bob, outsider, guild_id, _ = pair
    make.member(guild_id, outsider)
    dm_id = json_body(open_dm(client, alice, bob.id), 200)["id"]
    missing_id = str(int(dm_id) + 1)
    for path in ("", "/messages"):
        for channel in (dm_id, missing_id):
            error(client.get(f"/api/v10/channels/{channel}{path}", headers=outsider.headers), 404, 10003)
    error(client.post(f"/api/v10/channels/{dm_id}/messages", json={"content": "x"}, headers=outsider.headers),
          404, 10003)
    error(client.post(f"/api/v10/channels/{dm_id}/typing", headers=outsider.headers), 404, 10003)


def test_guild_channel_actions_are_refused_in_a_dm(client, pair):
    alice, bob, *_ = pair
    dm_id = json_body(open_dm(client, alice, bob.id), 200)["id"]
    error(client.patch(f"/api/v10/channels/{dm_id}", json={"name": "x"}, headers=alice.headers), 400, 50003)
    error(client.delete(f"/api/v10/channels/{dm_id}", headers=alice.headers), 400, 50003)
    error(client.put(f"/api/v10/channels/{dm_id}/permissions/{bob.id}", json={"type": 1, "allow": "0"},
                     headers=alice.headers), 400, 50003)


class TestTyping:
    def test_a_member_who_may_send_gets_204_and_an_event(self, client, pair, published):
        alice, bob, _, guild_id, channel_id = pair
        no_content(client.post(f"/api/v10/channels/{channel_id}/typing", headers=bob.headers))
        [event] = [e for e in published if e.type == "TYPING_START"]
        assert event.data["channel_id"] == str(channel_id) and event.data["user_id"] == str(bob.id)
        assert event.data["guild_id"] == str(guild_id) and isinstance(event.data["timestamp"], int)
        assert event.data["member"]["user"]["id"] == str(bob.id)

    def test_in_a_dm(self, client, pair, published):
        alice, bob, *_ = pair
        dm_id = json_body(open_dm(client, alice, bob.id), 200)["id"]
        no_content(client.post(f"/api/v10/channels/{dm_id}/typing", headers=alice.headers))
        [event] = [e for e in published if e.type == "TYPING_START"]
        assert "guild_id" not in event.data and "member" not in event.data

    def test_without_send_messages(self, client, make, pair, published):
        alice, bob, _, guild_id, channel_id = pair
        make.overwrite(channel_id, bob.id, 1, deny=Permission.SEND_MESSAGES)
        error(client.post(f"/api/v10/channels/{channel_id}/typing", headers=bob.headers), 403, 50013)
        assert [e for e in published if e.type == "TYPING_START"] == []


class TestMyGuilds:
    def test_pages_by_id_with_counts(self, client, make):
        owner, member = make.actor("owner"), make.actor("member")
        guild_ids = []
        for index in range(3):
            guild_id, _ = make.guild(owner, name=f"guild {index}")
            guild_ids.append(guild_id)
        make.member(guild_ids[1], member)
        listed = json_body(client.get("/api/v10/users/@me/guilds", headers=owner.headers), 200)
        assert [g["id"] for g in listed] == [str(g) for g in sorted(guild_ids)]
        assert all(g["owner"] and int(g["permissions"]) & Permission.ADMINISTRATOR for g in listed)
        assert "approximate_member_count" not in listed[0]
        counted = json_body(client.get("/api/v10/users/@me/guilds?with_counts=true", headers=owner.headers), 200)
        assert [g["approximate_member_count"] for g in counted] == [1, 2, 1]
        ids = sorted(guild_ids)
        after = json_body(client.get(f"/api/v10/users/@me/guilds?after={ids[0]}&limit=1", headers=owner.headers), 200)
        assert [g["id"] for g in after] == [str(ids[1])]
        before = json_body(client.get(f"/api/v10/users/@me/guilds?before={ids[2]}&limit=1", headers=owner.headers),
                           200)
        assert [g["id"] for g in before] == [str(ids[1])]
        mine = json_body(client.get("/api/v10/users/@me/guilds", headers=member.headers), 200)
        assert [(g["id"], g["owner"]) for g in mine] == [(str(guild_ids[1]), False)]
        assert field_error_codes(client.get("/api/v10/users/@me/guilds?limit=201", headers=owner.headers),
                                 "limit") == ["NUMBER_TYPE_MAX"]
