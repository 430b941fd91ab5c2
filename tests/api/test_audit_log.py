"""GET /guilds/{id}/audit-logs, the entries moderation and management writes leave, and X-Audit-Log-Reason."""
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from app.auth.permissions import Permission
from tests.support.responses import error, field_error_codes, json_body, no_content

EVERYONE = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY
STAFF = (Permission.VIEW_AUDIT_LOG | Permission.MANAGE_MESSAGES | Permission.PIN_MESSAGES | Permission.BAN_MEMBERS
         | Permission.KICK_MEMBERS | Permission.MODERATE_MEMBERS | Permission.MANAGE_NICKNAMES)


@pytest.fixture
def setup(make):
    owner, staff, member, outsider = make.actor("owner"), make.actor("staff"), make.actor("member"), make.actor()
    guild_id, channel_id = make.guild(owner, everyone=EVERYONE)
    make.member(guild_id, staff, roles=[make.role(guild_id, STAFF, position=2, name="staff")])
    make.member(guild_id, member)
    return owner, staff, member, outsider, guild_id, channel_id


def log(client, actor, guild_id, **query):
    return json_body(client.get(f"/api/v10/guilds/{guild_id}/audit-logs", query_string=query,
                                headers=actor.headers), 200)


def reason(text: str) -> dict[str, str]:
    return {"X-Audit-Log-Reason": quote(text, safe="/ ")}


def test_the_audit_log_needs_view_audit_log(client, setup):
    owner, staff, member, outsider, guild_id, _ = setup
    error(client.get(f"/api/v10/guilds/{guild_id}/audit-logs", headers=member.headers), 403, 50013)
    error(client.get(f"/api/v10/guilds/{guild_id}/audit-logs", headers=outsider.headers), 403, 50001)
    error(client.get("/api/v10/guilds/1/audit-logs", headers=owner.headers), 404, 10004)
    body = log(client, staff, guild_id)
    assert body == {"audit_log_entries": [], "users": [], "integrations": [], "webhooks": [],
                    "guild_scheduled_events": [], "threads": [], "application_commands": [],
                    "auto_moderation_rules": []}


def test_member_moderation_is_logged_with_its_reason_and_changes(client, setup, published):
    owner, staff, member, _, guild_id, _ = setup
    until = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    json_body(client.patch(f"/api/v10/guilds/{guild_id}/members/{member.id}",
                           json={"nick": "quiet", "communication_disabled_until": until},
                           headers={**staff.headers, **reason("cool down, ünïcode")}), 200)
    no_content(client.put(f"/api/v10/guilds/{guild_id}/bans/{member.id}", json={},
                          headers={**staff.headers, **reason("spam")}))
    no_content(client.delete(f"/api/v10/guilds/{guild_id}/bans/{member.id}", headers=staff.headers))
    body = log(client, owner, guild_id)
    entries = body["audit_log_entries"]
    assert [e["action_type"] for e in entries] == [23, 22, 24]
    unban, ban, update = entries
    assert (ban["user_id"], ban["target_id"], ban["reason"]) == (str(staff.id), str(member.id), "spam")
    assert unban["reason"] is None
    assert update["reason"] == "cool down, ünïcode"
    changes = {c["key"]: c for c in update["changes"]}
    assert changes["nick"] == {"key": "nick", "new_value": "quiet"}
    assert datetime.fromisoformat(changes["communication_disabled_until"]["new_value"]) == \
        datetime.fromisoformat(until)
    assert sorted(u["id"] for u in body["users"]) == sorted([str(staff.id), str(member.id)])
    created = [d for t, d in published.dispatches(audit=True) if t == "GUILD_AUDIT_LOG_ENTRY_CREATE"]
    assert [d["action_type"] for d in created] == [24, 22, 23]
    assert created[1]["guild_id"] == str(guild_id) and created[1]["reason"] == "spam"


