"""The events of metadata writes and of `flask messages import`: each acknowledged write records its event in
Discord's dispatch shape, in its own transaction; a refused write records none."""
from __future__ import annotations

import json

from app.ids import snowflake_from_ms
from tests.support.responses import error, json_body, no_content


def guild_events(published) -> list[tuple[str, dict]]:
    return published.dispatches()


def test_creating_a_guild_announces_it_with_its_roles_channels_and_owner(client, make, published):
    owner = make.actor("owner")
    guild = json_body(client.post("/api/v10/guilds", json={"name": "announced"}, headers=owner.headers), 201)
    [event] = published
    assert (event.type, event.guild_id, event.channel_id) == ("GUILD_CREATE", int(guild["id"]), None)
    assert event.data["name"] == "announced" and event.data["guild_id"] == guild["id"]
    assert [role["name"] for role in event.data["roles"]] == ["@everyone"]
    assert [channel["name"] for channel in event.data["channels"]] == ["general"]
    assert [member["user"]["id"] for member in event.data["members"]] == [str(owner.id)]
    assert event.data["member_count"] == 1


def test_channel_writes_announce_the_channel_as_it_now_is(client, make, published):
    owner = make.actor("owner")
    guild_id, _general = make.guild(owner)
    published.clear()
    created = json_body(client.post(f"/api/v10/guilds/{guild_id}/channels", json={"name": "news"},
                                    headers=owner.headers), 201)
    url = f"/api/v10/channels/{created['id']}"
    edited = json_body(client.patch(url, json={"topic": "today"}, headers=owner.headers), 200)
    no_content(client.put(f"{url}/permissions/{guild_id}", json={"type": 0, "allow": "0", "deny": "2048"},
                          headers=owner.headers))
    with_overwrite = json_body(client.get(url, headers=owner.headers), 200)
    no_content(client.delete(f"{url}/permissions/{guild_id}", headers=owner.headers))
    deleted = json_body(client.delete(url, headers=owner.headers), 200)

    assert guild_events(published) == [
        ("CHANNEL_CREATE", {**created, "guild_id": str(guild_id)}),
        ("CHANNEL_UPDATE", {**edited, "guild_id": str(guild_id)}),
        ("CHANNEL_UPDATE", {**with_overwrite, "guild_id": str(guild_id)}),
        ("CHANNEL_UPDATE", {**edited, "guild_id": str(guild_id)}),
        ("CHANNEL_DELETE", {**deleted, "guild_id": str(guild_id)}),
    ]
    assert with_overwrite["permission_overwrites"] == [{"id": str(guild_id), "type": 0, "allow": "0",
                                                        "deny": "2048"}]


def test_role_and_member_writes_announce_themselves(client, make, published):
    owner, newcomer = make.actor("owner"), make.actor("newcomer")
    guild_id, _general = make.guild(owner)
    published.clear()
    roles = f"/api/v10/guilds/{guild_id}/roles"
    role = json_body(client.post(roles, json={"name": "crew"}, headers=owner.headers), 200)
    renamed = json_body(client.patch(f"{roles}/{role['id']}", json={"name": "crew+"}, headers=owner.headers), 200)
    member_url = f"/api/v10/guilds/{guild_id}/members/{newcomer.id}"
    json_body(client.put(member_url, json={"access_token": make.grant(newcomer, owner)}, headers=owner.headers), 201)
    no_content(client.put(f"{member_url}/roles/{role['id']}", headers=owner.headers))
    no_content(client.put(f"{member_url}/roles/{role['id']}", headers=owner.headers))  # no change, no event
    no_content(client.delete(member_url, headers=owner.headers))
    no_content(client.delete(f"{roles}/{role['id']}", headers=owner.headers))

    events = guild_events(published)
    assert [t for t, _ in events] == ["GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE", "GUILD_MEMBER_ADD",
                                      "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE", "GUILD_ROLE_DELETE"]
    assert events[0][1] == {"role": role, "guild_id": str(guild_id)}
    assert events[1][1] == {"role": renamed, "guild_id": str(guild_id)}
    assert events[2][1]["user"]["id"] == str(newcomer.id) and events[2][1]["roles"] == []
    assert events[3][1]["roles"] == [role["id"]]
    assert events[4][1] == {"user": events[2][1]["user"], "guild_id": str(guild_id)}
    assert events[5][1] == {"role_id": role["id"], "guild_id": str(guild_id)}


def test_a_refused_write_records_no_event(client, make, published):
    owner, outsider = make.actor("owner"), make.actor("outsider")
    guild_id, channel_id = make.guild(owner)
    published.clear()
    error(client.post(f"/api/v10/guilds/{guild_id}/channels", json={"name": "x"}, headers=outsider.headers), 403,
          50001)
    error(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": ""}, headers=owner.headers), 400,
          50006)
    error(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "x"},
                      headers=outsider.headers), 403, 50001)
    assert len(published) == 0


def test_imported_history_is_announced_once_as_backfill(app, make, published, tmp_path):
    owner = make.actor("owner")
    guild_id, channel_id = make.guild(owner)
    first = snowflake_from_ms(1_700_000_000_000)
    lines = [{"id": str(first + n), "channel_id": str(channel_id), "author": {"id": str(owner.id)},
              "content": f"old {n}", "pinned": n == 1} for n in range(2)]
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    published.clear()

    assert app.test_cli_runner().invoke(args=["messages", "import", str(path)]).exit_code == 0
    assert app.test_cli_runner().invoke(args=["messages", "import", str(path)]).exit_code == 0  # all skipped

    events = list(published)
    assert [(e.type, e.backfill) for e in events] == [("MESSAGE_CREATE", True), ("MESSAGE_CREATE", True),
                                                      ("CHANNEL_PINS_UPDATE", True)]
    assert [e.data["content"] for e in events[:2]] == ["old 0", "old 1"]
    assert events[0].data["author"]["id"] == str(owner.id) and events[0].data["guild_id"] == str(guild_id)
