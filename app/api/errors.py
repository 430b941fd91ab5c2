"""The one place errors become HTTP: every response, errors included, is JSON in Discord's form."""
from __future__ import annotations

import logging
import math

from flask import Flask, request
from gunicorn.http.errors import ParseException as MalformedBody
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.api.json import json_response
from app.errors import AppError, ServiceUnavailable
from app.messages.base import StoreUnavailable
from app.search.base import SearchUnavailable
from config import CLOSE_CONNECTION

log = logging.getLogger(__name__)


def _unavailable(error: ServiceUnavailable):
    response = json_response(error.body(), error.status)
    response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(error: AppError):
        if isinstance(error, ServiceUnavailable):
            return _unavailable(error)
        return json_response(error.body(), error.status)

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(error: StoreUnavailable):
        log.warning("message store unavailable: %s", error)
        return _unavailable(ServiceUnavailable(retry_after=error.retry_after))

    @app.errorhandler(SearchUnavailable)
    def _search_unavailable(error: SearchUnavailable):
        log.warning("search engine unavailable: %s", error)
        return _unavailable(ServiceUnavailable(retry_after=error.retry_after))

    @app.errorhandler(PendingRollbackError)
    def _session_invalidated(error: PendingRollbackError):
        # The request's session lost its connection earlier in the request: the database is unavailable.
        log.warning("database session invalidated: %s", error)
        return _unavailable(ServiceUnavailable())

    @app.errorhandler(PoolTimeout)
    def _pool_timeout(error: PoolTimeout):
        log.warning("database pool exhausted: %s", error)
        return _unavailable(ServiceUnavailable())

    @app.errorhandler(DBAPIError)
    def _database_error(error: DBAPIError):
        # Connection loss, statement timeouts and lock timeouts are the database being unavailable, not a bug
        # in the request: answer 503 so clients retry later rather than 500 (which discord.py re-sends at once).
        # Connection-level errors (OperationalError, InterfaceError) mean the database could not answer, as the
        # SQL message store also treats them.
        if error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError)) \
                or _is_transient(error):
            log.warning("database unavailable: %s", error.orig)
            return _unavailable(ServiceUnavailable())
        log.exception("database error")
        return json_response({"message": "500: Internal Server Error", "code": 0}, 500)

    @app.errorhandler(MalformedBody)
    def _malformed_body(error: MalformedBody):
        # gunicorn parses a chunked body as the app reads it, so a malformed chunk size or terminator surfaces
        # here. The rest of the connection's bytes cannot be framed: answer, then close it.
        request.environ[CLOSE_CONNECTION] = True
        return json_response({"message": "400: Bad Request", "code": 0}, 400)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.code in (408, 413):
            # The body was not read to its end (refused before it was, or arriving too slowly): the connection
            # cannot carry another request after it.
            request.environ[CLOSE_CONNECTION] = True
        if error.code == 413:
            return json_response({"message": "Request entity too large", "code": 40005}, 413)
        return json_response({"message": f"{error.code}: {error.name}", "code": 0}, error.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return json_response({"message": "500: Internal Server Error", "code": 0}, 500)


def _is_transient(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    markers = ("database is locked", "could not connect", "connection refused", "server closed the connection",
               "terminating connection", "canceling statement due to statement timeout", "lock timeout",
               "the database system is", "connection already closed", "ssl syscall error", "timeout expired")
    return any(marker in text for marker in markers)
