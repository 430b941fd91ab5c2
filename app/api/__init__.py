"""The HTTP API: one blueprint served under /api/v10 and /api/v9.

Handlers parse the request, call a service with the authenticated user, and serialize. Each is declared with
``route(...)``, which also states what the auth hook, the rate limits and the OpenAPI document need to know of
it (app.api.routes). Helpers here do the parsing the Discord way: path and query ids as snowflakes (400 50035
NUMBER_TYPE_COERCE otherwise), bodies as JSON, form or multipart ``payload_json``, validation errors as
Discord's nested ``errors`` object.
"""
from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from flask import Blueprint, current_app, g, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.utils import get_current_url

from app import ratelimit
from app.api.bodies import DEFAULT_JSON_LIMIT, limit_body, refuse_before_parsing, reject_unstorable
from app.api.routes import ROUTES, Query, RouteSpec
from app.api.uploads import close_uploads, read_multipart
from app.auth.tokens import authenticate
from app.blobs.links import AttachmentLinks
from app.errors import InvalidForm, InvalidJSON
from app.ids import InvalidSnowflake, parse_snowflake

api = Blueprint("api", __name__)
#: Where the blueprint is mounted, by the name of each registration.
VERSION_PREFIXES = {"api": "/api/v10", "api_v9": "/api/v9"}
SchemaT = TypeVar("SchemaT", bound=BaseModel)


def resources():
    return current_app.extensions["chatstore"]


def db():
    """The request's SQLAlchemy session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = resources().session()
    return g.db_session


def read_path():
    """The request's read path through the worker's read cache (app.read_cache), made on first use; a route with
    a channel has that channel's messages version read with the metadata version, in one query."""
    if "read_path" not in g:
        channel = (request.view_args or {}).get("channel_id")
        try:
            channel_id = None if channel is None else parse_snowflake(channel)
        except InvalidSnowflake:
            channel_id = None  # the route answers 400 for it
        g.read_path = resources().read_cache.for_request(db(), channel_id)
    return g.read_path


def attachment_links() -> AttachmentLinks:
    """Signs attachment links under PUBLIC_BASE_URL, or the host this request came to."""
    res = resources()
    # What request.host_url is made of, taken now (cheap) and put together only if a link is signed; not the request
    # itself, which a kept page's bundle would hold alive long after it ended.
    scheme, host = request.scheme, request.host
    return AttachmentLinks(lambda: res.attachment_signing_key, res.settings.attachment_url_ttl_seconds,
                           lambda: res.settings.public_base_url or get_current_url(scheme, host))


def current_user():
    return g.user


def current_route() -> RouteSpec | None:
    """The spec of the route the request matched; None when it matched none (404, 405)."""
    rule = request.url_rule
    if rule is None or request.blueprint not in VERSION_PREFIXES:
        return None
    return ROUTES.of_rule(rule.rule.removeprefix(VERSION_PREFIXES[request.blueprint]), rule.methods)


@api.before_request
def _refuse_blocked_addresses():
    # First: an address over its limit of invalid requests costs nothing more, not even a token lookup.
    return ratelimit.refuse_blocked_address()


@api.before_request
def _limit_body() -> None:
    matched = current_route()
    if matched is None:
        limit_body(DEFAULT_JSON_LIMIT, upload_limit=None)
    else:
        limit_body(matched.json_limit,
                   upload_limit=resources().settings.max_upload_bytes if matched.accepts_files else None)


@api.before_request
def _authenticate() -> None:
    matched = current_route()
    if matched is not None and matched.public:
        return
    session = db()
    g.user = authenticate(session, request.headers.get("Authorization"), read_path())
    # Ends whatever the lookup left open; a commit with nothing open would still begin and end a session
    # transaction, a tenth of a kept page's cost.
    if session.in_transaction():
        session.commit()


@api.before_request
def _enforce_rate_limits():
    # After _authenticate (a blueprint's hooks run in the order registered), so that limits count per user.
    return ratelimit.enforce_rate_limits(current_route())


api.after_request(ratelimit.add_rate_limit_headers)
api.after_request(ratelimit.count_invalid_request)


