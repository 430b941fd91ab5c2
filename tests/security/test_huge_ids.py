"""A 5,000-digit id anywhere a request carries an id is Discord's 400 50035 naming the field, never a 500.

Python refuses to turn digit strings longer than 4,300 characters into an int, and anything past 64 bits does
not fit the database, so every parser must refuse such text before converting it. Behind gunicorn the
request-line cap hides paths this long; the test client does not, so the handling is checked here in process.
The cases are derived from the routes the app serves and what they declare (app.api.routes): every id path
parameter, every declared query parameter, and every snowflake field of every request body schema.
"""
from __future__ import annotations

import base64
import re
import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from app import create_app
from app.api.routes import AUTOMATIC_METHODS, ROUTES, SNOWFLAKE
from app.api.schemas import Snowflake
from config import Settings
from tests.support.responses import error, field_error_codes, json_body

HUGE = "9" * 5000
PREFIX = "/api/v10"
THUMBS_UP = "%F0%9F%91%8D"
_PARAMETER = re.compile(r"<([a-z_]+)>")
_SNOWFLAKE_VALIDATOR = get_args(Snowflake)[1]

sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def served_rules() -> list[tuple[str, str]]:
    # An app that is never served: create_app connects to nothing until a request needs it.
    app = create_app(Settings(database_url="sqlite://", rate_limit_enabled=False))
    return sorted((method, rule.rule[len(PREFIX):]) for rule in app.url_map.iter_rules()
                  if rule.rule.startswith(PREFIX + "/") for method in rule.methods - AUTOMATIC_METHODS)


def snowflake_paths(annotation: Any, metadata: tuple = ()) -> Iterator[tuple[str | int, ...]]:
    """The keys and list indexes leading to every snowflake in a value of ``annotation``."""
    if any(item is _SNOWFLAKE_VALIDATOR for item in metadata):
        yield ()
        return
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from snowflake_paths(get_args(annotation)[0], annotation.__metadata__)
    elif origin in (Union, types.UnionType):
        for branch in get_args(annotation):
            yield from snowflake_paths(branch)
    elif origin is list:
        yield from ((0, *path) for path in snowflake_paths(get_args(annotation)[0]))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            yield from ((name, *path) for path in snowflake_paths(field.annotation, tuple(field.metadata)))


def body_with(path: tuple[str | int, ...], value: str) -> Any:
    """The smallest JSON value holding ``value`` at ``path``."""
    if not path:
        return value
    inner = body_with(path[1:], value)
    return [inner] if isinstance(path[0], int) else {path[0]: inner}


RULES = served_rules()
PATH_CASES = [pytest.param(method, rule, name, id=f"{method} {rule} {name}")
              for method, rule in RULES for name in _PARAMETER.findall(rule) if name.endswith("_id")]
QUERY_CASES = [pytest.param(spec.method, spec.rule, query.name, id=f"{spec.method} {spec.rule} ?{query.name}")
               for spec in ROUTES for query in spec.query]
BODY_CASES = [pytest.param(spec.method, spec.rule, path, id=f"{spec.method} {spec.rule} {'.'.join(map(str, path))}")
              for spec in ROUTES if spec.body is not None for path in snowflake_paths(spec.body)]


def test_the_cases_cover_what_the_routes_carry():
    assert len(PATH_CASES) >= 50 and len(QUERY_CASES) >= 10
    assert {case.values[2] for case in BODY_CASES} >= {
        ("messages", 0), ("permission_overwrites", 0, "id"), ("parent_id",), ("roles", 0),
        ("message_reference", "message_id"), ("allowed_mentions", "users", 0)}


@pytest.fixture
def ids(client, make):
    """Real ids for every path parameter, so only the huge one can be what the request is refused for."""
    owner = make.actor()
    guild_id, channel_id = make.guild(owner)
    role_id = make.role(guild_id)
    message = json_body(client.post(f"{PREFIX}/channels/{channel_id}/messages", json={"content": "keep"},
                                    headers=owner.headers), 200)
    hook = json_body(client.post(f"/api/v10/channels/{channel_id}/webhooks", json={"name": "hook"},
                                 headers=owner.headers), 200)
    return owner, {"guild_id": guild_id, "channel_id": channel_id, "message_id": message["id"], "role_id": role_id,
                   "user_id": owner.id, "overwrite_id": role_id, "emoji": THUMBS_UP,
                   "webhook_id": hook["id"], "token": hook["token"]}


def url_of(rule: str, values: dict[str, Any]) -> str:
    return PREFIX + _PARAMETER.sub(lambda match: str(values[match.group(1)]), rule)


@pytest.mark.parametrize(("method", "rule", "name"), PATH_CASES)
@sqlite_only
def test_a_huge_path_id_is_400_naming_the_parameter(client, ids, method, rule, name):
    owner, values = ids
    response = client.open(url_of(rule, {**values, name: HUGE}), method=method, json={}, headers=owner.headers)
    assert field_error_codes(response, name) == ["NUMBER_TYPE_COERCE"]
    assert len(response.get_data()) < 1000  # the value is not echoed whole


@pytest.mark.parametrize(("method", "rule", "name"), QUERY_CASES)
@sqlite_only
def test_a_huge_query_value_is_400_naming_the_parameter(client, ids, method, rule, name):
    owner, values = ids
    spec = ROUTES.get(rule, method)
    query = next(query for query in spec.query if query.name == name)
    response = client.open(url_of(rule, values), method=method, query_string={name: HUGE}, headers=owner.headers)
    codes = field_error_codes(response, name)
    if query.schema is SNOWFLAKE or query.schema.get("type") == "integer":
        assert codes == ["NUMBER_TYPE_COERCE"]
    else:
        assert codes  # a flag or a time: refused with the code of its type, at its name
    assert len(response.get_data()) < 1000


@pytest.mark.parametrize(("method", "rule", "path"), BODY_CASES)
@sqlite_only
def test_a_huge_body_id_is_400_naming_the_field(client, ids, method, rule, path):
    owner, values = ids
    response = client.open(url_of(rule, values), method=method, json=body_with(path, HUGE), headers=owner.headers)
    assert "NUMBER_TYPE_COERCE" in field_error_codes(response, *map(str, path))
    assert len(response.get_data()) < 1000


@sqlite_only
def test_a_token_naming_a_huge_id_is_401(client):
    token_id = base64.urlsafe_b64encode(HUGE.encode()).decode().rstrip("=")
    error(client.get(f"{PREFIX}/users/@me", headers={"Authorization": f"Bot {token_id}.secret"}), 401, 0)
