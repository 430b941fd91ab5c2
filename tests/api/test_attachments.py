"""Attachments: multipart uploads as discord.py and discord.js send them, the records served back, signed downloads
with ranges, limits, edits keeping only the listed files, deletes removing the blobs."""
from __future__ import annotations

import io
import json
import time
from urllib.parse import urlsplit

import pytest
from PIL import Image

from app import create_app
from app.auth.permissions import Permission
from app.services.attachments import blob_key
from tests.api.test_messages import MEMBER_PERMISSIONS, Room, history
from tests.support.responses import error, field_error_codes, json_body


@pytest.fixture
def room(make):
    owner, member = make.actor("owner"), make.actor("member")
    guild_id, channel_id = make.guild(owner, everyone=MEMBER_PERMISSIONS | Permission.ATTACH_FILES)
    make.member(guild_id, member)
    return Room(owner, member, guild_id, channel_id)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def upload(client, actor, channel_id, files, payload=None, *, method="POST", message_id=None, headers=None):
    """A multipart request as discord.py builds it: payload_json, then files[n] parts."""
    data = {"payload_json": json.dumps(payload if payload is not None else {})}
    for index, (name, content) in enumerate(files):
        data[f"files[{index}]"] = (io.BytesIO(content), name)
    path = f"/api/v10/channels/{channel_id}/messages" + (f"/{message_id}" if message_id else "")
    return client.open(path, method=method, data=data, content_type="multipart/form-data",
                       headers={**actor.headers, **(headers or {})})


def download(client, url, **headers):
    parts = urlsplit(url)
    return client.get(parts.path, query_string=parts.query, headers=headers)


def test_files_are_stored_and_served_back(client, room):
    image = png(31, 17)
    message = json_body(upload(client, room.member, room.channel_id, [("log.txt", b"line one\n"), ("dot.png", image)],
                               {"content": "log", "attachments": [{"id": 0, "description": "the log",
                                                                   "title": "Log"},
                                                                  {"id": 1, "filename": "red dot.png"}]}), 200)
    text, picture = message["attachments"]
    assert (text["filename"], text["size"], text["description"], text["title"], text["content_type"]) == \
        ("log.txt", 9, "the log", "Log", "text/plain; charset=utf-8")
    assert "width" not in text and "height" not in text
    assert (picture["filename"], picture["size"], picture["content_type"], picture["width"], picture["height"]) == \
        ("red_dot.png", len(image), "image/png", 31, 17)
    assert text["url"] == text["proxy_url"] and text["id"] != picture["id"]
    assert urlsplit(text["url"]).path == f"/attachments/{room.channel_id}/{text['id']}/log.txt"
    def without_links(attachments):
        return [{k: v for k, v in a.items() if k not in ("url", "proxy_url")} for a in attachments]

    assert without_links(history(client, room.owner, room.channel_id)[0]["attachments"]) == \
        without_links(message["attachments"])
    fetched = download(client, text["url"])
    assert (fetched.status_code, fetched.data, fetched.headers["Content-Type"]) == \
        (200, b"line one\n", "text/plain; charset=utf-8")
    assert fetched.headers["Content-Length"] == "9" and fetched.headers["Accept-Ranges"] == "bytes"
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=" in fetched.headers["Cache-Control"]
    assert download(client, picture["url"]).data == image


def test_the_type_comes_from_the_bytes_not_the_client(client, room):
    image = png(4, 4)
    pretending = json_body(upload(client, room.member, room.channel_id, [("notes.txt", image), ("evil.png", b"<html>"),
                                                                         ("page.html", b"<script>")],
                                  {"content": "x"}), 200)["attachments"]
    assert [(a["content_type"], a.get("width")) for a in pretending] == [
        ("image/png", 4), ("application/octet-stream", None), ("text/plain; charset=utf-8", None)]


def test_filenames_are_sanitized(client, room):
    names = ["../../etc/passwd", "my file (1).txt", ".hidden", "<script>.html", "日本語.txt"]
    stored = json_body(upload(client, room.member, room.channel_id, [(n, b"x") for n in names], {"content": "x"}),
                       200)["attachments"]
    assert [a["filename"] for a in stored] == ["passwd", "my_file_1_.txt", "hidden", "_script_.html", "日本語.txt"]
    assert download(client, stored[4]["url"]).data == b"x"


def test_a_message_of_only_files_is_not_empty(client, room):
    message = json_body(upload(client, room.member, room.channel_id, [("a.bin", b"\x00\x01")]), 200)
    assert message["content"] == "" and len(message["attachments"]) == 1


