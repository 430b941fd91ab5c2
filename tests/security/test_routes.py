"""Every route declares its metadata where it is defined, and the app acts on the declaration, not on names.

The metadata of a route (OpenAPI entry, rate-limit bucket, whether it needs a token) lives in app.api.routes,
keyed by rule and method. Walking the app's URL map finds any rule registered without it; renaming a view
function must change neither its bucket nor its public flag.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from app import create_app
from app.api import VERSION_PREFIXES
from app.api.openapi import build_document
from app.api.routes import AUTOMATIC_METHODS, OWN_BUCKET, ROUTES
from app.ratelimit import SHARED_BUCKETS, bucket_hash
from config import Settings
from tests.support.responses import error, json_body

#: The app's behaviour does not depend on the database here.
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def api_rules(app):
    """(prefix, rule as declared, method) for every rule of the API blueprints, under both versions."""
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0]
        if blueprint in VERSION_PREFIXES:
            for method in sorted(rule.methods - AUTOMATIC_METHODS):
                yield VERSION_PREFIXES[blueprint], rule.rule.removeprefix(VERSION_PREFIXES[blueprint]), method


def test_every_url_rule_declares_its_metadata():
    # An app that is never served: create_app connects to nothing until a request needs it.
    app = create_app(Settings(database_url="sqlite://"))
    document = build_document(app)
    declared = set()
    for prefix, rule, method in api_rules(app):
        spec = ROUTES.get(rule, method)
        assert spec is not None, f"{method} {prefix}{rule} is registered without app.api.route"
        assert spec.summary and spec.responses, spec
        assert spec.rate_limit == OWN_BUCKET or spec.rate_limit in SHARED_BUCKETS, spec
        assert isinstance(spec.public, bool), spec
        path = rule.replace("<", "{").replace(">", "}")
        assert document["paths"][path][method.lower()]["operationId"] == spec.endpoint
        declared.add((rule, method))
    assert {(spec.rule, spec.method) for spec in ROUTES} == declared  # and no spec without its rule


def test_only_the_document_the_gateway_url_and_webhook_token_routes_are_public():
    # Discord's Get Gateway needs no token; Get Gateway Bot does. A webhook's token in the path is its credential.
    assert sorted(spec.endpoint for spec in ROUTES if spec.public and "<token>" not in spec.rule) == [
        "get_gateway", "get_openapi"]
    assert sorted(spec.endpoint for spec in ROUTES if spec.public and "<token>" in spec.rule) == [
        "delete_webhook_message", "delete_webhook_with_token", "edit_webhook_message", "edit_webhook_with_token",
        "execute_webhook", "get_webhook_message", "get_webhook_with_token"]


@contextmanager
def renamed(app, endpoint: str, new_name: str):
    """The app as Flask would build it with the view ``endpoint`` renamed ``new_name`` (under both versions):
    its rules, its view functions and the URL map's index of rules by endpoint all use the new name."""
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.rpartition(".")[2] == endpoint]
    assert len(rules) == len(VERSION_PREFIXES)

    def rename(rule, name: str) -> None:
        old, rule.endpoint = rule.endpoint, f"{rule.endpoint.rpartition('.')[0]}.{name}"
        app.view_functions[rule.endpoint] = app.view_functions.pop(old)
        app.url_map._rules_by_endpoint[rule.endpoint] = app.url_map._rules_by_endpoint.pop(old)

    for rule in rules:
        rename(rule, new_name)
    try:
        yield
    finally:
        for rule in rules:
            rename(rule, endpoint)


@sqlite_only
def test_a_renamed_view_keeps_its_bucket(app, client, make, rate_limits):
    rate_limits(rate_limit_message_create="2/60", rate_limit_default="50/1")
    alice = make.actor()
    _guild_id, channel_id = make.guild(alice)
    url = f"/api/v10/channels/{channel_id}/messages"
    with renamed(app, "create_message", "send_message"):
        sent = [client.post(url, json={"content": f"m{i}"}, headers=alice.headers) for i in range(2)]
        refused = client.post(url, json={"content": "one too many"}, headers=alice.headers)
    for response in sent:
        json_body(response, 200)
        assert response.headers["X-RateLimit-Bucket"] == bucket_hash("messages.create")
        assert response.headers["X-RateLimit-Limit"] == "2"
    assert refused.status_code == 429


@sqlite_only
def test_a_renamed_view_keeps_its_public_flag(app, client):
    with renamed(app, "get_openapi", "get_document"):
        json_body(client.get("/api/v10/openapi.json"), 200)
    with renamed(app, "get_current_user", "get_me"):
        error(client.get("/api/v10/users/@me"), 401, 0)
