"""Fixtures of the security suite: rate limits switched on per test, and a guild to attack (modules that need
another shape of it define their own ``channel``)."""
from __future__ import annotations

import pytest

from app.ratelimit import RateLimiter


@pytest.fixture
def rate_limits(app):
    """``rate_limits(**settings)`` installs a fresh limiter with those settings on the app for this test.

    The suite's app runs without limits (other suites send bursts); a fresh limiter also starts from empty
    in-process counts, so tests do not share windows.
    """
    def install(**changes) -> RateLimiter:
        limiter = RateLimiter(app.config["SETTINGS"].replace(rate_limit_enabled=True, **changes))
        app.extensions["ratelimit"] = limiter
        return limiter

    yield install
    app.extensions.pop("ratelimit", None)


@pytest.fixture
def channel(client, make):
    """(actor, channel_id, url of its messages) for a fresh guild owned by the actor."""
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)
    return owner, channel_id, f"/api/v10/channels/{channel_id}/messages"
