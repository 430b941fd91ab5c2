"""What the discord.py scenario scripts (tests/e2e/discord_*_scenario.py) share, imported by them as a sibling
module: each runs as a plain Python process (asyncio with aiohttp is not reliable under the test process's gevent
patch), reads its configuration as JSON on stdin, and prints one JSON report of what the client observed."""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable

import discord
from discord.http import Route

Scenario = Callable[[dict, dict], Awaitable[None]]


async def login(token: str) -> discord.Client:
    """A client logged in over HTTP only (GET /users/@me, then GET /oauth2/applications/@me)."""
    client = discord.Client(intents=discord.Intents.none())
    await client.login(token)
    return client


def run(scenario: Scenario) -> int:
    """Run ``scenario(config, report)`` against ``config["base_url"]`` within ``config["timeout"]`` seconds; print
    the report and return 0, or on any failure print the report so far with an ``error`` (the traceback) and
    return 1."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = json.load(sys.stdin)
    # Route.BASE is read whenever a Route is built (discord.py's webhook module builds its requests with it too):
    # set before the first request.
    Route.BASE = f"{config['base_url']}/api/v10"
    report: dict = {}
    try:
        asyncio.run(asyncio.wait_for(scenario(config, report), timeout=config["timeout"]))
    except Exception:  # every failure, a timeout included, is reported with what was observed so far
        report["error"] = traceback.format_exc()
        print(json.dumps(report))
        return 1
    print(json.dumps(report))
    return 0