def route(rule: str, method: str, *, summary: str, responses: Mapping[int, str | None], rate_limit: str,
          public: bool, body: type[BaseModel] | None = None, query: tuple[Query, ...] = (),
          list_of: bool = False, json_limit: int = DEFAULT_JSON_LIMIT, accepts_files: bool = False):
    """Register a view for one method, with what the rest of the app needs to know of it (app.api.routes):
    its OpenAPI ``summary``, success ``responses`` (helpers ``ok`` and ``NO_CONTENT``), request ``body``
    schema, ``query`` parameters and whether the success body is a list (``list_of``); its ``rate_limit``
    bucket (a name of app.ratelimit.SHARED_BUCKETS, or OWN_BUCKET); whether it is ``public`` (no token); the
    largest JSON body it reads (``json_limit``) and whether it takes files in a multipart body (``accepts_files``;
    app.api.bodies).

    Path arguments named ``*_id`` arrive parsed as snowflakes; anything else there, ``@me`` included, is Discord's
    400 50035 NUMBER_TYPE_COERCE (routes that take ``@me`` spell it in their rule, as ``/users/@me`` does).
    """
    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def parsed(**kwargs: Any):
            for name, value in kwargs.items():
                if name.endswith("_id"):
                    kwargs[name] = snowflake_field(name, value)
            return view(**kwargs)

        ROUTES.add(RouteSpec(rule=rule, method=method, endpoint=view.__name__, summary=summary,
                             responses=responses, rate_limit=rate_limit, public=public, body=body, query=query,
                             list_of=list_of, json_limit=json_limit, accepts_files=accepts_files))
        api.add_url_rule(rule, endpoint=view.__name__, view_func=parsed, methods=[method])
        return parsed
    return decorator


def snowflake_field(name: str, value: Any) -> int:
    """A path or query value as a snowflake; Discord's 400 50035 NUMBER_TYPE_COERCE naming the field if not."""
    try:
        return parse_snowflake(value)
    except InvalidSnowflake:
        raise InvalidForm.field(name, "NUMBER_TYPE_COERCE", f'Value "{_shown(value)}" is not snowflake.') from None


def query_snowflake(name: str) -> int | None:
    value = request.args.get(name)
    return None if value is None else snowflake_field(name, value)


#: A query integer as Discord takes it: an optional minus and ASCII digits, short enough to be no work to parse.
_INTEGER = re.compile(r"-?[0-9]{1,12}")


