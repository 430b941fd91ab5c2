"""A small JSON client for the API of a real server (http.client, so it is cooperative under gevent)."""
from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


class JsonClient:
    """Requests to ``/api/v10`` as one bot; every call opens its own connection, so greenlets can share it."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _headers, answer = self.exchange(method, path, body)
        return status, answer

    def exchange(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, Any]:
        """The status, headers and JSON body of one request; ``headers`` are sent besides the token."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = {**(headers or {}), "Authorization": f"Bot {self.token}"}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            connection.request(method, "/api/v10" + path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
        finally:
            connection.close()

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> tuple[int, Any]:
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> tuple[int, Any]:
        return self.request("DELETE", path)