def test_kicks_and_role_changes_are_logged(client, setup, make):
    owner, _, member, _, guild_id, _ = setup
    role = json_body(client.post(f"/api/v10/guilds/{guild_id}/roles", json={"name": "helpers"},
                                 headers=owner.headers), 200)
    json_body(client.patch(f"/api/v10/guilds/{guild_id}/roles/{role['id']}", json={"name": "helpers2"},
                           headers=owner.headers), 200)
    no_content(client.put(f"/api/v10/guilds/{guild_id}/members/{member.id}/roles/{role['id']}",
                          headers=owner.headers))
    json_body(client.patch(f"/api/v10/guilds/{guild_id}/members/{member.id}", json={"roles": []},
                           headers=owner.headers), 200)
    no_content(client.delete(f"/api/v10/guilds/{guild_id}/roles/{role['id']}", headers=owner.headers))
    no_content(client.delete(f"/api/v10/guilds/{guild_id}/members/{member.id}",
                             headers={**owner.headers, **reason("bye")}))
    entries = log(client, owner, guild_id)["audit_log_entries"]
    assert [e["action_type"] for e in entries] == [20, 32, 25, 25, 31, 30]
    kick, delete, removed, added, update, create = entries
    assert kick["reason"] == "bye" and kick["target_id"] == str(member.id)
    assert added["changes"] == [{"key": "$add", "new_value": [{"id": role["id"], "name": "helpers2"}]}]
    assert removed["changes"] == [{"key": "$remove", "new_value": [{"id": role["id"], "name": "helpers2"}]}]
    assert update["changes"] == [{"key": "name", "old_value": "helpers", "new_value": "helpers2"}]
    assert {"key": "name", "new_value": "helpers"} in create["changes"]
    assert {"key": "name", "old_value": "helpers2"} in delete["changes"]
    assert delete["target_id"] == create["target_id"] == role["id"]


def test_channel_and_overwrite_writes_are_logged(client, setup):
    owner, _, member, _, guild_id, _ = setup
    channel = json_body(client.post(f"/api/v10/guilds/{guild_id}/channels", json={"name": "logged"},
                                    headers=owner.headers), 201)
    json_body(client.patch(f"/api/v10/channels/{channel['id']}", json={"topic": "t"}, headers=owner.headers), 200)
    url = f"/api/v10/channels/{channel['id']}/permissions/{member.id}"
    no_content(client.put(url, json={"type": 1, "allow": "1024"}, headers=owner.headers))
    no_content(client.put(url, json={"type": 1, "allow": "2048"}, headers=owner.headers))
    no_content(client.delete(url, headers=owner.headers))
    json_body(client.delete(f"/api/v10/channels/{channel['id']}", headers=owner.headers), 200)
    entries = log(client, owner, guild_id)["audit_log_entries"]
    assert [e["action_type"] for e in entries] == [12, 15, 14, 13, 11, 10]
    assert all(e["target_id"] == channel["id"] for e in entries)
    assert entries[4]["changes"] == [{"key": "topic", "new_value": "t"}]
    assert entries[2]["changes"] == [{"key": "allow", "old_value": "1024", "new_value": "2048"}]
    assert entries[2]["options"] == {"id": str(member.id), "type": "1"}


def test_webhook_management_is_logged_and_the_token_routes_are_not(client, setup, make):
    owner, _, _, _, guild_id, channel_id = setup
    other = make.channel(guild_id, "other")
    hook = json_body(client.post(f"/api/v10/channels/{channel_id}/webhooks", json={"name": "Hook"},
                                 headers={**owner.headers, **reason("deploys")}), 200)
    json_body(client.patch(f"/api/v10/webhooks/{hook['id']}", json={"name": "Renamed", "channel_id": str(other)},
                           headers=owner.headers), 200)
    json_body(client.patch(f"/api/v10/webhooks/{hook['id']}/{hook['token']}", json={"name": "By token"}), 200)
    no_content(client.delete(f"/api/v10/webhooks/{hook['id']}", headers=owner.headers))
    entries = log(client, owner, guild_id)["audit_log_entries"]
    assert [e["action_type"] for e in entries] == [52, 51, 50]
    assert all(e["target_id"] == hook["id"] and e["user_id"] == str(owner.id) for e in entries)
    deleted, updated, created = entries
    assert created["reason"] == "deploys"
    assert created["changes"] == [{"key": "name", "new_value": "Hook"},
                                  {"key": "channel_id", "new_value": str(channel_id)},
                                  {"key": "type", "new_value": 1}]
    assert updated["changes"] == [{"key": "name", "old_value": "Hook", "new_value": "Renamed"},
                                  {"key": "channel_id", "old_value": str(channel_id), "new_value": str(other)}]
    assert deleted["changes"][0] == {"key": "name", "old_value": "By token"}


def test_message_moderation_is_logged_but_deleting_ones_own_is_not(client, setup):
    owner, staff, member, _, guild_id, channel_id = setup
    sent = [json_body(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": str(i)},
                                  headers=member.headers), 200)["id"] for i in range(4)]
    no_content(client.delete(f"/api/v10/channels/{channel_id}/messages/{sent[0]}", headers=member.headers))
    no_content(client.put(f"/api/v10/channels/{channel_id}/pins/{sent[1]}", headers=staff.headers))
    no_content(client.delete(f"/api/v10/channels/{channel_id}/pins/{sent[1]}", headers=staff.headers))
    no_content(client.delete(f"/api/v10/channels/{channel_id}/messages/{sent[1]}",
                             headers={**staff.headers, **reason("off topic")}))
    no_content(client.post(f"/api/v10/channels/{channel_id}/messages/bulk-delete",
                           json={"messages": sent[2:]}, headers=staff.headers))
    entries = log(client, owner, guild_id)["audit_log_entries"]
    assert [e["action_type"] for e in entries] == [73, 72, 75, 74]
    bulk, deleted, unpin, pin = entries
    assert (bulk["target_id"], bulk["options"]) == (str(channel_id), {"count": "2"})
    assert (deleted["target_id"], deleted["options"], deleted["reason"]) == (
        str(member.id), {"channel_id": str(channel_id), "count": "1"}, "off topic")
    assert pin["options"] == {"channel_id": str(channel_id), "message_id": sent[1]}
    assert unpin["target_id"] == str(member.id)


