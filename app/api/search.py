"""Discord's message search: ``GET /guilds/{guild.id}/messages/search``
(https://discord.com/developers/docs/resources/message#search-guild-messages).

The query's parameters are parsed here, in Discord's forms (repeated keys for lists, ``-`` for negated
``author_type`` and ``has``), and refused with 400 50035 at their path, a list's item at its index. Discord's
parameters this service does not implement (embed, link and attachment details, nsfw, slop, commands) are
refused too rather than ignored: a filter dropped silently would answer a question that was not asked.
"""
from __future__ import annotations

from flask import request

from app.api import (
    attachment_links,
    current_user,
    db,
    query_bool,
    query_int,
    query_text,
    read_path,
    resources,
    route,
    snowflake_field,
)
from app.api.json import json_response
from app.api.routes import OWN_BUCKET, Query, boolean_query, snowflake_query
from app.errors import InvalidForm
from app.search.base import HAS_NAMES, TOTAL_LIMIT, AuthorType, Has, SearchQuery, SortBy
from app.search.text import parse_query
from app.services.messages import MessageLookup
from app.services.search import SearchService
from app.services.wire import message_json, thread_json, thread_member_json

MAX_CONTENT_LENGTH = 1024
MAX_LIMIT = 25
#: 9,975, as on Discord: the last page ends where ``total_results`` stops counting.
MAX_OFFSET = TOTAL_LIMIT - MAX_LIMIT
#: Values one repeatable parameter may have: more is a client's mistake, and each costs the engine.
MAX_VALUES = 100
AUTHOR_TYPES = {"user": AuthorType.USER, "bot": AuthorType.BOT, "webhook": AuthorType.WEBHOOK}
UNSUPPORTED = ("embed_type", "embed_provider", "link_hostname", "attachment_filename", "attachment_extension",
               "include_nsfw", "slop", "command_id", "command_name", "cursor")


def _values(name: str) -> list[str]:
    values = request.args.getlist(name)
    if len(values) > MAX_VALUES:
        raise InvalidForm.field(name, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_VALUES} or fewer in length.")
    return values


def _snowflakes(name: str) -> frozenset[int]:
    values = _values(name)
    parsed = []
    for index, value in enumerate(values):
        try:
            parsed.append(snowflake_field(name, value))
        except InvalidForm:
            raise InvalidForm.field((name, str(index)) if len(values) > 1 else name, "NUMBER_TYPE_COERCE",
                                    f'Value "{value[:64]}" is not snowflake.') from None
    return frozenset(parsed)


def _choices(name: str, allowed: list[str]) -> list[tuple[bool, str]]:
    """(negated, value) pairs of a parameter whose values may be prefixed with ``-``."""
    chosen = []
    values = _values(name)
    for index, value in enumerate(values):
        negated, bare = value.startswith("-"), value.removeprefix("-")
        if bare not in allowed:
            raise InvalidForm.field((name, str(index)) if len(values) > 1 else name, "BASE_TYPE_CHOICES",
                                    f"Value must be one of {tuple(allowed + ['-' + a for a in allowed])}.")
        chosen.append((negated, bare))
    return chosen


def _one_of(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.args.get(name, default)
    if value not in allowed:
        raise InvalidForm.field(name, "BASE_TYPE_CHOICES", f"Value must be one of {allowed}.")
    return value


def _optional_bool(name: str) -> bool | None:
    return None if request.args.get(name) is None else query_bool(name)


def parse_search(guild_id: int) -> tuple[SearchQuery, frozenset[int]]:
    """The query the request asks, and the channels it names."""
    for name in UNSUPPORTED:
        if name in request.args:
            raise InvalidForm.field(name, "SEARCH_PARAMETER_UNSUPPORTED",
                                    f"Searching by {name} is not supported by this server.")
    content = query_text("content", MAX_CONTENT_LENGTH)
    author_types = _choices("author_type", list(AUTHOR_TYPES))
    has = _choices("has", list(HAS_NAMES))
    min_id = request.args.get("min_id")
    max_id = request.args.get("max_id")
    query = SearchQuery(
        guild_id=guild_id,
        content=parse_query(content) if content is not None and content.strip() else None,
        author_ids=_snowflakes("author_id"),
        author_types=frozenset(AUTHOR_TYPES[v] for negated, v in author_types if not negated),
        excluded_author_types=frozenset(AUTHOR_TYPES[v] for negated, v in author_types if negated),
        mentions=_snowflakes("mentions"),
        mention_everyone=_optional_bool("mention_everyone"),
        has=_flags(v for negated, v in has if not negated),
        has_not=_flags(v for negated, v in has if negated),
        pinned=_optional_bool("pinned"),
        min_id=None if min_id is None else snowflake_field("min_id", min_id),
        max_id=None if max_id is None else snowflake_field("max_id", max_id),
        sort_by=SortBy(_one_of("sort_by", ("timestamp", "relevance"), "timestamp")),
        descending=_one_of("sort_order", ("asc", "desc"), "desc") == "desc",
        offset=query_int("offset", 0, 0, MAX_OFFSET),
        limit=query_int("limit", MAX_LIMIT, 1, MAX_LIMIT),
    )
    return query, _snowflakes("channel_id")


def _flags(names) -> Has:
    flags = Has(0)
    for name in names:
        flags |= HAS_NAMES[name]
    return flags


def _choice_query(name: str, values: list[str], description: str) -> Query:
    return Query(name, {"type": "array", "items": {"type": "string", "enum": values}}, description)


@route("/guilds/<guild_id>/messages/search", "GET", summary="Search a guild's messages", responses={
    200: "SearchResults", 202: "SearchIndexNotReady"},
    query=(Query("content", {"type": "string", "maxLength": MAX_CONTENT_LENGTH},
                 'Words (all must match), "quoted phrases", -excluded words'),
           Query("author_id", {"type": "array", "items": snowflake_query("author_id").schema}),
           _choice_query("author_type", [*AUTHOR_TYPES, *("-" + a for a in AUTHOR_TYPES)], "Repeatable"),
           Query("mentions", {"type": "array", "items": snowflake_query("mentions").schema}),
           boolean_query("mention_everyone"),
           _choice_query("has", [*HAS_NAMES, *("-" + h for h in HAS_NAMES)], "Repeatable; all must hold"),
           boolean_query("pinned"),
           Query("channel_id", {"type": "array", "items": snowflake_query("channel_id").schema}),
           snowflake_query("min_id"), snowflake_query("max_id"),
           Query("sort_by", {"type": "string", "enum": ["timestamp", "relevance"], "default": "timestamp"}),
           Query("sort_order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
           Query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
           Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": MAX_LIMIT})),
    rate_limit=OWN_BUCKET, public=False)
def search_guild_messages(guild_id: int):
    res = resources()
    if not res.settings.search_enabled:
        return json_response({"message": "404: Not Found", "code": 0}, 404)
    query, channels = parse_search(guild_id)
    service = SearchService(MessageLookup(db(), res.message_store, read_path(), attachment_links()), res.search_engine)
    page = service.search(current_user(), query, channels)
    return json_response({
        "total_results": page.total,
        "messages": [[message_json(message, bundle)] for message, bundle in page.hits],
        "threads": [thread_json(channel, thread, when) for channel, thread, when in page.threads],
        "members": [thread_member_json(row) for row in page.members], "doing_deep_historical_index": False,
    })
