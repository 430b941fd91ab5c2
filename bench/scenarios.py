"""The workloads, each a wrk script and the parameters it reads from its environment."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.seed import SeededService

API = "/api/v10"
PAGE = 50
HOT_CONNECTIONS = 200


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
    #: Its figures compare with the serialization ceiling (it answers a page of messages) or the framework one.
    answers_a_page: bool = True

    def environment(self, seeded: SeededService) -> dict[str, str]:
        values = {"BENCH_TOKENS": seeded.tokens, **self.parameters(seeded)}
        return {name: ",".join(str(v) for v in items) for name, items in values.items()}


def _history_pages(seeded: SeededService, cursor: str, cursors: list[int]) -> dict[str, list]:
    return {"BENCH_PATHS": [f"{API}/channels/{seeded.history_channel}/messages?limit={PAGE}&{cursor}={c}"
                            for c in cursors]}


def _hot_channel(seeded: SeededService) -> dict[str, list]:
    return {"BENCH_PATHS": [f"{API}/channels/{seeded.hot_channel}/messages?limit={PAGE}"]}


SCENARIOS = [
    Scenario("latest", "latest 50 of a fresh channel", "get.lua",
             lambda s: {"BENCH_PATHS": [f"{API}/channels/{c}/messages?limit={PAGE}" for c in s.fresh_channels]}),
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
    Scenario("mixed", "90% latest 50 / 10% create", "mixed.lua", lambda s: {"BENCH_CHANNELS": s.fresh_channels}),
]
SCENARIO_NAMES = [scenario.name for scenario in SCENARIOS]
