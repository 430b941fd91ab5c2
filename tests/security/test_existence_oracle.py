"""Without READ_MESSAGE_HISTORY a member sees a channel but none of its past messages; writes must not tell them
which message ids exist. Editing, deleting or removing one's reaction from someone else's message answers byte
for byte what a missing id gets (404 10008), whatever else the caller holds; their own messages and reactions
stay theirs to change."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from app.auth.permissions import Permission
from tests.support.responses import error, json_body, no_content

SEES_NO_HISTORY = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.ADD_REACTIONS
FIRE = quote("🔥", safe="")
#: Headers that differ between any two answers (per request or per rate-limit count), whatever they say.
PER_REQUEST = {"x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-reset-after"}


@pytest.fixture
def channel(client, make):
    """(owner, caller without history, caller without history but with MANAGE_MESSAGES, channel_id, owner's
    message id, the caller's own message id)."""
    owner, member, moderator = make.actor(), make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner, everyone=SEES_NO_HISTORY)
    make.member(guild_id, member)
    make.member(guild_id, moderator, roles=[make.role(guild_id, Permission.MANAGE_MESSAGES)])
    url = f"/api/v10/channels/{channel_id}/messages"
    theirs = json_body(client.post(url, json={"content": "not for you"}, headers=owner.headers), 200)["id"]
    no_content(client.put(f"{url}/{theirs}/reactions/{FIRE}/@me", headers=owner.headers))
    own = json_body(client.post(url, json={"content": "mine"}, headers=member.headers), 200)["id"]
    return owner, member, moderator, channel_id, theirs, own


def answer(response) -> tuple:
    headers = sorted((name, value) for name, value in response.headers.items() if name.lower() not in PER_REQUEST)
    return response.status_code, headers, response.get_data()


REQUESTS = [
    pytest.param("PATCH", "", {"content": "edited"}, id="edit-content"),
    pytest.param("PATCH", "", {"flags": 4}, id="edit-flags"),
    pytest.param("DELETE", "", None, id="delete"),
    pytest.param("DELETE", f"/reactions/{FIRE}/@me", None, id="remove-own-reaction"),
]


@pytest.mark.parametrize("method, suffix, body", REQUESTS)
@pytest.mark.parametrize("caller", ["member", "moderator"])
def test_another_members_message_answers_exactly_as_a_missing_id(client, resources, channel, method, suffix, body,
                                                                  caller):
    owner, member, moderator, channel_id, theirs, _own = channel
    actor = {"member": member, "moderator": moderator}[caller]
    missing = resources.ids.next_id()

    def send(message_id):
        return client.open(f"/api/v10/channels/{channel_id}/messages/{message_id}{suffix}", method=method,
                           headers=actor.headers, **({"json": body} if body is not None else {}))

    existing_answer, missing_answer = answer(send(theirs)), answer(send(missing))
    assert existing_answer == missing_answer
    assert existing_answer[0] == 404 and b'"code":10008' in existing_answer[2]
    # And nothing changed.
    message = json_body(client.get(f"/api/v10/channels/{channel_id}/messages/{theirs}", headers=owner.headers), 200)
    assert (message["content"], message["flags"], message["reactions"][0]["count"]) == ("not for you", 0, 1)


def test_own_messages_and_reactions_stay_changeable_without_history(client, make, channel):
    owner, member, _moderator, channel_id, theirs, own = channel
    url = f"/api/v10/channels/{channel_id}/messages"
    # A reaction added while the member could read history, which is then taken away.
    make.overwrite(channel_id, member.id, 1, allow=Permission.READ_MESSAGE_HISTORY)
    no_content(client.put(f"{url}/{theirs}/reactions/{FIRE}/@me", headers=member.headers))
    make.overwrite(channel_id, member.id, 1)
    no_content(client.delete(f"{url}/{theirs}/reactions/{FIRE}/@me", headers=member.headers))
    assert json_body(client.get(f"{url}/{theirs}", headers=owner.headers), 200)["reactions"][0]["count"] == 1
    assert json_body(client.patch(f"{url}/{own}", json={"content": "mine, edited"}, headers=member.headers),
                     200)["content"] == "mine, edited"
    no_content(client.delete(f"{url}/{own}", headers=member.headers))
    error(client.get(f"{url}/{own}", headers=owner.headers), 404, 10008)


def test_with_history_the_answers_are_discords_usual_ones(client, make, channel):
    owner, member, _moderator, channel_id, theirs, _own = channel
    make.overwrite(channel_id, member.id, 1, allow=Permission.READ_MESSAGE_HISTORY)
    url = f"/api/v10/channels/{channel_id}/messages/{theirs}"
    error(client.patch(url, json={"content": "edited"}, headers=member.headers), 403, 50005)
    error(client.delete(url, headers=member.headers), 403, 50013)
    no_content(client.delete(f"{url}/reactions/{FIRE}/@me", headers=member.headers))