def test_entries_filter_by_user_and_action_and_page(client, setup):
    owner, staff, member, _, guild_id, _ = setup
    for nick in ("a", "b", "c"):
        json_body(client.patch(f"/api/v10/guilds/{guild_id}/members/{member.id}", json={"nick": nick},
                               headers=staff.headers), 200)
    no_content(client.put(f"/api/v10/guilds/{guild_id}/bans/{member.id}", json={}, headers=owner.headers))
    every = log(client, owner, guild_id)["audit_log_entries"]
    ids = [e["id"] for e in every]
    assert [e["action_type"] for e in log(client, owner, guild_id, user_id=staff.id)["audit_log_entries"]] == [24] * 3
    assert [e["id"] for e in log(client, owner, guild_id, action_type=22)["audit_log_entries"]] == ids[:1]
    assert [e["id"] for e in log(client, owner, guild_id, limit=2)["audit_log_entries"]] == ids[:2]
    assert [e["id"] for e in log(client, owner, guild_id, before=ids[1])["audit_log_entries"]] == ids[2:]
    assert [e["id"] for e in log(client, owner, guild_id, after=ids[3], limit=2)["audit_log_entries"]] == ids[1:3]
    for bad in (0, 101):
        response = client.get(f"/api/v10/guilds/{guild_id}/audit-logs", query_string={"limit": bad},
                              headers=owner.headers)
        assert field_error_codes(response, "limit") in (["NUMBER_TYPE_MIN"], ["NUMBER_TYPE_MAX"])


def test_a_reason_longer_than_512_or_not_utf8_is_refused_and_nothing_is_written(client, setup):
    owner, _, member, _, guild_id, _ = setup
    url = f"/api/v10/guilds/{guild_id}/members/{member.id}"
    codes = field_error_codes(client.delete(url, headers={**owner.headers, **reason("x" * 513)}),
                              "X-Audit-Log-Reason")
    assert codes == ["BASE_TYPE_MAX_LENGTH"]
    field_error_codes(client.delete(url, headers={**owner.headers, "X-Audit-Log-Reason": "%FF"}),
                      "X-Audit-Log-Reason")
    # A NUL (which PostgreSQL text cannot hold) or another control character is refused before the write.
    for refused in ("spam%00bot", "spam%07"):
        assert field_error_codes(client.delete(url, headers={**owner.headers, "X-Audit-Log-Reason": refused}),
                                 "X-Audit-Log-Reason") == ["STRING_TYPE_INVALID_CHARACTERS"]
    json_body(client.get(url, headers=owner.headers), 200)
    no_content(client.delete(url, headers={**owner.headers, **reason("é" * 512)}))
    assert log(client, owner, guild_id)["audit_log_entries"][0]["reason"] == "é" * 512
    # Unencoded UTF-8 (the header's bytes as they arrive) is read as UTF-8, not stored garbled.
    channel = json_body(client.post(f"/api/v10/guilds/{guild_id}/channels", json={"name": "raw"},
                                    headers={**owner.headers,
                                             "X-Audit-Log-Reason": "späm".encode().decode("latin-1")}), 201)
    assert log(client, owner, guild_id)["audit_log_entries"][0] == {
        **log(client, owner, guild_id)["audit_log_entries"][0], "target_id": channel["id"], "reason": "späm"}


