"""Where the gateway is: GET /gateway and GET /gateway/bot (Discord's "Get Gateway" and "Get Gateway Bot")."""
from __future__ import annotations

import math
from datetime import datetime, timezone

from flask import request
from sqlalchemy import func, select

from app.api import current_user, db, resources, route
from app.api.json import json_response
from app.api.routes import OWN_BUCKET, ok
from app.gateway import gateway_url
from app.gateway.store import START_LIMIT_WINDOW, identify_counts
from models import Member

#: Discord recommends a shard per 1,000 guilds.
GUILDS_PER_SHARD = 1000


@route("/gateway", "GET", summary="Get the gateway's URL", responses=ok(None), rate_limit=OWN_BUCKET, public=True)
def get_gateway():
    return json_response({"url": gateway_url(request.host_url)})


@route("/gateway/bot", "GET", summary="Get the gateway's URL, the recommended shard count and the session start "
       "limit", responses=ok(None), rate_limit=OWN_BUCKET, public=False)
def get_gateway_bot():
    settings = resources().settings
    user = current_user()
    guilds = db().scalar(select(func.count()).select_from(Member).where(Member.user_id == user.id)) or 0
    used, oldest = identify_counts(db().connection(), user.id)
    reset_after = 0
    if oldest is not None:
        reset_after = max(0, int((oldest + START_LIMIT_WINDOW - datetime.now(timezone.utc)).total_seconds() * 1000))
    return json_response({
        "url": gateway_url(request.host_url),
        "shards": max(1, math.ceil(guilds / GUILDS_PER_SHARD)),
        "session_start_limit": {"total": settings.gateway_session_start_limit,
                                "remaining": max(0, settings.gateway_session_start_limit - used),
                                "reset_after": reset_after, "max_concurrency": settings.gateway_max_concurrency},
    })
