"""End to end: a database migrated by ``flask db upgrade``, a bot made with the CLI, real gunicorn with two gevent
workers, and the API over HTTP as a client sees it."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
from urllib.parse import urlsplit

import gevent.pool
import pytest

from config import PROJECT_ROOT
from tests.support.databases import postgres_database, sqlite_database
from tests.support.server import gunicorn_server

pytestmark = pytest.mark.e2e

FLASK = str(PROJECT_ROOT / ".venv" / "bin" / "flask")
CONCURRENT_CHANNELS = 60


def flask(database_url: str, *args: str) -> str:
    result = subprocess.run([FLASK, *args], cwd=PROJECT_ROOT, env={**os.environ, "DATABASE_URL": database_url},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Api:
    """A tiny HTTP client: one connection per request, so concurrent requests spread over the workers."""

    def __init__(self, base_url: str, token: str):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.headers = {"Authorization": f"Bot {token}", "User-Agent": "DiscordBot (e2e, 1.0)"}

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, str | None, object]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            payload = None if body is None else json.dumps(body).encode()
            sent = {**self.headers, **({"Content-Type": "application/json"} if payload else {}), **(headers or {})}
            connection.request(method, "/api/v10" + path, body=payload, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            return response.status, response.getheader("Content-Type"), json.loads(raw) if raw else None
        finally:
            connection.close()

    def ok(self, method: str, path: str, body=None, status: int = 200):
        got, content_type, data = self.request(method, path, body)
        assert (got, content_type) == (status, "application/json"), (method, path, got, content_type, data)
        return data


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    opener = postgres_database() if request.param == "postgres" else sqlite_database(tmp_path)
    with opener as url:
        yield url


def id_slot(snowflake: int) -> int:
    """The worker and process bits (21..12) of a snowflake: which process minted it."""
    return (snowflake >> 12) & 0x3FF


def test_the_api_over_http_against_two_gevent_workers(database_url):
    flask(database_url, "db", "upgrade")
    bot_id = flask(database_url, "users", "create", "e2e-bot", "--bot")
    token = flask(database_url, "tokens", "create", bot_id)
    friend_id = flask(database_url, "users", "create", "e2e-friend")

    # The burst of channel creations below is about ids, not about rate limits, which have their own tests.
    environment = {"DATABASE_URL": database_url, "WEB_WORKERS": "2", "RATE_LIMIT_ENABLED": "false"}
    with gunicorn_server(environment) as server:
        api = Api(server.url, token)
        me = api.ok("GET", "/users/@me")
        assert (me["id"], me["username"], me["bot"]) == (bot_id, "e2e-bot", True)
        assert api.ok("GET", "/oauth2/applications/@me")["id"] == bot_id
        status, content_type, body = Api(server.url, "bad.token").request("GET", "/users/@me")
        assert (status, content_type, body) == (401, "application/json", {"message": "401: Unauthorized", "code": 0})
        status, content_type, body = api.request("GET", "/no/such/route")
        assert (status, content_type, body["code"]) == (404, "application/json", 0)

        guild = api.ok("POST", "/guilds", {"name": "over http"}, status=201)
        assert api.ok("GET", f"/guilds/{guild['id']}?with_counts=1")["approximate_member_count"] == 1
        role = api.ok("POST", f"/guilds/{guild['id']}/roles", {"name": "friends", "permissions": "0"})
        consent = flask(database_url, "tokens", "grant", friend_id, "--client", bot_id, "--scope", "guilds.join")
        member = api.ok("PUT", f"/guilds/{guild['id']}/members/{friend_id}",
                        {"access_token": consent, "roles": [role["id"]]}, status=201)
        assert member["roles"] == [role["id"]] and member["user"]["id"] == friend_id
        assert [m["user"]["id"] for m in api.ok("GET", f"/guilds/{guild['id']}/members?limit=10")] == sorted(
            [bot_id, friend_id], key=int)
        status, content_type, body = api.request("POST", f"/guilds/{guild['id']}/channels", {"name": ""})
        assert (status, content_type, body["code"]) == (400, "application/json", 50035)

        def create_channel(number: int) -> int:
            channel = api.ok("POST", f"/guilds/{guild['id']}/channels", {"name": f"c{number}"}, status=201)
            return int(channel["id"])

        channel_ids = gevent.pool.Pool(16).map(create_channel, range(CONCURRENT_CHANNELS))
        assert len(set(channel_ids)) == CONCURRENT_CHANNELS
        listed = api.ok("GET", f"/guilds/{guild['id']}/channels")
        assert {int(c["id"]) for c in listed} >= set(channel_ids)
        # Both workers served the burst, each minting from the slot it leased.
        assert len({id_slot(i) for i in channel_ids}) == 2, sorted({id_slot(i) for i in channel_ids})

        channel = api.ok("PATCH", f"/channels/{channel_ids[0]}", {"topic": "over http"})
        assert channel["topic"] == "over http"
        api.ok("DELETE", f"/channels/{channel_ids[0]}")
        status, content_type, body = api.request("GET", f"/channels/{channel_ids[0]}")
        assert (status, content_type, body["code"]) == (404, "application/json", 10003)