def test_uploading_needs_attach_files(client, make, room):
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.ATTACH_FILES)
    error(upload(client, room.member, room.channel_id, [("a.txt", b"x")], {"content": "x"}), 403, 50013)
    assert history(client, room.owner, room.channel_id) == []


def test_eleven_files_are_refused(client, room, resources):
    response = upload(client, room.member, room.channel_id, [(f"{i}.txt", b"x") for i in range(11)], {"content": "x"})
    assert field_error_codes(response, "files") == ["BASE_TYPE_MAX_LENGTH"]
    assert history(client, room.owner, room.channel_id) == []


def test_an_attachment_entry_must_name_an_upload(client, room):
    response = upload(client, room.member, room.channel_id, [("a.txt", b"x")],
                      {"content": "x", "attachments": [{"id": 5}]})
    assert field_error_codes(response, "attachments", "0", "id") == ["ATTACHMENT_NOT_FOUND"]


class TestDownloads:
    @pytest.fixture
    def stored(self, client, room):
        return json_body(upload(client, room.member, room.channel_id, [("data.bin", bytes(range(256)) * 4)],
                                {"content": "x"}), 200)["attachments"][0]

    def test_a_range(self, client, stored):
        part = download(client, stored["url"], Range="bytes=10-19")
        assert (part.status_code, part.data, part.headers["Content-Range"]) == (206, bytes(range(10, 20)),
                                                                                "bytes 10-19/1024")
        tail = download(client, stored["url"], Range="bytes=-4")
        assert (tail.status_code, tail.data) == (206, bytes(range(252, 256)))
        past = download(client, stored["url"], Range="bytes=5000-")
        assert (past.status_code, past.headers["Content-Range"]) == (416, "bytes */1024")

    def test_head(self, client, stored):
        parts = urlsplit(stored["url"])
        head = client.head(parts.path, query_string=parts.query)
        assert (head.status_code, head.headers["Content-Length"], head.data) == (200, "1024", b"")

    def test_a_tampered_signature_or_path_opens_nothing(self, client, stored, room):
        parts = urlsplit(stored["url"])
        query = dict(p.split("=", 1) for p in parts.query.split("&") if p)
        tampered = {**query, "hm": ("0" if query["hm"][0] != "0" else "1") + query["hm"][1:]}
        assert client.get(parts.path, query_string=tampered).status_code == 404
        assert client.get(parts.path).status_code == 404
        later = {**query, "ex": format(int(query["ex"], 16) + 3600, "x")}
        assert client.get(parts.path, query_string=later).status_code == 404
        other_name = parts.path.rsplit("/", 1)[0] + "/other.bin"
        assert client.get(other_name, query_string=query).status_code == 404

    def test_an_expired_link_opens_nothing(self, client, stored, monkeypatch):
        ttl = 24 * 3600
        monkeypatch.setattr(time, "time", lambda real=time.time: real() + ttl + 1)
        assert download(client, stored["url"]).status_code == 404


class TestEditsAndDeletes:
    def test_an_edit_keeps_only_the_listed_attachments(self, client, room, resources):
        created = json_body(upload(client, room.member, room.channel_id, [("a.txt", b"a"), ("b.txt", b"b")],
                                   {"content": "x"}), 200)
        first, second = created["attachments"]
        edited = json_body(client.patch(f"/api/v10/channels/{room.channel_id}/messages/{created['id']}",
                                        json={"attachments": [first]}, headers=room.member.headers), 200)
        assert [a["id"] for a in edited["attachments"]] == [first["id"]]
        blobs = resources.blob_store
        assert blobs.stat(blob_key(room.channel_id, int(second["id"]))) is None
        assert blobs.stat(blob_key(room.channel_id, int(first["id"]))) is not None
        assert download(client, second["url"]).status_code == 404

    def test_an_edit_adds_files(self, client, room):
        created = json_body(upload(client, room.member, room.channel_id, [("a.txt", b"a")], {"content": "x"}), 200)
        kept = created["attachments"][0]
        edited = json_body(upload(client, room.member, room.channel_id, [("c.txt", b"c")],
                                  {"attachments": [kept, {"id": 0}]}, method="PATCH", message_id=created["id"]),
                           200)
        assert [a["filename"] for a in edited["attachments"]] == ["a.txt", "c.txt"]
        assert edited["edited_timestamp"] is not None

    def test_only_the_author_edits_attachments(self, client, room):
        created = json_body(upload(client, room.member, room.channel_id, [("a.txt", b"a")], {"content": "x"}), 200)
        response = client.patch(f"/api/v10/channels/{room.channel_id}/messages/{created['id']}",
                                json={"attachments": []}, headers=room.owner.headers)
        error(response, 403, 50005)

    def test_deleting_a_message_deletes_its_files(self, client, room, resources):
        created = json_body(upload(client, room.member, room.channel_id, [("a.txt", b"a")], {"content": "x"}), 200)
        key = blob_key(room.channel_id, int(created["attachments"][0]["id"]))
        assert resources.blob_store.stat(key) is not None
        assert client.delete(f"/api/v10/channels/{room.channel_id}/messages/{created['id']}",
                             headers=room.member.headers).status_code == 204
        assert resources.blob_store.stat(key) is None

    def test_bulk_delete_deletes_every_file(self, client, room, resources):
        keys, ids = [], []
        for name in ("a.txt", "b.txt"):
            created = json_body(upload(client, room.owner, room.channel_id, [(name, b"x")], {"content": "x"}), 200)
            ids.append(created["id"])
            keys.append(blob_key(room.channel_id, int(created["attachments"][0]["id"])))
        assert client.post(f"/api/v10/channels/{room.channel_id}/messages/bulk-delete", json={"messages": ids},
                           headers=room.owner.headers).status_code == 204
        assert [resources.blob_store.stat(key) for key in keys] == [None, None]

    def test_a_failing_blob_delete_leaves_the_message_deleted(self, client, room, resources, monkeypatch):
        from app.blobs.base import BlobStoreUnavailable

        created = json_body(upload(client, room.member, room.channel_id, [("a.txt", b"a")], {"content": "x"}), 200)

        def failing(keys):
            raise BlobStoreUnavailable("down")

        monkeypatch.setattr(resources.blob_store, "delete", failing)
        assert client.delete(f"/api/v10/channels/{room.channel_id}/messages/{created['id']}",
                             headers=room.member.headers).status_code == 204
        assert history(client, room.owner, room.channel_id) == []


