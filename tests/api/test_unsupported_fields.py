"""Every route that takes a body refuses every field Discord documents for it that this service does not
implement, with 400 naming the field: derived from the OpenAPI document, so a new route cannot forget (building
the document fails for a body schema without ``unsupported``)."""
from __future__ import annotations

import re

import pytest

from tests.support.responses import field_error_codes, json_body

#: A value for a refused field: anything but null, which asks for nothing.
GIVEN = {"icon": "data:image/png;base64,AAAA", "roles": [{"id": 1}], "channels": [{"name": "x"}]}


def operations_with_bodies(client, actor):
    document = json_body(client.get("/api/v10/openapi.json"), 200)
    schemas = document["components"]["schemas"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            yield path, method, name, schemas[name]


def test_every_body_declares_what_it_refuses(client, make):
    actor = make.actor()
    found = {name: schema["x-discord-unsupported"] for _, _, name, schema in operations_with_bodies(client, actor)}
    assert {"MessageCreate", "MessageEdit", "ChannelEdit", "ChannelCreate", "RoleCreate", "GuildCreate",
            "DMCreate", "BulkDelete", "MemberAdd"} <= set(found)
    assert {"sticker_ids", "poll"} <= set(found["MessageCreate"])


def test_every_unsupported_field_is_refused_naming_it(client, make):
    actor = make.actor()
    refused = 0
    for path, method, _, schema in operations_with_bodies(client, actor):
        # Bodies are parsed before any lookup, so any well-formed id reaches the check.
        concrete = "/api/v10" + re.sub(r"\{[a-z_]+\}", "1", path)
        for field in schema["x-discord-unsupported"]:
            response = client.open(concrete, method=method.upper(), json={field: GIVEN.get(field, 1)},
                                   headers=actor.headers)
            assert field_error_codes(response, field) == ["UNSUPPORTED_FIELD"], (method, path, field)
            refused += 1
            for nothing in (None, []):
                asked = client.open(concrete, method=method.upper(), json={field: nothing}, headers=actor.headers)
                assert field not in (asked.get_json().get("errors") or {}), (method, path, field, nothing)
    assert refused >= 30


@pytest.mark.parametrize("body", [{"content": "x", "sticker_ids": ["1"]},
                                  {"content": "x", "poll": {"question": {"text": "q"}, "answers": []}}])
def test_stickers_and_polls_are_refused_in_multipart_too(client, make, body):
    import io
    import json

    actor = make.actor()
    guild_id, channel_id = make.guild(actor)
    response = client.post(f"/api/v10/channels/{channel_id}/messages", content_type="multipart/form-data",
                           data={"payload_json": json.dumps(body), "files[0]": (io.BytesIO(b"x"), "a.txt")},
                           headers=actor.headers)
    assert field_error_codes(response, next(k for k in body if k != "content")) == ["UNSUPPORTED_FIELD"]
