"""Authorization matrix: every /api/v10 route against every kind of caller, each with the outcome it must get.

Callers: no token, a malformed token, a revoked token, a user outside the guild, a member lacking the route's
permission through their roles, a member whose roles grant it but whose channel overwrite denies it (channel
routes), and a member who holds it. The routes come from the app's URL map, so a new route without a MATRIX
entry fails here. Where a caller may not see the channel, answers about a real message and about a message that
does not exist must be identical: nothing tells them the id exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from app import create_app
from app.auth.permissions import Permission
from app.messages.base import Message
from config import Settings
from models import Ban, Token
from tests.support.responses import json_body

P = Permission
VIEW, HISTORY = P.VIEW_CHANNEL, P.READ_MESSAGE_HISTORY
THUMBS_UP = "%F0%9F%91%8D"
UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}
CALLERS = ("no_token", "bad_token", "revoked_token", "outsider", "lacking_by_role", "denied_by_overwrite", "holder")


@dataclass(frozen=True)
class Rule:
    #: "channel": permissions resolved with the channel's overwrites; "guild": guild-wide permissions;
    #: "user": needs only a valid token; "public": needs nothing.
    scope: str
    #: What the route needs beyond membership (channel routes: beyond seeing the channel, unless it is that).
    permission: int = 0
    success: int = 200
    #: The JSON code when the permission is missing: 50001 when it hides the channel or its history.
    denied: int = 50013
    body: dict | None = None
    #: Who wrote the message the path points at: the guild's owner, the caller (edits are the author's), or the
    #: webhook of the path (a new message each call).
    author: str = "owner"
    #: The JSON code a user outside the guild gets (403).
    outsider: int = 50001
    overrides: dict = field(default_factory=dict)


MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): Rule("public"),
    ("GET", "/users/@me"): Rule("user"),
    ("GET", "/gateway"): Rule("public"),
    ("GET", "/gateway/bot"): Rule("user"),
    ("GET", "/oauth2/applications/@me"): Rule("user"),
    ("GET", "/users/<user_id>"): Rule("user", overrides={"user_id": "owner"}),
    ("GET", "/users/@me/guilds"): Rule("user"),
    # A DM needs a guild in common with its recipient (the owner here): an outsider has none.
    ("POST", "/users/@me/channels"): Rule("guild", outsider=50007, overrides={"body": "dm_with_owner"}),
    ("POST", "/guilds"): Rule("user", success=201, body={"name": "mine"}),
    ("GET", "/guilds/<guild_id>"): Rule("guild"),
    ("GET", "/guilds/<guild_id>/channels"): Rule("guild"),
    ("POST", "/guilds/<guild_id>/channels"): Rule("guild", P.MANAGE_CHANNELS, 201, body={"name": "new"}),
    ("GET", "/guilds/<guild_id>/roles"): Rule("guild"),
    ("POST", "/guilds/<guild_id>/roles"): Rule("guild", P.MANAGE_ROLES, body={"name": "new"}),
    ("PATCH", "/guilds/<guild_id>/roles/<role_id>"): Rule("guild", P.MANAGE_ROLES, body={"name": "renamed"}),
    ("DELETE", "/guilds/<guild_id>/roles/<role_id>"): Rule("guild", P.MANAGE_ROLES, 204),
    ("GET", "/guilds/<guild_id>/members"): Rule("guild"),
    ("GET", "/guilds/<guild_id>/members/<user_id>"): Rule("guild"),
    # Any member may search (results are filtered by channel); this world's guild was never indexed: 202.
    ("GET", "/guilds/<guild_id>/messages/search"): Rule("guild", success=202),
    ("PUT", "/guilds/<guild_id>/members/<user_id>"): Rule("guild", P.MANAGE_GUILD, 201,
                                                            overrides={"user_id": "newcomer", "body": "consent"}),
    ("DELETE", "/guilds/<guild_id>/members/<user_id>"): Rule("guild", P.KICK_MEMBERS, 204),
    ("PATCH", "/guilds/<guild_id>/members/<user_id>"): Rule("guild", P.MANAGE_NICKNAMES, body={"nick": "renamed"}),
    ("PATCH", "/guilds/<guild_id>/members/@me"): Rule("guild", P.CHANGE_NICKNAME, body={"nick": "me"}),
    ("GET", "/guilds/<guild_id>/members/search"): Rule("guild", overrides={"query": "query=user"}),
    ("GET", "/guilds/<guild_id>/bans"): Rule("guild", P.BAN_MEMBERS),
    ("GET", "/guilds/<guild_id>/bans/<user_id>"): Rule("guild", P.BAN_MEMBERS, overrides={"user_id": "banned"}),
    ("PUT", "/guilds/<guild_id>/bans/<user_id>"): Rule("guild", P.BAN_MEMBERS, 204, body={}),
    ("DELETE", "/guilds/<guild_id>/bans/<user_id>"): Rule("guild", P.BAN_MEMBERS, 204,
                                                          overrides={"user_id": "banned"}),
    ("POST", "/guilds/<guild_id>/bulk-ban"): Rule("guild", P.BAN_MEMBERS | P.MANAGE_GUILD,
                                                  overrides={"body": "bystander_ids"}),
    ("GET", "/guilds/<guild_id>/audit-logs"): Rule("guild", P.VIEW_AUDIT_LOG),
    ("PUT", "/guilds/<guild_id>/members/<user_id>/roles/<role_id>"): Rule("guild", P.MANAGE_ROLES, 204),
    ("DELETE", "/guilds/<guild_id>/members/<user_id>/roles/<role_id>"): Rule("guild", P.MANAGE_ROLES, 204),
    ("GET", "/channels/<channel_id>"): Rule("channel", VIEW, denied=50001),
    ("PATCH", "/channels/<channel_id>"): Rule("channel", P.MANAGE_CHANNELS, body={"name": "renamed"}),
    ("DELETE", "/channels/<channel_id>"): Rule("channel", P.MANAGE_CHANNELS),
    ("PUT", "/channels/<channel_id>/permissions/<overwrite_id>"): Rule(
        "channel", P.MANAGE_ROLES, 204, body={"type": 0, "allow": "0", "deny": "0"}),
    ("DELETE", "/channels/<channel_id>/permissions/<overwrite_id>"): Rule("channel", P.MANAGE_ROLES, 204),
    ("GET", "/channels/<channel_id>/messages"): Rule("channel", VIEW, denied=50001),
    ("POST", "/channels/<channel_id>/messages"): Rule("channel", P.SEND_MESSAGES, body={"content": "hi"}),
    ("GET", "/channels/<channel_id>/messages/<message_id>"): Rule("channel", HISTORY, denied=50001),
    ("PATCH", "/channels/<channel_id>/messages/<message_id>"): Rule("channel", VIEW, denied=50001,
                                                                   body={"content": "edited"}, author="caller"),
    ("DELETE", "/channels/<channel_id>/messages/<message_id>"): Rule("channel", P.MANAGE_MESSAGES, 204),
    ("POST", "/channels/<channel_id>/typing"): Rule("channel", P.SEND_MESSAGES, 204),
    ("POST", "/channels/<channel_id>/messages/bulk-delete"): Rule("channel", P.MANAGE_MESSAGES, 204,
                                                                  overrides={"body": "two_messages"}),
    ("PUT", "/channels/<channel_id>/messages/<message_id>/reactions/<emoji>/@me"): Rule(
        "channel", P.ADD_REACTIONS, 204),
    ("DELETE", "/channels/<channel_id>/messages/<message_id>/reactions/<emoji>/@me"): Rule(
        "channel", VIEW, 204, denied=50001),
    ("DELETE", "/channels/<channel_id>/messages/<message_id>/reactions/<emoji>/<user_id>"): Rule(
        "channel", P.MANAGE_MESSAGES, 204, overrides={"user_id": "owner"}),
    ("GET", "/channels/<channel_id>/messages/<message_id>/reactions/<emoji>"): Rule("channel", HISTORY,
                                                                                    denied=50001),
    ("DELETE", "/channels/<channel_id>/messages/<message_id>/reactions"): Rule("channel", P.MANAGE_MESSAGES, 204),
    ("DELETE", "/channels/<channel_id>/messages/<message_id>/reactions/<emoji>"): Rule(
        "channel", P.MANAGE_MESSAGES, 204),
    ("GET", "/channels/<channel_id>/messages/pins"): Rule("channel", VIEW, denied=50001),
    ("GET", "/channels/<channel_id>/pins"): Rule("channel", VIEW, denied=50001),
    ("PUT", "/channels/<channel_id>/messages/pins/<message_id>"): Rule("channel", P.PIN_MESSAGES, 204),
    ("DELETE", "/channels/<channel_id>/messages/pins/<message_id>"): Rule("channel", P.PIN_MESSAGES, 204),
    ("PUT", "/channels/<channel_id>/pins/<message_id>"): Rule("channel", P.PIN_MESSAGES, 204),
    ("DELETE", "/channels/<channel_id>/pins/<message_id>"): Rule("channel", P.PIN_MESSAGES, 204),
    ("POST", "/channels/<channel_id>/webhooks"): Rule("channel", P.MANAGE_WEBHOOKS, body={"name": "hook"}),
    ("GET", "/channels/<channel_id>/webhooks"): Rule("channel", P.MANAGE_WEBHOOKS),
    ("GET", "/guilds/<guild_id>/webhooks"): Rule("guild", P.MANAGE_WEBHOOKS),
    ("GET", "/webhooks/<webhook_id>"): Rule("channel", P.MANAGE_WEBHOOKS),
    ("PATCH", "/webhooks/<webhook_id>"): Rule("channel", P.MANAGE_WEBHOOKS, body={"name": "renamed"}),
    ("DELETE", "/webhooks/<webhook_id>"): Rule("channel", P.MANAGE_WEBHOOKS, 204),
    # A webhook's token is the credential of these: whatever Authorization says, the right token succeeds (wrong
    # tokens and deleted webhooks: tests/api/test_webhooks.py).
    ("GET", "/webhooks/<webhook_id>/<token>"): Rule("public"),
    ("PATCH", "/webhooks/<webhook_id>/<token>"): Rule("public", body={"name": "renamed"}),
    ("DELETE", "/webhooks/<webhook_id>/<token>"): Rule("public", success=204, overrides={"webhook": "fresh"}),
    ("POST", "/webhooks/<webhook_id>/<token>"): Rule("public", success=204, body={"content": "hi"}),
    ("GET", "/webhooks/<webhook_id>/<token>/messages/<message_id>"): Rule("public", author="webhook"),
    ("PATCH", "/webhooks/<webhook_id>/<token>/messages/<message_id>"): Rule("public", body={"content": "edited"},
                                                                           author="webhook"),
    ("DELETE", "/webhooks/<webhook_id>/<token>/messages/<message_id>"): Rule("public", success=204, author="webhook"),
    # Threads: a thread's permissions are its parent's (the world's channel, whose overwrites apply); the
    # "thread" override points <channel_id> at a public thread of it, which the bystander has joined.
    ("POST", "/channels/<channel_id>/messages/<message_id>/threads"): Rule(
        "channel", P.CREATE_PUBLIC_THREADS, 201, body={"name": "t"}),
    ("POST", "/channels/<channel_id>/threads"): Rule("channel", P.CREATE_PUBLIC_THREADS, 201,
                                                     body={"name": "t", "type": 11}),
    ("GET", "/guilds/<guild_id>/threads/active"): Rule("guild"),
    ("GET", "/channels/<channel_id>/threads/archived/public"): Rule("channel", HISTORY),
    ("GET", "/channels/<channel_id>/threads/archived/private"): Rule("channel", P.MANAGE_THREADS),
    ("GET", "/channels/<channel_id>/users/@me/threads/archived/private"): Rule("channel", HISTORY),
    ("PUT", "/channels/<channel_id>/thread-members/@me"): Rule("channel", VIEW, 204, denied=50001,
                                                               overrides={"channel": "thread"}),
    ("DELETE", "/channels/<channel_id>/thread-members/@me"): Rule("channel", VIEW, 204, denied=50001,
                                                                  overrides={"channel": "thread"}),
    ("PUT", "/channels/<channel_id>/thread-members/<user_id>"): Rule(
        "channel", P.SEND_MESSAGES_IN_THREADS, 204, overrides={"channel": "thread"}),
    ("DELETE", "/channels/<channel_id>/thread-members/<user_id>"): Rule(
        "channel", P.MANAGE_THREADS, 204, overrides={"channel": "thread"}),
    ("GET", "/channels/<channel_id>/thread-members"): Rule("channel", VIEW, denied=50001,
                                                           overrides={"channel": "thread"}),
    ("GET", "/channels/<channel_id>/thread-members/<user_id>"): Rule("channel", VIEW, denied=50001,
                                                                     overrides={"channel": "thread"}),
}


def served_routes() -> list[tuple[str, str]]:
    # An app that is never served: create_app connects to nothing until a request needs it.
    app = create_app(Settings(database_url="sqlite://", rate_limit_enabled=False))
    return sorted({(method, rule.rule[len("/api/v10"):]) for rule in app.url_map.iter_rules()
                   if rule.rule.startswith("/api/v10/") for method in rule.methods - {"HEAD", "OPTIONS"}})


ROUTES = served_routes()
#: (route, caller) checks and message-existence comparisons made, over the module; printed at the end (pytest -s).
CHECKS_MADE: list[tuple] = []


@pytest.fixture(scope="module", autouse=True)
def report_matrix_size():
    yield
    print(f"\nauthorization matrix: {len(ROUTES)} routes, {len(CHECKS_MADE)} checks")


def test_every_route_has_a_matrix_entry():
    assert [route for route in ROUTES if route not in MATRIX] == []
    assert [route for route in MATRIX if route not in ROUTES] == []  # no stale entries either


class World:
    """A guild with one caller of each kind, a target role and member, and messages by the owner."""

    def __init__(self, client, make, resources, rule: Rule):
        self.client, self.make, self.resources, self.rule = client, make, resources, rule
        self.owner = make.actor()
        self.guild_id, self.channel_id = make.guild(self.owner, everyone=0)
        prerequisites = (VIEW | HISTORY) & ~rule.permission if rule.scope == "channel" else 0
        # Positions: the holder's role outranks the target role, so hierarchy rules do not get in the way.
        basic = make.role(self.guild_id, permissions=prerequisites, position=2, name="basic")
        granting = make.role(self.guild_id, permissions=prerequisites | rule.permission, position=2, name="granting")
        self.target_role = make.role(self.guild_id, permissions=0, position=1, name="target")
        self.callers = {name: make.actor() for name in ("outsider", "lacking_by_role", "denied_by_overwrite",
                                                         "holder", "revoked_token")}
        make.member(self.guild_id, self.callers["lacking_by_role"], roles=[basic])
        make.member(self.guild_id, self.callers["denied_by_overwrite"], roles=[granting])
        make.member(self.guild_id, self.callers["holder"], roles=[granting])
        make.member(self.guild_id, self.callers["revoked_token"], roles=[granting])
        if rule.permission:
            make.overwrite(self.channel_id, self.callers["denied_by_overwrite"].id, 1, deny=rule.permission)
        make.overwrite(self.channel_id, self.target_role, 0)
        self.bystander, self.newcomer, self.banned = make.actor(), make.actor(), make.actor()
        make.member(self.guild_id, self.bystander)
        with make.session() as session:
            session.add(Ban(guild_id=self.guild_id, user_id=self.banned.id, created_at=datetime.now(timezone.utc)))
            session.commit()
        with make.session() as session:
            session.execute(update(Token).where(Token.user_id == self.callers["revoked_token"].id)
                            .values(revoked_at=datetime.now(timezone.utc)))
            session.commit()
        self.owner_messages = [self.message(self.owner.id) for _ in range(2)]
        self.hook = self.new_webhook()
        self.thread_id = None
        if rule.overrides.get("channel") == "thread":
            thread = json_body(client.post(f"/api/v10/channels/{self.channel_id}/threads",
                                           json={"name": "thread", "type": 11}, headers=self.owner.headers), 201)
            self.thread_id = int(thread["id"])
            joined = client.put(f"/api/v10/channels/{self.thread_id}/thread-members/{self.bystander.id}",
                                headers=self.owner.headers)
            assert joined.status_code == 204, joined.get_data(as_text=True)

    def new_webhook(self) -> dict:
        return json_body(self.client.post(f"/api/v10/channels/{self.channel_id}/webhooks", json={"name": "hook"},
                                          headers=self.owner.headers), 200)

    def webhook_message(self, hook: dict) -> str:
        return json_body(self.client.post(f"/api/v10/webhooks/{hook['id']}/{hook['token']}?wait=true",
                                          json={"content": "hooked"}), 200)["id"]

    def message(self, author_id: int) -> int:
        message_id = self.resources.ids.next_id()
        self.resources.message_store.create_message(Message(id=message_id, channel_id=self.channel_id,
                                                            author_id=author_id, content="secret"))
        return message_id

    def headers(self, caller: str) -> dict[str, str]:
        if caller == "no_token":
            return {}
        if caller == "bad_token":
            return {"Authorization": "Bot MTIz.not-the-secret"}
        return self.callers[caller].headers

    def path(self, template: str, caller: str, message_id: int | None = None) -> str:
        actor = self.callers.get(caller)
        users = {"owner": self.owner.id, "newcomer": self.newcomer.id, "banned": self.banned.id}
        hook = self.new_webhook() if self.rule.overrides.get("webhook") == "fresh" else self.hook
        if self.rule.author == "webhook" and message_id is None:
            message_id = self.webhook_message(hook)
        values = {
            "webhook_id": hook["id"], "token": hook["token"],
            "guild_id": self.guild_id, "channel_id": self.thread_id or self.channel_id, "role_id": self.target_role,
            "overwrite_id": self.target_role, "emoji": THUMBS_UP,
            "user_id": users.get(self.rule.overrides.get("user_id"), self.bystander.id),
            "message_id": message_id if message_id is not None else (
                self.message(actor.id if actor else self.owner.id) if self.rule.author == "caller"
                else self.owner_messages[0]),
        }
        path = template
        for name, value in values.items():
            path = path.replace(f"<{name}>", str(value))
        query = self.rule.overrides.get("query")
        return "/api/v10" + path + (f"?{query}" if query else "")

    def body(self, caller: str) -> dict | None:
        if self.rule.overrides.get("body") == "two_messages":
            return {"messages": [str(m) for m in self.owner_messages]}
        if self.rule.overrides.get("body") == "consent":
            # The newcomer's consent to the caller (callers without a user get the owner's, never reached).
            return {"access_token": self.make.grant(self.newcomer, self.callers.get(caller, self.owner))}
        if self.rule.overrides.get("body") == "bystander_ids":
            return {"user_ids": [str(self.bystander.id)]}
        if self.rule.overrides.get("body") == "dm_with_owner":
            return {"recipient_id": str(self.owner.id)}
        return self.rule.body

    def call(self, method: str, template: str, caller: str, message_id: int | None = None):
        body = self.body(caller)
        return self.client.open(self.path(template, caller, message_id), method=method, headers=self.headers(caller),
                                **({"json": body} if body is not None else {}))


def expected(rule: Rule, caller: str) -> tuple[int, int | None]:
    """(status, JSON code or None for a success) that ``caller`` must get on a route with ``rule``."""
    if rule.scope == "public":
        return rule.success, None
    if caller in ("no_token", "bad_token", "revoked_token"):
        return 401, 0
    if rule.scope == "user" or caller == "holder":
        return rule.success, None
    if caller == "outsider":
        return 403, rule.outsider
    return (403, rule.denied) if rule.permission else (rule.success, None)


# Access rules do not depend on the backend (tests/api checks them on both); one keeps the suite quick.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {t}" for m, t in ROUTES])
def test_route_answers_each_caller_as_the_matrix_says(client, make, resources, method, template):
    rule = MATRIX.get((method, template))
    assert rule is not None, f"{method} {template} has no MATRIX entry"
    world = World(client, make, resources, rule)
    callers = [c for c in CALLERS if not (c == "denied_by_overwrite" and (rule.scope != "channel"))]
    for caller in callers:  # the holder last: its success may delete what the others aimed at
        status, code = expected(rule, caller)
        response = world.call(method, template, caller)
        assert response.status_code == status, (caller, response.status_code, response.get_data(as_text=True))
        CHECKS_MADE.append((method, template, caller))
        if code is not None:
            body = json_body(response, status)
            assert body["code"] == code, (caller, body)
            if status == 401:
                assert body == UNAUTHORIZED
            if "<message_id>" in template and code in (0, 50001):
                # A caller who may not see the channel learns nothing about which message ids exist.
                missing = world.call(method, template, caller, message_id=world.resources.ids.next_id())
                assert (missing.status_code, missing.get_json()) == (status, body), caller
                CHECKS_MADE.append((method, template, caller, "missing message"))
        elif status != 204:
            json_body(response, status)