def test_deleting_a_channel_deletes_its_files(client, room, resources):
    created = json_body(upload(client, room.member, room.channel_id, [("a.txt", b"a")], {"content": "x"}), 200)
    key = blob_key(room.channel_id, int(created["attachments"][0]["id"]))
    assert client.delete(f"/api/v10/channels/{room.channel_id}", headers=room.owner.headers).status_code == 200
    assert resources.blob_store.stat(key) is None


def test_links_are_under_the_host_the_request_came_to_or_public_base_url(client, room, resources):
    message = json_body(upload(client, room.member, room.channel_id, [("a.txt", b"a")]), 200)
    assert message["attachments"][0]["url"].startswith("http://localhost/attachments/")
    page = f"/api/v10/channels/{room.channel_id}/messages"
    asked = json_body(client.get(page, base_url="http://chat.example:8080", headers=room.owner.headers), 200)
    assert asked[0]["attachments"][0]["url"].startswith("http://chat.example:8080/attachments/")
    public = create_app(resources.settings.replace(public_base_url="https://files.example/"))
    try:
        served = json_body(public.test_client().get(page, headers=room.owner.headers), 200)
    finally:
        public.extensions["chatstore"].close()
    url = served[0]["attachments"][0]["url"]
    assert url.startswith("https://files.example/attachments/")
    assert download(client, url).data == b"a"


def test_a_kept_page_signs_its_links_for_each_request_under_its_own_host(client, room):
    """A page is kept for every viewer, but a link signed under one request's Host header (forged or not) must not
    reach another viewer, nor a signature an older request got."""
    upload(client, room.member, room.channel_id, [("a.txt", b"a")])
    page = f"/api/v10/channels/{room.channel_id}/messages"
    forged = json_body(client.get(page, base_url="http://evil.example", headers=room.owner.headers), 200)
    assert forged[0]["attachments"][0]["url"].startswith("http://evil.example/attachments/")
    served = json_body(client.get(page, headers=room.member.headers), 200)
    assert served[0]["attachments"][0]["url"].startswith("http://localhost/attachments/")
    assert download(client, served[0]["attachments"][0]["url"]).data == b"a"


def test_a_kept_page_answered_later_carries_links_signed_then(client, room, monkeypatch):
    upload(client, room.member, room.channel_id, [("a.txt", b"a")])
    page = f"/api/v10/channels/{room.channel_id}/messages"
    first = json_body(client.get(page, headers=room.owner.headers), 200)[0]["attachments"][0]["url"]
    signed_at = time.time()
    monkeypatch.setattr(time, "time", lambda: signed_at + 30)
    later = json_body(client.get(page, headers=room.owner.headers), 200)[0]["attachments"][0]["url"]
    issued = dict(part.split("=") for part in urlsplit(later).query.split("&") if part)["is"]
    assert later != first and int(issued, 16) >= int(signed_at) + 30
