"""Discord-style rate limits in process (memory storage): buckets, headers, 429s, and failing open.

The database does not matter to the limiter, so these run on SQLite only.
"""
from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from tests.support.responses import json_body

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After",
                "X-RateLimit-Bucket")


def send(client, actor, channel_id, content="hi"):
    return client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": content}, headers=actor.headers)


def message_count(client, actor, channel_id) -> int:
    return len(json_body(client.get(f"/api/v10/channels/{channel_id}/messages?limit=100", headers=actor.headers), 200))


def assert_rate_limited(response, *, is_global: bool) -> float:
    body = json_body(response, 429)
    assert body["message"] == "You are being rate limited."
    assert body["global"] is is_global and body["code"] == 0
    assert isinstance(body["retry_after"], float) and body["retry_after"] > 0
    assert response.headers["Via"]  # discord.py treats a 429 without Via as a Cloudflare ban
    assert int(response.headers["Retry-After"]) >= body["retry_after"]
    assert response.headers["X-RateLimit-Scope"] == ("global" if is_global else "user")
    assert (response.headers.get("X-RateLimit-Global") == "true") is is_global
    return body["retry_after"]


def refusals_counted() -> float:
    return REGISTRY.get_sample_value("chatstore_rate_limited_total") or 0.0


def test_sending_is_limited_per_channel_with_discord_headers(client, make, rate_limits):
    rate_limits(rate_limit_message_create="3/2")
    alice = make.actor()
    guild_id, general = make.guild(alice)
    other = make.channel(guild_id)

    before = time.time()
    answers = [send(client, alice, general, f"m{i}") for i in range(3)]
    for remaining, response in zip((2, 1, 0), answers):
        json_body(response, 200)
        assert all(name in response.headers for name in RATE_HEADERS)
        assert int(response.headers["X-RateLimit-Limit"]) == 3
        assert int(response.headers["X-RateLimit-Remaining"]) == remaining
        assert 0 < float(response.headers["X-RateLimit-Reset-After"]) <= 2.0
        assert before < float(response.headers["X-RateLimit-Reset"]) <= time.time() + 2.0
    assert len({r.headers["X-RateLimit-Bucket"] for r in answers}) == 1

    counted = refusals_counted()
    refused = send(client, alice, general, "one too many")
    retry_after = assert_rate_limited(refused, is_global=False)
    assert refusals_counted() == counted + 1  # operators see 429s in chatstore_rate_limited_total
    assert retry_after <= 2.0
    assert int(refused.headers["X-RateLimit-Remaining"]) == 0
    # The bucket is keyed by the channel: another channel of the same guild is not affected.
    json_body(send(client, alice, other), 200)

    time.sleep(retry_after)
    json_body(send(client, alice, general, "after the wait"), 200)
    contents = [m["content"] for m in json_body(
        client.get(f"/api/v10/channels/{general}/messages", headers=alice.headers), 200)]
    assert contents == ["after the wait", "m2", "m1", "m0"]  # the refused message was not stored


def test_each_user_has_their_own_route_bucket(client, make, rate_limits):
    rate_limits(rate_limit_message_create="1/5")
    alice, bob = make.actor(), make.actor()
    guild_id, general = make.guild(alice)
    make.member(guild_id, bob)
    json_body(send(client, alice, general), 200)
    assert_rate_limited(send(client, alice, general), is_global=False)
    json_body(send(client, bob, general), 200)


def test_routes_without_a_bucket_of_their_own_get_one_each(client, make, rate_limits):
    rate_limits(rate_limit_default="2/5")
    alice = make.actor()
    guild_id, general = make.guild(alice)
    channel_url = f"/api/v10/channels/{general}"
    first = client.get(channel_url, headers=alice.headers)
    json_body(client.get(channel_url, headers=alice.headers), 200)
    assert_rate_limited(client.get(channel_url, headers=alice.headers), is_global=False)
    # Listing messages is another route, so another bucket, with another id.
    listing = client.get(f"{channel_url}/messages", headers=alice.headers)
    json_body(listing, 200)
    assert listing.headers["X-RateLimit-Bucket"] != first.headers["X-RateLimit-Bucket"]


