"""Assertions on API responses in Discord's wire form (JSON bodies, string ids, Discord's error objects)."""
from __future__ import annotations


def json_body(response, status: int):
    """The parsed body, after checking the status and that Content-Type is exactly application/json."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.headers["Content-Type"] == "application/json"
    return response.json


def error(response, status: int, code: int) -> dict:
    """The error body, after checking status, Content-Type and Discord's error code."""
    body = json_body(response, status)
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


def field_error_codes(response, *path: str) -> list[str]:
    """The ``_errors`` codes of a 400 50035 response at ``path`` in its nested ``errors`` object."""
    node = error(response, 400, 50035)["errors"]
    for key in path:
        node = node[key]
    return [leaf["code"] for leaf in node["_errors"]]


def no_content(response) -> None:
    """A 204: no body, and so no Content-Type either."""
    assert response.status_code == 204, (response.status_code, response.get_data(as_text=True))
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers, response.headers["Content-Type"]
