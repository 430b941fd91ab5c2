"""What each route declares about itself: OpenAPI entry, rate-limit bucket, whether it needs a token.

Routes declare this with ``app.api.route(...)``; the specs are kept here keyed by (rule, method), the rule as
the blueprint declares it (without the /api/vN prefix). The auth hook, app.ratelimit and app.api.openapi read
them from here, so renaming a view function changes none of them.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.api.bodies import DEFAULT_JSON_LIMIT
from app.ratelimit import OWN_BUCKET, SHARED_BUCKETS

SNOWFLAKE = {"type": "string", "pattern": "^[0-9]{1,20}$", "description": "A snowflake id, as a decimal string."}
TIMESTAMP = {"type": "string", "format": "date-time"}
#: Methods Flask adds to a rule by itself; a request with one of them takes the spec of the rule it matched.
AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Query:
    """A query parameter, for the OpenAPI document (the handler parses it)."""

    name: str
    schema: dict[str, Any]
    description: str = ""


def limit_query(default: int, maximum: int) -> Query:
    return Query("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default})


def snowflake_query(name: str) -> Query:
    return Query(name, SNOWFLAKE)


def boolean_query(name: str) -> Query:
    """A flag as app.api.query_bool reads it."""
    return Query(name, {"type": "string", "enum": ["true", "True", "1", "false", "False", "0"]})


def ok(schema: str | None, status: int = 200) -> dict[int, str | None]:
    """A success response: status -> a response schema name of app.api.openapi, None for any object."""
    return {status: schema}


NO_CONTENT: Mapping[int, str | None] = {204: None}


@dataclass(frozen=True)
class RouteSpec:
    rule: str
    method: str
    #: The view function's name: the OpenAPI operationId, and the name of an OWN_BUCKET rate-limit bucket.
    endpoint: str
    summary: str
    #: Status -> response schema name, or None for an empty body (204) or any object.
    responses: Mapping[int, str | None]
    #: A bucket name of app.ratelimit.SHARED_BUCKETS, or OWN_BUCKET for a bucket of the route's own.
    rate_limit: str
    #: Reachable without a token.
    public: bool
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    #: The success body is an array of the response schema.
    list_of: bool = False
    #: The largest JSON (or form) body the route reads, in bytes (app.api.bodies).
    json_limit: int = DEFAULT_JSON_LIMIT
    #: The route takes files in a multipart body, up to the MAX_UPLOAD_BYTES setting.
    accepts_files: bool = False


class RouteRegistry:
    """Route specs keyed by (rule, method)."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], RouteSpec] = {}

    def add(self, spec: RouteSpec) -> None:
        """Keep a route's spec; a second route on the same rule and method, or an unknown bucket, is refused."""
        key = (spec.rule, spec.method)
        if key in self._specs:
            raise ValueError(f"{spec.method} {spec.rule} is declared twice ({self._specs[key].endpoint}, "
                             f"{spec.endpoint})")
        if spec.rate_limit != OWN_BUCKET and spec.rate_limit not in SHARED_BUCKETS:
            raise ValueError(f"{spec.endpoint}: unknown rate limit bucket {spec.rate_limit!r}")
        self._specs[key] = spec

    def get(self, rule: str, method: str) -> RouteSpec | None:
        return self._specs.get((rule, method))

    def of_rule(self, rule: str, methods: Iterable[str]) -> RouteSpec | None:
        """The spec of a URL rule as Flask holds it: its methods include the ones Flask added."""
        declared = set(methods) - AUTOMATIC_METHODS
        return self.get(rule, declared.pop()) if len(declared) == 1 else None

    def __iter__(self) -> Iterator[RouteSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)


#: Every route of the API blueprint.
ROUTES = RouteRegistry()