def test_thread_creation_edits_and_deletion_are_logged_but_not_archiving_by_inactivity(client, setup, make,
                                                                                        resources):
    from tests.api.test_threads import age

    owner, _, member, _, guild_id, channel_id = setup
    forum = make.channel(guild_id, "forum", type_=15)
    base = "/api/v10/channels"
    message_id = json_body(client.post(f"{base}/{channel_id}/messages", json={"content": "hi"},
                                       headers=member.headers), 200)["id"]
    public = json_body(client.post(f"{base}/{channel_id}/messages/{message_id}/threads", json={"name": "talk"},
                                   headers={**owner.headers, **reason("discuss")}), 201)
    secret = json_body(client.post(f"{base}/{channel_id}/threads", json={"name": "secret", "type": 12},
                                   headers=owner.headers), 201)
    post = json_body(client.post(f"{base}/{forum}/threads", json={"name": "post", "message": {"content": "first"}},
                                 headers=owner.headers), 201)
    json_body(client.patch(f"{base}/{secret['id']}", json={
        "name": "hush", "locked": True, "invitable": False, "auto_archive_duration": 4320,
        "rate_limit_per_user": 5}, headers={**owner.headers, **reason("tidy")}), 200)
    # Archived by inactivity: the system's doing, no entry; the member who reopens it is logged.
    age(resources, public["id"], 60 * 24 * 2)
    assert json_body(client.get(f"{base}/{public['id']}", headers=owner.headers),
                     200)["thread_metadata"]["archived"] is True
    json_body(client.patch(f"{base}/{public['id']}", json={"archived": False}, headers=owner.headers), 200)
    json_body(client.delete(f"{base}/{secret['id']}", headers={**owner.headers, **reason("done")}), 200)
    entries = log(client, owner, guild_id)["audit_log_entries"]
    assert [(e["action_type"], e["target_id"]) for e in entries] == [
        (112, secret["id"]), (111, public["id"]), (111, secret["id"]), (110, post["id"]), (110, secret["id"]),
        (110, public["id"])]
    deleted, reopened, edited, posted, created_secret, created = entries
    assert all(e["user_id"] == str(owner.id) for e in entries)
    assert (created["reason"], edited["reason"], deleted["reason"], posted["reason"]) == (
        "discuss", "tidy", "done", None)
    assert created["changes"] == [{"key": "name", "new_value": "talk"}, {"key": "type", "new_value": 11},
                                  {"key": "archived", "new_value": False}, {"key": "locked", "new_value": False},
                                  {"key": "auto_archive_duration", "new_value": 1440},
                                  {"key": "rate_limit_per_user", "new_value": 0}]
    assert {"key": "invitable", "new_value": True} in created_secret["changes"]
    assert edited["changes"] == [{"key": "name", "old_value": "secret", "new_value": "hush"},
                                 {"key": "locked", "old_value": False, "new_value": True},
                                 {"key": "auto_archive_duration", "old_value": 1440, "new_value": 4320},
                                 {"key": "rate_limit_per_user", "old_value": 0, "new_value": 5},
                                 {"key": "invitable", "old_value": True, "new_value": False}]
    assert reopened["changes"] == [{"key": "archived", "old_value": True, "new_value": False}]
    assert {"key": "name", "old_value": "hush"} in deleted["changes"]


def test_a_thread_edit_that_changes_nothing_and_a_refused_post_leave_no_entry(client, setup, make):
    owner, _, _, _, guild_id, channel_id = setup
    forum = make.channel(guild_id, "forum", type_=15)
    thread = json_body(client.post(f"/api/v10/channels/{channel_id}/threads", json={"name": "same", "type": 11},
                                   headers=owner.headers), 201)
    json_body(client.patch(f"/api/v10/channels/{thread['id']}", json={"name": "same"}, headers=owner.headers), 200)
    refused = client.post(f"/api/v10/channels/{forum}/threads",
                          json={"name": "post", "message": {"content": "x", "attachments": [{"id": 0}]}},
                          headers=owner.headers)
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert [e["action_type"] for e in log(client, owner, guild_id)["audit_log_entries"]] == [110]


def test_the_page_lists_the_webhooks_and_threads_its_entries_target_that_still_exist(client, setup):
    owner, staff, _, _, guild_id, channel_id = setup
    base = "/api/v10/channels"

    def hook(name):
        return json_body(client.post(f"{base}/{channel_id}/webhooks", json={"name": name}, headers=owner.headers), 200)

    def thread(name):
        return json_body(client.post(f"{base}/{channel_id}/threads", json={"name": name, "type": 11},
                                     headers=owner.headers), 201)

    kept, gone = hook("kept"), hook("gone")
    no_content(client.delete(f"/api/v10/webhooks/{gone['id']}", headers=owner.headers))
    open_, closed = thread("open"), thread("closed")
    json_body(client.delete(f"{base}/{closed['id']}", headers=owner.headers), 200)
    body = log(client, staff, guild_id)
    fetched = json_body(client.get(f"/api/v10/webhooks/{kept['id']}", headers=owner.headers), 200)
    assert body["webhooks"] == [fetched] and "token" not in body["webhooks"][0]
    assert body["threads"] == [json_body(client.get(f"{base}/{open_['id']}", headers=owner.headers), 200)]
    assert [u["id"] for u in body["users"]] == [str(owner.id)]
    # Only the page's targets: a page of webhook entries lists no thread.
    only_hooks = log(client, staff, guild_id, action_type=50)
    assert (len(only_hooks["webhooks"]), only_hooks["threads"]) == (1, [])
