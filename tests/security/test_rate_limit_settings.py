"""Rate limit settings: parsed from the environment, validated, and turned into the limiter's windows."""
from __future__ import annotations

import pytest

from app.api import channels, messages  # noqa: F401  (their routes declare themselves in ROUTES)
from app.api.routes import ROUTES, RouteSpec
from app.ratelimit import RateLimiter, bucket_hash
from config import Settings, SettingsError, load_settings


def declared(endpoint: str) -> RouteSpec:
    return next(spec for spec in ROUTES if spec.endpoint == endpoint)


def test_defaults_are_discords():
    settings = load_settings({})
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_storage_url == ""
    limiter = RateLimiter(settings)
    assert (limiter.global_limit.amount, limiter.global_limit.get_expiry()) == (50, 1)
    assert limiter.route_bucket(declared("create_message"))[1].amount == 5
    assert limiter.route_bucket(declared("create_message"))[1].get_expiry() == 5


def test_every_variable_is_read():
    settings = load_settings({
        "RATE_LIMIT_ENABLED": "off", "RATE_LIMIT_GLOBAL_PER_SECOND": "7", "RATE_LIMIT_MESSAGE_CREATE": " 3 / 2 ",
        "RATE_LIMIT_MESSAGE_DELETE": "2/1", "RATE_LIMIT_REACTIONS": "1/1", "RATE_LIMIT_DEFAULT": "9/3",
    })
    assert settings.rate_limit_enabled is False
    assert (settings.rate_limit_global_per_second, settings.rate_limit_message_create,
            settings.rate_limit_message_delete, settings.rate_limit_reactions, settings.rate_limit_default) == (
        7, "3/2", "2/1", "1/1", "9/3")


def test_the_specific_storage_variable_wins_over_redis_url():
    assert load_settings({"REDIS_URL": "redis://a:6379/0"}).rate_limit_storage_url == "redis://a:6379/0"
    assert load_settings({"REDIS_URL": "redis://a:6379/0", "RATE_LIMIT_STORAGE_URL": "memory://"}
                         ).rate_limit_storage_url == "memory://"


@pytest.mark.parametrize(("variable", "raw"), [
    ("RATE_LIMIT_MESSAGE_CREATE", "5"), ("RATE_LIMIT_MESSAGE_CREATE", "0/5"), ("RATE_LIMIT_DEFAULT", "5/0"),
    ("RATE_LIMIT_REACTIONS", "1/0.25"), ("RATE_LIMIT_GLOBAL_PER_SECOND", "0"), ("RATE_LIMIT_ENABLED", "maybe"),
    ("REDIS_URL", "http://cache:6379"),
])
def test_bad_values_are_named(variable, raw):
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: raw})
    assert any(problem.startswith(f"{variable}=") for problem in raised.value.problems)


def test_routes_share_a_bucket_only_where_discord_does():
    limiter = RateLimiter(Settings())
    reaction_routes = ["add_reaction", "remove_own_reaction", "remove_user_reaction", "clear_reactions"]
    assert {limiter.route_bucket(declared(endpoint))[0] for endpoint in reaction_routes} == {"reactions"}
    assert limiter.route_bucket(declared("get_channel"))[0] != limiter.route_bucket(declared("edit_channel"))[0]
    assert bucket_hash("reactions") == bucket_hash("reactions") != bucket_hash("messages.create")
