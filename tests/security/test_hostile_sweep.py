"""A property-based sweep of every route with hostile values in its path, query and body, on SQLite and
PostgreSQL: no answer is a 5xx, and every answer has the API's form (JSON with a code for an error; a 204 with no
body and no Content-Type).

Hostile: integers at and beyond every width a column or a client has (32, 53, 63, 64 bits, negative, huge),
"@me" and other non-ids where ids go, unicode digits and lookalikes, empty and long strings, NUL, floats, booleans,
nulls, and objects and arrays nested a few levels (deep nesting is the body limits' business), in the fields each
route's schema names as well as random ones. Path ids are real ids of a guild the caller owns as often as hostile
ones, so that requests get past the access checks and reach validation, the services and the database.

Derandomized (the same cases every run) and bounded: EXAMPLES per route and backend. The count of cases run and
their time are printed at the end (pytest -s); docs/measurements.md records them.
"""
from __future__ import annotations

import json
import re
import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.api import channels, guilds, messages, users  # noqa: F401  (their routes fill ROUTES)
from app.api.routes import ROUTES
from tests.support.responses import json_body

pytestmark = pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
#: Cases per route and backend: about 3,000 in all, within the suite's budget for this sweep (docs/measurements.md).
EXAMPLES = 35
PATH_PARAMETER = re.compile(r"<([a-z_]+)>")
SWEPT = sorted(ROUTES, key=lambda spec: (spec.rule, spec.method))
CASES: list[str] = []
STARTED: list[float] = []

HUGE_INTEGERS = [2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, 10**400,
                 -1, -2**31, -2**63, -2**64, 0]
HOSTILE_STRINGS = ["", " ", "@me", "@everyone", "--5", "-0", "+1", "0x10", "1e3", "١٢٣", "１２", "NaN", "Infinity",
                   "null", "true", "9" * 25, "\u202e", "\u200b", "😀" * 30, "a" * 4100, "%ZZ", "%00", "<@&1>", "<@!1>",
                   "<#1>", "<:x:99999999999999999999>", "javascript:alert(1)", "\x00", "\ud800", "𝟙𝟚",
                   str(2**63), str(2**64), "-1", "1.5", "true", "[]", "{}"]
SEGMENTS = HOSTILE_STRINGS[:36] + ["..", ".", "%2F", "🔥", "x:1", "a:x:1", "x:" + str(2**63), "%F0%9F%94%A5"]

scalars = st.one_of(st.sampled_from(HUGE_INTEGERS), st.integers(), st.sampled_from(HOSTILE_STRINGS),
                    st.text(max_size=40), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.none())


def json_values(field_names: list[str]):
    keys = st.one_of(st.sampled_from(field_names or ["id"]), st.text(max_size=12))
    return st.recursive(scalars, lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)), max_leaves=12)


def body_strategy(spec):
    """A JSON object over the route's fields (or random keys), sometimes no object at all."""
    names = list(spec.body.model_fields) if spec.body is not None else []
    values = json_values(names + ["id", "type", "name"])
    objects = st.dictionaries(st.one_of(st.sampled_from(names or ["id"]), st.text(max_size=12)), values,
                              max_size=max(len(names), 3))
    return st.one_of(objects, objects, objects, values)


@pytest.fixture
def world(client, make):
    """A guild the caller owns, with a second member, a role, a channel, a category and a message with a
    reaction: the real ids that path segments take half of the time."""
    owner, member = make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    role_id = make.role(guild_id)
    make.member(guild_id, member, roles=[role_id])
    sent = json_body(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "sweep"},
                                 headers=owner.headers), 200)
    client.put(f"/api/v10/channels/{channel_id}/messages/{sent['id']}/reactions/%F0%9F%94%A5/@me",
               headers=owner.headers)
    real = {"guild_id": [guild_id], "channel_id": [channel_id], "role_id": [role_id, guild_id],
            "user_id": [member.id, owner.id], "message_id": [sent["id"]], "overwrite_id": [role_id, member.id],
            "emoji": ["%F0%9F%94%A5", "x:1"]}
    return owner, real


@pytest.fixture(scope="module", autouse=True)
def report_sweep():
    STARTED.append(time.monotonic())
    yield
    print(f"\nhostile sweep: {len(CASES)} cases over {len(SWEPT)} routes in {time.monotonic() - STARTED[0]:.1f}s")


def check(response, case: str) -> None:
    assert response.status_code < 500, (case, response.status_code, response.get_data(as_text=True)[:500])
    if response.status_code == 204:
        assert response.get_data() == b"" and "Content-Type" not in response.headers, case
        return
    assert response.headers["Content-Type"] == "application/json", case
    body = response.get_json()
    if response.status_code >= 400:
        assert isinstance(body.get("code"), int) and isinstance(body.get("message"), str), (case, body)


@pytest.mark.parametrize("spec", SWEPT, ids=lambda spec: f"{spec.method} {spec.rule}")
def test_no_hostile_request_answers_5xx(client, world, spec):
    owner, real = world
    names = PATH_PARAMETER.findall(spec.rule)
    segments = st.fixed_dictionaries({name: st.one_of(
        st.sampled_from(real.get(name, ["1"])).map(str),
        st.one_of(st.sampled_from(SEGMENTS), st.integers().map(str), st.text(min_size=1, max_size=20))
        .map(lambda text: quote(text, safe="", errors="surrogatepass"))) for name in names})
    query_names = [query.name for query in spec.query] + ["limit", "before", "after", "around"]
    queries = st.dictionaries(st.sampled_from(query_names), st.one_of(
        st.sampled_from(HOSTILE_STRINGS[:36]), st.integers().map(str), st.text(max_size=20)), max_size=3)
    bodies = st.one_of(st.none(), body_strategy(spec)) if spec.body is None else body_strategy(spec)

    @given(path=segments, query=queries, body=bodies)
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def sweep(path, query, body):
        url = "/api/v10" + PATH_PARAMETER.sub(lambda match: path[match.group(1)], spec.rule)
        case = f"{spec.method} {url} query={query!r} body={body!r}"[:2000]
        CASES.append(case)
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        # Encoded here: a lone surrogate becomes the bytes a client would send (not UTF-8), which werkzeug's own
        # encoding refuses to write.
        query_string = "&".join(f"{name}={quote(value, safe='', errors='surrogatepass')}"
                                for name, value in query.items())
        response = client.open(url, method=spec.method, query_string=query_string, data=data,
                               headers={**owner.headers, "Content-Type": "application/json"})
        check(response, case)

    sweep()
