"""The admin CLI, run as operators run it: ``flask ...`` in a subprocess from the repository root.

Each subprocess costs about a second, so the tests that need a database run several commands against it.
"""
from __future__ import annotations

import base64
import os
import subprocess

import pytest
from sqlalchemy import create_engine, inspect, select

from app import create_app
from app.gateway.protocol import PRIVILEGED_INTENTS, Intent
from config import PROJECT_ROOT, Settings
from models import Member, Token, User
from tests.support.databases import postgres_database, sqlite_database

FLASK = str(PROJECT_ROOT / ".venv" / "bin" / "flask")


def flask(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FLASK, *args], cwd=PROJECT_ROOT, env={**os.environ, "DATABASE_URL": database_url},
                          capture_output=True, text=True, timeout=60)


def succeeded(result: subprocess.CompletedProcess) -> str:
    """stdout of a command that must have exited 0."""
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed_with_one_line(result: subprocess.CompletedProcess) -> str:
    """The error line of a command that must have failed: non-zero exit, one line on stderr, nothing on stdout."""
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_created_user_and_token_authenticate_until_revoked(database, client, resources):
    url = database.database_url
    user_id = succeeded(flask(url, "users", "create", "cli-bot", "--bot"))
    assert user_id.endswith("\n") and user_id.strip().isdigit()
    user_id = user_id.strip()
    token = succeeded(flask(url, "tokens", "create", user_id)).strip()
    assert token and len(token.split()) == 1

    me = client.get("/api/v10/users/@me", headers={"Authorization": f"Bot {token}"})
    assert me.status_code == 200
    assert (me.json["id"], me.json["username"], me.json["bot"]) == (user_id, "cli-bot", True)

    with resources.session() as session:
        token_id = session.scalar(select(Token.id).where(Token.user_id == int(user_id)))
    assert succeeded(flask(url, "tokens", "revoke", str(token_id))) == ""
    assert client.get("/api/v10/users/@me", headers={"Authorization": f"Bot {token}"}).status_code == 401
    assert "no live token" in failed_with_one_line(flask(url, "tokens", "revoke", str(token_id)))


def test_add_member_joins_a_user_and_unknown_rows_fail_in_one_line(database, make, client, resources):
    url = database.database_url
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    assert succeeded(flask(url, "guilds", "add-member", str(guild_id), str(bob.id))) == ""
    with resources.session() as session:
        assert session.get(Member, (guild_id, bob.id)) is not None
    assert client.get(f"/api/v10/guilds/{guild_id}", headers=bob.headers).status_code == 200
    assert "unknown guild" in failed_with_one_line(flask(url, "guilds", "add-member", "4242", str(bob.id)))
    assert "unknown user" in failed_with_one_line(flask(url, "tokens", "create", "4242"))
    # A banned user is not added back, by the CLI either.
    carol = make.actor()
    assert client.put(f"/api/v10/guilds/{guild_id}/bans/{carol.id}", json={}, headers=owner.headers).status_code == 204
    assert "is banned" in failed_with_one_line(flask(url, "guilds", "add-member", str(guild_id), str(carol.id)))
    with resources.session() as session:
        assert session.get(Member, (guild_id, carol.id)) is None


def test_granted_access_token_lets_that_bot_add_that_user_until_revoked(database, make, client):
    url = database.database_url
    owner, bob, human = make.actor(), make.actor(), make.actor(bot=False)
    guild_id, _ = make.guild(owner)
    member_url = f"/api/v10/guilds/{guild_id}/members/{bob.id}"
    grant = ["tokens", "grant", str(bob.id), "--client", str(owner.id), "--scope", "guilds.join"]
    token = succeeded(flask(url, *grant)).strip()
    assert token and len(token.split()) == 1
    assert "unknown client 4242" in failed_with_one_line(flask(url, *grant[:3], "--client", "4242", *grant[5:]))
    assert "unknown user 4242" in failed_with_one_line(flask(url, "tokens", "grant", "4242", *grant[3:]))
    assert "is not a bot" in failed_with_one_line(flask(url, *grant[:3], "--client", str(human.id), *grant[5:]))
    assert "'--scope': 'email' is not 'guilds.join'" in failed_with_one_line(flask(url, *grant[:-1], "email"))

    other = succeeded(flask(url, *grant, "--expires-in", "600")).strip()
    token_id = base64.urlsafe_b64decode(other.split(".")[0] + "==").decode()
    assert succeeded(flask(url, "tokens", "revoke", token_id)) == ""
    assert client.put(member_url, json={"access_token": other}, headers=owner.headers).json["code"] == 50025
    assert client.put(member_url, json={"access_token": token}, headers=owner.headers).status_code == 201


def test_users_intents_allows_and_denies_privileged_intents(database, make, resources):
    url = database.database_url
    bot = make.actor()
    assert succeeded(flask(url, "users", "intents", str(bot.id), "--allow", "message_content", "--allow",
                           "guild_members")) == "guild_members message_content\n"
    assert succeeded(flask(url, "users", "intents", str(bot.id), "--deny", "guild_members")) == "message_content\n"
    with resources.session() as session:
        assert session.get(User, bot.id).privileged_intents == int(Intent.MESSAGE_CONTENT)
    assert "unknown user" in failed_with_one_line(flask(url, "users", "intents", "4242", "--allow",
                                                        "message_content"))
    assert failed_with_one_line(flask(url, "users", "intents", str(bot.id), "--allow", "presences"))


@pytest.mark.parametrize("args", [
    ["users", "create", "x"],
    ["users", "create"],
    ["tokens", "create", "not-a-number"],
    ["tokens", "revoke", str(2**64)],
])
def test_bad_arguments_fail_in_one_line_without_touching_a_database(tmp_path, args):
    never_created = tmp_path / "never" / "chatstore.sqlite3"
    failed_with_one_line(flask(f"sqlite:///{never_created}", *args))
    assert not never_created.exists()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_db_upgrade_then_demo_bootstrap_is_idempotent(backend, tmp_path):
    opener = postgres_database() if backend == "postgres" else sqlite_database(tmp_path)
    with opener as url:
        succeeded(flask(url, "db", "upgrade"))
        engine = create_engine(url)
        try:
            tables = set(inspect(engine).get_table_names())
            assert {"users", "tokens", "guilds", "channels", "alembic_version"} <= tables
        finally:
            engine.dispose()

        first = succeeded(flask(url, "demo", "bootstrap"))
        printed = dict(line.split(":", 1) for line in first.strip().splitlines())
        bot_id, guild_id = printed["demo bot id"].strip(), printed["demo guild id"].strip()
        channel_id, token = printed["demo channel"].strip(), printed["bot token"].split()[0]
        again = succeeded(flask(url, "demo", "bootstrap"))
        assert f"bot {bot_id}, guild {guild_id}, channel {channel_id}" in again
        assert token not in again

        app = create_app(Settings(database_url=url))
        try:
            headers = {"Authorization": f"Bot {token}"}
            client = app.test_client()
            assert client.get("/api/v10/users/@me", headers=headers).json["id"] == bot_id
            assert client.get(f"/api/v10/channels/{channel_id}", headers=headers).json["guild_id"] == guild_id
            with app.extensions["chatstore"].session() as session:
                # The demo bot of `make run` may use every privileged gateway intent.
                assert session.get(User, int(bot_id)).privileged_intents == PRIVILEGED_INTENTS
        finally:
            app.extensions["chatstore"].close()