def test_global_limit_counts_every_route_of_a_user(client, make, rate_limits):
    rate_limits(rate_limit_global_per_second=4)
    alice, bob = make.actor(), make.actor()
    guild_id, general = make.guild(alice)
    urls = ["/api/v10/users/@me", f"/api/v10/guilds/{guild_id}", f"/api/v10/channels/{general}",
            f"/api/v10/channels/{general}/messages"]
    for url in urls:
        json_body(client.get(url, headers=alice.headers), 200)
    refused = client.get("/api/v10/users/@me", headers=alice.headers)
    assert assert_rate_limited(refused, is_global=True) <= 1.0
    json_body(client.get("/api/v10/users/@me", headers=bob.headers), 200)


def test_unauthenticated_requests_are_refused_before_they_count(client, make, rate_limits):
    rate_limits(rate_limit_global_per_second=2)
    alice = make.actor()
    for _ in range(5):
        json_body(client.get("/api/v10/users/@me", headers={"Authorization": "Bot nope.nope"}), 401)
    json_body(client.get("/api/v10/users/@me", headers=alice.headers), 200)


def test_without_limits_no_rate_limit_headers_are_sent(client, make):
    alice = make.actor()
    _guild_id, general = make.guild(alice)
    for _ in range(8):
        response = send(client, alice, general)
        json_body(response, 200)
        assert not any(name in response.headers for name in RATE_HEADERS)


def test_an_unreachable_redis_lets_requests_through_quickly(client, make, rate_limits):
    # Nothing listens on port 1; the limiter must neither fail the request nor wait per request.
    rate_limits(rate_limit_storage_url="redis://127.0.0.1:1/0", rate_limit_message_create="1/5")
    alice = make.actor()
    _guild_id, general = make.guild(alice)
    started = time.monotonic()
    for _ in range(5):
        response = send(client, alice, general)
        json_body(response, 200)
        assert "X-RateLimit-Limit" not in response.headers
    assert time.monotonic() - started < 2.0
    assert message_count(client, alice, general) == 5


def assert_blocked(response) -> float:
    body = json_body(response, 429)
    assert body["message"].startswith("You are being blocked") and body["global"] is True
    assert response.headers["Via"] and response.headers["X-RateLimit-Scope"] == "global"
    return body["retry_after"]


def test_invalid_requests_of_an_address_are_limited_over_a_short_window(client, make, rate_limits):
    rate_limits(rate_limit_invalid_burst="3/30")
    actor = make.actor()
    guessing = {"Authorization": "Bot not-a-token"}
    for _ in range(3):
        assert client.get("/api/v10/users/@me", headers=guessing).status_code == 401
    # Over the window the address is refused whatever it sends, a valid token included, before any lookup.
    assert 0 < assert_blocked(client.get("/api/v10/users/@me", headers=actor.headers)) <= 30
    assert_blocked(client.get("/api/v10/users/@me", headers=guessing))
    # Another address is not.
    elsewhere = client.get("/api/v10/users/@me", headers=actor.headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert elsewhere.status_code == 200


def test_403s_and_429s_count_as_invalid_over_the_long_window(client, make, rate_limits):
    rate_limits(rate_limit_invalid="4/600", rate_limit_message_create="1/60")
    owner, outsider = make.actor(), make.actor()
    _guild_id, channel_id = make.guild(owner)
    assert send(client, owner, channel_id).status_code == 200
    assert send(client, owner, channel_id).status_code == 429
    assert send(client, outsider, channel_id).status_code == 403
    assert send(client, outsider, channel_id).status_code == 429
    assert client.get(f"/api/v10/channels/{channel_id}", headers=outsider.headers).status_code == 403
    retry_after = assert_blocked(client.get("/api/v10/users/@me", headers=owner.headers))
    assert 500 < retry_after <= 600


def test_valid_requests_never_count_as_invalid(client, make, rate_limits):
    rate_limits(rate_limit_invalid_burst="2/30")
    actor = make.actor()
    for _ in range(10):
        assert client.get("/api/v10/users/@me", headers=actor.headers).status_code == 200
