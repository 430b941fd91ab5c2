"""The workloads, each a wrk script and the parameters it reads from its environment."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.seed import SeededService

API = "/api/v10"
PAGE = 50
HOT_CONNECTIONS = 200
#: The settings of the server most scenarios run on (the run's own besides).
DEFAULT_SERVER_SETTINGS = {"COALESCE_READS": "true"}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    script: str
    parameters: Callable[[SeededService], dict[str, list]]
    #: None: the run's --connections
    connections: int | None = None
    #: Runs on a server started with COALESCE_READS off.
    coalescing: bool = True
    #: Settings of the server it runs on beyond the run's (scenarios with the same share a server).
    server: tuple[tuple[str, str], ...] = ()
    #: Its figures compare with the serialization ceiling (it answers a page of messages) or the framework one.
    answers_a_page: bool = True

    def server_settings(self) -> dict[str, str]:
        return {**DEFAULT_SERVER_SETTINGS, "COALESCE_READS": str(self.coalescing).lower(), **dict(self.server)}

    def environment(self, seeded: SeededService) -> dict[str, str]:
        values = {"BENCH_TOKENS": seeded.tokens, **self.parameters(seeded)}
        return {name: ",".join(str(v) for v in items) for name, items in values.items()}


def _history_pages(seeded: SeededService, cursor: str, cursors: list[int]) -> dict[str, list]:
    return {"BENCH_PATHS": [f"{API}/channels/{seeded.history_channel}/messages?limit={PAGE}&{cursor}={c}"
                            for c in cursors]}


def _hot_channel(seeded: SeededService) -> dict[str, list]:
    return {"BENCH_PATHS": [f"{API}/channels/{seeded.hot_channel}/messages?limit={PAGE}"]}


def _latest_pages(seeded: SeededService) -> dict[str, list]:
    return {"BENCH_PATHS": [f"{API}/channels/{c}/messages?limit={PAGE}" for c in seeded.fresh_channels]}


#: Limits so high that the load is counted, never refused: what counting costs. The storage is the default, the
#: host's table shared by the workers.
_LIMITS_COUNTED = (("RATE_LIMIT_ENABLED", "true"), ("RATE_LIMIT_GLOBAL_PER_SECOND", "100000000"),
                   ("RATE_LIMIT_DEFAULT", "100000000/1"), ("RATE_LIMIT_MESSAGE_CREATE", "100000000/1"),
                   ("RATE_LIMIT_INVALID", "100000000/1"), ("RATE_LIMIT_INVALID_BURST", "100000000/1"))

SCENARIOS = [
    Scenario("latest", "latest 50 of a fresh channel", "get.lua", _latest_pages),
    # No page kept, none coalesced: every request reads the store, as a ScyllaDB deployment does for any page not
    # in a worker's memory (tokens and permissions stay cached).
    Scenario("uncached", "latest 50 of a fresh channel, no page kept", "get.lua", _latest_pages, coalescing=False,
             server=(("READ_CACHE_PAGES", "0"),)),
    Scenario("latest-limited", "latest 50 of a fresh channel, rate limits counted (shared)", "get.lua",
             _latest_pages, server=_LIMITS_COUNTED),
    Scenario("deep", "50 before a cursor 3 years back", "get.lua",
             lambda s: _history_pages(s, "before", s.deep_cursors)),
    Scenario("around", "50 around a cursor 2 years back", "get.lua",
             lambda s: _history_pages(s, "around", s.around_cursors)),
    Scenario("hot", f"hot channel, {HOT_CONNECTIONS} connections", "get.lua", _hot_channel,
             connections=HOT_CONNECTIONS),
    Scenario("hot-uncoalesced", f"hot channel, {HOT_CONNECTIONS} connections, coalescing off", "get.lua",
             _hot_channel, connections=HOT_CONNECTIONS, coalescing=False),
    Scenario("reaction", "add a reaction", "react.lua", lambda s: {"BENCH_MESSAGES": s.reaction_targets},
             answers_a_page=False),
    Scenario("create", "create a message", "create.lua", lambda s: {"BENCH_CHANNELS": s.fresh_channels},
             answers_a_page=False),
    # The create scenario's load with every connection posting into one channel: its writes meet on the channel's
    # row (last_message_id, messages_version), which spreading them over 64 channels never shows.
    Scenario("hot-write", "create a message, all into one channel", "create.lua",
             lambda s: {"BENCH_CHANNELS": [s.hot_write_channel]}, answers_a_page=False),
    Scenario("mixed", "90% latest 50 / 10% create", "mixed.lua", lambda s: {"BENCH_CHANNELS": s.fresh_channels}),
]
SCENARIO_NAMES = [scenario.name for scenario in SCENARIOS]