def query_int(name: str, default: int, minimum: int, maximum: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value):
        raise InvalidForm.field(name, "NUMBER_TYPE_COERCE", f'Value "{value[:64]}" is not int.')
    number = int(value)
    if number < minimum:
        raise InvalidForm.field(name, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {minimum}.")
    if number > maximum:
        raise InvalidForm.field(name, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {maximum}.")
    return number


def query_text(name: str, max_length: int) -> str | None:
    """A free-text query parameter, or None: at most ``max_length`` characters and no NUL, which PostgreSQL text
    cannot hold (the typed parameters refuse it as what they are not)."""
    value = request.args.get(name)
    if value is None:
        return None
    if len(value) > max_length:
        raise InvalidForm.field(name, "BASE_TYPE_MAX_LENGTH", f"Must be {max_length} or fewer in length.")
    if "\x00" in value:
        raise InvalidForm.field(name, "STRING_TYPE_INVALID_CHARACTERS", "Must not contain NUL characters.")
    return value


def query_bool(name: str, default: bool = False) -> bool:
    value = request.args.get(name)
    if value is None:
        return default
    if value in ("true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise InvalidForm.field(name, "BOOLEAN_TYPE_COERCE", f'Value "{value[:64]}" is not a boolean.')


#: The header by which a client gives the reason of a write, for the guild's audit log (URL-encoded UTF-8).
AUDIT_LOG_REASON_HEADER = "X-Audit-Log-Reason"
MAX_AUDIT_LOG_REASON = 512


def audit_reason() -> str | None:
    """The request's ``X-Audit-Log-Reason``, decoded, or None. Longer than 512 characters, or not UTF-8 once
    decoded, is 400 naming the header: a reason is stored as given or refused, never cut."""
    raw = request.headers.get(AUDIT_LOG_REASON_HEADER)
    if raw is None or raw == "":
        return None
    try:
        # A header's bytes arrive as latin-1 (WSGI): back to bytes, percent-decoded, then strictly UTF-8, so raw
        # UTF-8 is read as UTF-8 and bytes that are not UTF-8 are refused rather than stored garbled.
        reason = urllib.parse.unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        raise InvalidForm.field(AUDIT_LOG_REASON_HEADER, "BASE_TYPE_BAD", "The reason is not URL-encoded UTF-8.") \
            from None
    if any(ord(character) < 32 and character not in "\t\n" for character in reason):
        raise InvalidForm.field(AUDIT_LOG_REASON_HEADER, "STRING_TYPE_INVALID_CHARACTERS",
                                "Must not contain control characters.")
    if len(reason) > MAX_AUDIT_LOG_REASON:
        raise InvalidForm.field(AUDIT_LOG_REASON_HEADER, "BASE_TYPE_MAX_LENGTH",
                                f"Must be {MAX_AUDIT_LOG_REASON} or fewer in length.")
    return reason


def request_json() -> Any:
    """The request body as data: JSON, url-encoded form, or multipart with a ``payload_json`` part."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        route = current_route()
        fields = read_multipart(takes_files=route is not None and route.accepts_files).fields
        payload = fields.get("payload_json")
        return _loads(payload) if payload is not None else fields
    if mimetype == "application/x-www-form-urlencoded":
        return _urlencoded_form(request.get_data(cache=True))
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    if mimetype not in ("application/json", ""):
        raise InvalidForm(errors={"_errors": [{
            "code": "CONTENT_TYPE_INVALID", "message": 'Expected "Content-Type" header to be one of '
                                                       '{"application/json", "application/x-www-form-urlencoded", '
                                                       '"multipart/form-data"}.'}]})
    return _loads(raw)


#: A ``%`` not followed by two hex digits: werkzeug (and the standard library) keep such text as it is.
_BAD_PERCENT_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _urlencoded_form(raw: bytes) -> dict[str, str]:
    """A url-encoded body as a dict, the first value of a repeated key winning (as werkzeug's ``to_dict``).

    Parsed here rather than by werkzeug, which stores an invalid percent-escape (``%ZZ``) literally and replaces
    bytes that are not UTF-8: both are refused instead (400 50035), so what is stored is what the client meant.
    """
    if _BAD_PERCENT_ESCAPE.search(raw):
        raise InvalidForm(errors={"_errors": [{
            "code": "FORM_ENCODING_INVALID", "message": "The form body has a % not followed by two hex digits."}]})
    try:
        pairs = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True, errors="strict",
                                       max_num_fields=request.max_form_parts)
    except UnicodeDecodeError:
        raise InvalidForm(errors={"_errors": [{
            "code": "FORM_ENCODING_INVALID", "message": "The form body is not UTF-8."}]}) from None
    except ValueError:  # more fields than max_form_parts: werkzeug's own answer to that
        raise RequestEntityTooLarge() from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _loads(raw: bytes | str) -> Any:
    refuse_before_parsing(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON() from exc


def parse_body(schema: type[SchemaT]) -> SchemaT:
    data = request_json()
    reject_unstorable(data)
    if not isinstance(data, dict):
        raise InvalidForm(errors={"_errors": [{
            "code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used in a DictType"}]})
    refuse_unsupported(schema, data)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidForm(errors=form_errors(exc)) from None


def refuse_unsupported(schema: type[BaseModel], data: dict[str, Any]) -> None:
    """400 naming each field Discord documents for this body that the service does not implement (see
    app.api.schemas); null or an empty list or object counts as absent, as it asks for nothing."""
    given = sorted(name for name in getattr(schema, "unsupported", ()) if data.get(name) not in (None, [], {}))
    if given:
        raise InvalidForm(errors={name: {"_errors": [{
            "code": "UNSUPPORTED_FIELD", "message": "This service does not implement this field."}]}
            for name in given})


_ERROR_CODES = {
    "missing": ("BASE_TYPE_REQUIRED", lambda e: "This field is required"),
    "string_too_long": ("BASE_TYPE_MAX_LENGTH", lambda e: f"Must be {e['ctx']['max_length']} or fewer in length."),
    "string_too_short": ("BASE_TYPE_MIN_LENGTH", lambda e: f"Must be {e['ctx']['min_length']} or more in length."),
    "too_long": ("BASE_TYPE_MAX_LENGTH", lambda e: f"Must be {e['ctx']['max_length']} or fewer in length."),
    "too_short": ("BASE_TYPE_MIN_LENGTH", lambda e: f"Must be {e['ctx']['min_length']} or more in length."),
    "literal_error": ("BASE_TYPE_CHOICES", lambda e: f"Value must be one of {e['ctx']['expected']}."),
    "snowflake": ("NUMBER_TYPE_COERCE", lambda e: f'Value "{_shown(e["input"])}" is not snowflake.'),
    "int_parsing": ("NUMBER_TYPE_COERCE", lambda e: f'Value "{_shown(e["input"])}" is not int.'),
    "int_type": ("NUMBER_TYPE_COERCE", lambda e: f'Value "{_shown(e["input"])}" is not int.'),
    "int_from_float": ("NUMBER_TYPE_COERCE", lambda e: f'Value "{_shown(e["input"])}" is not int.'),
    # orjson reads integers beyond 64 bits as floats, which pydantic then finds too large.
    "int_parsing_size": ("NUMBER_TYPE_COERCE", lambda e: f'Value "{_shown(e["input"])}" is not int.'),
    "greater_than_equal": ("NUMBER_TYPE_MIN",
                           lambda e: f"int value should be greater than or equal to {e['ctx']['ge']}."),
    "less_than_equal": ("NUMBER_TYPE_MAX", lambda e: f"int value should be less than or equal to {e['ctx']['le']}."),
    "bool_type": ("BOOLEAN_TYPE_COERCE", lambda e: f'Value "{_shown(e["input"])}" is not a boolean.'),
    "bool_parsing": ("BOOLEAN_TYPE_COERCE", lambda e: f'Value "{_shown(e["input"])}" is not a boolean.'),
    "string_type": ("BASE_TYPE_STRING", lambda e: "Could not interpret value as string."),
    "list_type": ("BASE_TYPE_ARRAY", lambda e: "Must be an array."),
    "model_type": ("DICT_TYPE_CONVERT", lambda e: "Only dictionaries may be used in a DictType"),
    "dict_type": ("DICT_TYPE_CONVERT", lambda e: "Only dictionaries may be used in a DictType"),
    "extra_forbidden": ("UNKNOWN_FIELD", lambda e: "This field is not allowed here."),
    "url_scheme": ("URL_TYPE_INVALID_SCHEME", lambda e: e["msg"]),
    "timestamp": ("DATE_TYPE_PARSE", lambda e: e["msg"]),
    "none_required": ("UNSUPPORTED_FIELD", lambda e: "This service does not implement this field."),
    "union_tag_invalid": ("BASE_TYPE_CHOICES", lambda e: e["msg"]),
}


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 64 else text[:64] + "..."


def form_errors(exc: ValidationError) -> dict[str, Any]:
    """pydantic's errors in Discord's nested form: ``{"field": {"0": {"_errors": [...]}}}``."""
    tree: dict[str, Any] = {}
    for error in exc.errors(include_url=False):
        if error["type"] in _ERROR_CODES:
            code, render = _ERROR_CODES[error["type"]]
            message = render(error)
        else:
            code, message = "BASE_TYPE_BAD", error["msg"]
        # pydantic adds the branch it tried (e.g. "int", "literal[...]") to the location of union errors.
        path = [str(p) for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p in ("int", "str")))]
        node = tree
        for key in path:
            node = node.setdefault(key, {})
        leaf_errors = node.setdefault("_errors", [])
        if not any(e["code"] == code for e in leaf_errors):
            leaf_errors.append({"code": code, "message": message})
    return tree


def register(app) -> None:
    """Mount the API under both versions and its error handlers."""
    from app.api import (  # noqa: F401  (their routes attach to ``api``)
        channels,
        gateway,
        guilds,
        messages,
        openapi,
        search,
        threads,
        users,
        webhooks,
    )
    from app.api.attachments import cdn
    from app.api.errors import register_error_handlers

    # werkzeug answers a path with "//" by a 308 redirect to the path with one "/", in HTML; an empty id segment
    # (``/channels//messages``) is a path no route has: 404 in the API's form, as Discord answers.
    app.url_map.merge_slashes = False
    ratelimit.init_app(app, app.config["SETTINGS"])
    for name, prefix in VERSION_PREFIXES.items():
        app.register_blueprint(api, url_prefix=prefix, name=name)
    app.register_blueprint(cdn)
    register_error_handlers(app)

    app.teardown_request(close_uploads)

    @app.teardown_appcontext
    def _close_session(_exc) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
