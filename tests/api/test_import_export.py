"""``flask messages import`` and ``flask messages export``, in process through Flask's CLI runner (one test runs the
real ``flask`` executable), checked through the HTTP API and the message store on SQLite and PostgreSQL."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, update

import models
from app import create_app
from app.cli.messages import write_channel_history
from app.ids import bucket_of, snowflake_from_ms, snowflake_time
from config import PROJECT_ROOT
from tests.support.databases import migrated_database
from tests.support.responses import json_body

FLASK = str(PROJECT_ROOT / ".venv" / "bin" / "flask")
HISTORY_START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def backdated_id(moment: datetime, sequence: int = 0) -> int:
    return snowflake_from_ms(int(moment.timestamp() * 1000)) + sequence


def message_object(message_id: int, channel_id: int, author_id: int, content: str | None = None, **fields) -> dict:
    body = {"id": str(message_id), "channel_id": str(channel_id), "author": {"id": str(author_id)},
            "content": content if content is not None else f"message {message_id}"}
    body.update(fields)
    return body


def history_file(tmp_path, lines, name="history.jsonl"):
    """A JSON Lines file; dicts are encoded, strings written as they are (for malformed lines)."""
    path = tmp_path / name
    path.write_text("".join((json.dumps(line) if isinstance(line, dict) else line) + "\n" for line in lines))
    return path


def backdated_history(channel_id: int, author_id: int, days: int = 45, every_hours: int = 30) -> list[dict]:
    """Messages every ``every_hours`` over ``days`` days from HISTORY_START: several 10-day buckets."""
    count = days * 24 // every_hours
    return [message_object(backdated_id(HISTORY_START + timedelta(hours=i * every_hours), i), channel_id, author_id)
            for i in range(count)]


def run(app, *args):
    return app.test_cli_runner().invoke(args=["messages", *args])


def import_file(app, path, *options):
    return run(app, "import", str(path), *options)


def summary(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def history_ids(client, actor, channel_id, **params) -> list[int]:
    params.setdefault("limit", 100)
    response = client.get(f"/api/v10/channels/{channel_id}/messages", query_string=params, headers=actor.headers)
    return [int(m["id"]) for m in json_body(response, 200)]


def all_history_ids(client, actor, channel_id) -> list[int]:
    """Every message id of the channel, newest first, paging with ``before`` as discord.py does."""
    ids, before = [], None
    while True:
        page = history_ids(client, actor, channel_id, **({"before": before} if before else {}))
        ids.extend(page)
        if len(page) < 100:
            return ids
        before = page[-1]


def last_message_id(client, actor, channel_id) -> int | None:
    channel = json_body(client.get(f"/api/v10/channels/{channel_id}", headers=actor.headers), 200)
    return int(channel["last_message_id"]) if channel["last_message_id"] else None


@pytest.fixture
def owner(make):
    return make.actor("archivist")


@pytest.fixture
def channel_id(make, owner):
    return make.guild(owner)[1]


# -- import ------------------------------------------------------------------------------------------------

def test_import_keeps_ids_so_history_lands_in_its_buckets(app, client, resources, owner, channel_id, tmp_path):
    lines = backdated_history(channel_id, owner.id)
    expected = sorted((int(line["id"]) for line in lines), reverse=True)
    result = import_file(app, history_file(tmp_path, lines))

    assert result.exit_code == 0, result.output
    assert summary(result) == f"imported {len(lines)}, skipped 0 (already present and identical), failed 0"
    assert all_history_ids(client, owner, channel_id) == expected
    assert resources.message_store.channel_buckets(channel_id) == sorted({bucket_of(i) for i in expected},
                                                                         reverse=True)
    assert len(resources.message_store.channel_buckets(channel_id)) >= 4
    assert last_message_id(client, owner, channel_id) == expected[0]
    fetched = json_body(client.get(f"/api/v10/channels/{channel_id}/messages/{expected[-1]}",
                                   headers=owner.headers), 200)
    assert fetched["timestamp"] == "2024-03-01T00:00:00.000000+00:00"
    assert (fetched["content"], fetched["author"]["username"]) == (f"message {expected[-1]}", "archivist")


def test_every_field_of_the_format_is_stored(app, client, owner, channel_id, make, tmp_path):
    mentioned = make.actor("mentioned")
    original_id = backdated_id(HISTORY_START)
    reply_id = backdated_id(HISTORY_START + timedelta(minutes=5))
    embed = {"title": "Minutes", "description": "of the meeting", "type": "rich"}
    lines = [
        message_object(original_id, channel_id, owner.id, "the original", tts=True, flags=4),
        message_object(reply_id, channel_id, owner.id, f"<@{mentioned.id}> see above", type=19,
                       mentions=[{"id": str(mentioned.id)}], mention_roles=["111"], mention_everyone=True,
                       embeds=[embed], edited_timestamp="2024-03-02T10:00:00.250000+00:00",
                       message_reference={"message_id": str(original_id), "channel_id": str(channel_id)},
                       timestamp="2024-03-01T00:05:00.000000+00:00"),
    ]
    assert import_file(app, history_file(tmp_path, lines)).exit_code == 0

    original, reply = (json_body(client.get(f"/api/v10/channels/{channel_id}/messages/{m}", headers=owner.headers),
                                 200) for m in (original_id, reply_id))
    assert (original["tts"], original["flags"], original["type"]) == (True, 4, 0)
    assert reply["type"] == 19
    assert [u["id"] for u in reply["mentions"]] == [str(mentioned.id)]
    assert (reply["mention_roles"], reply["mention_everyone"]) == (["111"], True)
    assert reply["embeds"] == [embed]
    assert reply["edited_timestamp"] == "2024-03-02T10:00:00.250000+00:00"
    assert reply["message_reference"]["message_id"] == str(original_id)
    assert reply["referenced_message"]["content"] == "the original"


def test_reimporting_the_same_file_changes_nothing(app, client, resources, owner, channel_id, tmp_path):
    lines = backdated_history(channel_id, owner.id, days=25)
    lines[3]["pinned"] = True
    path = history_file(tmp_path, lines)
    assert import_file(app, path).exit_code == 0
    history_before = json_body(client.get(f"/api/v10/channels/{channel_id}/messages?limit=100",
                                          headers=owner.headers), 200)
    pins_before = resources.message_store.list_pins(channel_id, before=None, limit=50)

    again = import_file(app, path)
    assert again.exit_code == 0, again.output
    assert summary(again) == f"imported 0, skipped {len(lines)} (already present and identical), failed 0"
    assert json_body(client.get(f"/api/v10/channels/{channel_id}/messages?limit=100",
                                headers=owner.headers), 200) == history_before
    assert resources.message_store.list_pins(channel_id, before=None, limit=50) == pins_before


def test_pinned_messages_are_pinned_at_the_given_time_or_else_the_message_time(app, client, owner, channel_id,
                                                                             tmp_path):
    first, second, unpinned = (backdated_id(HISTORY_START + timedelta(days=d)) for d in (1, 2, 3))
    lines = [message_object(first, channel_id, owner.id, pinned=True),
             message_object(second, channel_id, owner.id, pinned=True, pinned_at="2024-06-01T12:00:00+00:00"),
             message_object(unpinned, channel_id, owner.id, pinned=False)]
    assert import_file(app, history_file(tmp_path, lines)).exit_code == 0

    pins = json_body(client.get(f"/api/v10/channels/{channel_id}/messages/pins", headers=owner.headers), 200)
    assert [(item["message"]["id"], item["pinned_at"]) for item in pins["items"]] == [
        (str(second), "2024-06-01T12:00:00.000000+00:00"),
        (str(first), "2024-03-02T00:00:00.000000+00:00"),
    ]
    assert all(item["message"]["pinned"] for item in pins["items"])


def test_last_message_id_moves_up_to_the_newest_message_never_down(app, client, owner, channel_id, tmp_path):
    sent = json_body(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "today"},
                                 headers=owner.headers), 200)
    assert import_file(app, history_file(tmp_path, backdated_history(channel_id, owner.id, days=5))).exit_code == 0
    assert last_message_id(client, owner, channel_id) == int(sent["id"])

    time.sleep(0.005)  # a later millisecond than the sent message's, still not in the future
    newer = snowflake_from_ms(int(time.time() * 1000))
    assert newer > int(sent["id"])
    path = history_file(tmp_path, [message_object(newer, channel_id, owner.id)], name="newer.jsonl")
    assert import_file(app, path).exit_code == 0
    assert last_message_id(client, owner, channel_id) == newer


def test_bad_lines_are_reported_by_number_and_the_good_ones_imported(app, client, make, owner, channel_id,
                                                                     tmp_path):
    good_ids = [backdated_id(HISTORY_START + timedelta(days=d)) for d in (1, 2)]
    some_id = backdated_id(HISTORY_START + timedelta(days=3))
    future_id = backdated_id(datetime.now(timezone.utc) + timedelta(days=1))
    lines = [
        message_object(good_ids[0], channel_id, owner.id),
        '{"id": "1", "channel_id": ',
        message_object(some_id, 424242, owner.id),
        message_object(some_id, channel_id, 434343),
        message_object(some_id, channel_id, owner.id) | {"id": "12ab"},
        {"id": str(some_id), "channel_id": str(channel_id), "author": {"id": str(owner.id)}},
        message_object(some_id, channel_id, owner.id, "x" * 2001),
        message_object(future_id, channel_id, owner.id),
        message_object(some_id, channel_id, owner.id, timestamp="2024-03-01T00:00:00+00:00"),
        "[1, 2]",
        "",
        message_object(good_ids[1], channel_id, owner.id, "x" * 2000),
    ]
    result = import_file(app, history_file(tmp_path, lines))

    assert result.exit_code == 1
    reported = result.stderr.strip().splitlines()
    assert reported[0].startswith("line 2: not JSON: ")
    assert reported[1:-1] == [
        "line 3: unknown channel 424242",
        "line 4: unknown author 434343",
        "line 5: id: '12ab' is not a snowflake",
        "line 6: content: missing",
        "line 7: content: 2001 characters, must be 2000 or fewer",
        f"line 8: id {future_id} is in the future ({snowflake_time(future_id).isoformat(timespec='microseconds')})",
        f"line 9: timestamp: 2024-03-01T00:00:00+00:00 is not the time of id {some_id} "
        "(2024-03-04T00:00:00.000000+00:00)",
        "line 10: not a JSON object",
    ]
    assert reported[-1] == "imported 2, skipped 0 (already present and identical), failed 9"
    assert history_ids(client, owner, channel_id) == good_ids[::-1]


def test_a_stored_message_that_differs_is_reported_and_not_overwritten(app, client, owner, channel_id, tmp_path):
    message_id = backdated_id(HISTORY_START)
    original = history_file(tmp_path, [message_object(message_id, channel_id, owner.id, "v1")])
    assert import_file(app, original).exit_code == 0
    changed = history_file(tmp_path, [message_object(message_id, channel_id, owner.id, "v2")], name="changed.jsonl")

    result = import_file(app, changed)
    assert result.exit_code == 1
    assert f"line 1: message {message_id} exists with different fields; not overwritten" in result.stderr
    stored = json_body(client.get(f"/api/v10/channels/{channel_id}/messages/{message_id}", headers=owner.headers), 200)
    assert stored["content"] == "v1"


@pytest.mark.parametrize("batch_lines", [1, 500], ids=["across-batches", "within-a-batch"])
def test_an_id_given_twice_is_imported_once_and_a_differing_repeat_refused(app, client, owner, channel_id,
                                                                           tmp_path, monkeypatch, batch_lines):
    monkeypatch.setattr("app.cli.messages.IMPORT_BATCH_LINES", batch_lines)
    first, second = backdated_id(HISTORY_START), backdated_id(HISTORY_START + timedelta(days=1))
    lines = [message_object(first, channel_id, owner.id, "first", pinned=True),
             message_object(second, channel_id, owner.id, "second"),
             message_object(first, channel_id, owner.id, "first", pinned=True),
             message_object(first, channel_id, owner.id, "first, changed")]
    result = import_file(app, history_file(tmp_path, lines))

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"line 4: message {first} appears earlier in the file with different fields"
        if batch_lines == 500 else f"line 4: message {first} exists with different fields; not overwritten",
        "imported 2, skipped 1 (already present and identical), failed 1",
    ]
    assert [m["content"] for m in json_body(client.get(f"/api/v10/channels/{channel_id}/messages",
                                                       headers=owner.headers), 200)] == ["second", "first"]
    pins = json_body(client.get(f"/api/v10/channels/{channel_id}/messages/pins", headers=owner.headers), 200)
    assert [item["message"]["id"] for item in pins["items"]] == [str(first)]


def test_strict_imports_nothing_when_any_line_is_bad(app, client, owner, channel_id, tmp_path):
    unknown_channel = message_object(backdated_id(HISTORY_START), 99, owner.id)
    lines = backdated_history(channel_id, owner.id, days=10) + [unknown_channel]
    result = import_file(app, history_file(tmp_path, lines), "--strict")

    assert result.exit_code == 1
    assert f"line {len(lines)}: unknown channel 99" in result.stderr
    assert "nothing imported (--strict): 1 bad lines" in result.stderr
    assert summary(result) == "imported 0, skipped 0 (already present and identical), failed 1"
    assert history_ids(client, owner, channel_id) == []
    assert last_message_id(client, owner, channel_id) is None


def test_strict_refuses_one_id_given_twice_with_different_fields(app, client, owner, channel_id, tmp_path):
    message_id = backdated_id(HISTORY_START)
    lines = [message_object(message_id, channel_id, owner.id, "first"),
             message_object(message_id, channel_id, owner.id, "second")]
    result = import_file(app, history_file(tmp_path, lines), "--strict")
    assert result.exit_code == 1
    assert f"line 2: message {message_id} appears earlier in the file with different fields" in result.stderr
    assert history_ids(client, owner, channel_id) == []


def test_strict_imports_everything_when_every_line_is_good(app, client, owner, channel_id, tmp_path):
    lines = backdated_history(channel_id, owner.id, days=12)
    result = import_file(app, history_file(tmp_path, lines), "--strict")
    assert result.exit_code == 0, result.output
    assert summary(result) == f"imported {len(lines)}, skipped 0 (already present and identical), failed 0"
    assert len(history_ids(client, owner, channel_id)) == len(lines)


def test_progress_is_shown_when_asked_and_not_otherwise(app, owner, channel_id, tmp_path):
    path = history_file(tmp_path, backdated_history(channel_id, owner.id, days=20))
    quiet = import_file(app, path)
    assert "importing:" not in quiet.stderr  # the runner's stderr is not a terminal

    shown = import_file(app, path, "--progress")
    progress_lines = [line for line in shown.stderr.splitlines() if line.startswith("importing:")]
    assert progress_lines[-1] == "importing: 100%"
    assert 2 <= len(progress_lines) <= 11  # a line per 10% when stderr is not a terminal


# -- export ------------------------------------------------------------------------------------------------

def test_export_writes_the_api_objects_oldest_first(app, client, owner, channel_id, tmp_path):
    lines = backdated_history(channel_id, owner.id, days=30)
    assert import_file(app, history_file(tmp_path, lines)).exit_code == 0
    sent = json_body(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "live"},
                                 headers=owner.headers), 200)

    result = run(app, "export", "--channel", str(channel_id))
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["id"] for m in exported] == [line["id"] for line in lines] + [sent["id"]]
    served = json_body(client.get(f"/api/v10/channels/{channel_id}/messages?limit=100", headers=owner.headers), 200)
    assert exported == served[::-1]
    assert result.stderr.strip() == f"exported {len(lines) + 1} messages of channel {channel_id}"


def test_export_of_an_unknown_channel_is_a_one_line_error(app):
    result = run(app, "export", "--channel", "4242")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: unknown channel 4242"


def test_export_holds_one_bucket_at_a_time(app, resources, owner, channel_id, tmp_path, monkeypatch):
    lines = backdated_history(channel_id, owner.id, days=50)
    assert import_file(app, history_file(tmp_path, lines)).exit_code == 0
    store = resources.message_store
    buckets_read = []
    read_bucket = store.messages_in_bucket
    monkeypatch.setattr(store, "messages_in_bucket",
                        lambda channel, bucket: buckets_read.append(bucket) or read_bucket(channel, bucket))

    class RecordingOutput:
        """Notes, for each line written, which buckets had been read by then."""

        def __init__(self):
            self.writes = []

        def write(self, data: bytes):
            self.writes.append((json.loads(data)["id"], list(buckets_read)))

    out = RecordingOutput()
    with app.app_context():
        assert write_channel_history(out, channel_id) == len(lines)
    assert [message_id for message_id, _ in out.writes] == [line["id"] for line in lines]
    for message_id, read_so_far in out.writes:
        # Each line goes out before the next bucket is read: only its own bucket is held.
        assert read_so_far[-1] == bucket_of(int(message_id))
    assert buckets_read == sorted(buckets_read) and len(buckets_read) >= 5


def copy_metadata(source_engine, target_engine) -> None:
    """Users and tokens, guilds, roles, members and channels (without their last message) into another database."""
    tables = [models.User, models.Token, models.Guild, models.Role, models.Member, models.MemberRole, models.Channel,
              models.PermissionOverwrite]
    with source_engine.connect() as source, target_engine.begin() as target:
        for model in tables:
            rows = [dict(row) for row in source.execute(select(model.__table__)).mappings()]
            if rows:
                target.execute(insert(model.__table__), rows)
        target.execute(update(models.Channel.__table__).values(last_message_id=None))


@contextlib.contextmanager
def empty_copy(database, resources, tmp_path):
    """An app on a fresh database of the same backend holding this one's metadata and no message."""
    (tmp_path / "copy").mkdir()
    with migrated_database("sqlite" if database.is_sqlite else "postgres", tmp_path / "copy") as copy_settings:
        copy = create_app(copy_settings)
        try:
            copy_metadata(resources.engine, copy.extensions["chatstore"].engine)
            yield copy
        finally:
            copy.extensions["chatstore"].close()


def test_export_then_import_into_an_empty_database_reproduces_the_channel(database, app, client, resources, make,
                                                                          owner, channel_id, tmp_path):
    friend = make.actor("friend")
    lines = backdated_history(channel_id, owner.id, days=40)
    lines[2]["pinned"] = True
    assert import_file(app, history_file(tmp_path, lines)).exit_code == 0
    url = f"/api/v10/channels/{channel_id}/messages"
    first = json_body(client.post(url, json={"content": f"hello <@{friend.id}>", "tts": True,
                                              "embeds": [{"title": "card"}]}, headers=owner.headers), 200)
    reply = json_body(client.post(url, json={"content": "a reply", "message_reference": {"message_id": first["id"]}},
                                  headers=owner.headers), 200)
    json_body(client.patch(f"{url}/{reply['id']}", json={"content": "an edited reply"}, headers=owner.headers), 200)
    assert client.put(f"/api/v10/channels/{channel_id}/messages/pins/{first['id']}",
                      headers=owner.headers).status_code == 204
    exported = run(app, "export", "--channel", str(channel_id), "--out", str(tmp_path / "export.jsonl"))
    assert exported.exit_code == 0, exported.output

    with empty_copy(database, resources, tmp_path) as copy:
        imported = import_file(copy, tmp_path / "export.jsonl")
        assert summary(imported) == \
            f"imported {len(lines) + 2}, skipped 0 (already present and identical), failed 0"
        again = run(copy, "export", "--channel", str(channel_id), "--out", str(tmp_path / "again.jsonl"))
        assert again.exit_code == 0, again.output
        assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "export.jsonl").read_bytes()

        copy_client = copy.test_client()
        for path in (f"/api/v10/channels/{channel_id}/messages?limit=100",
                     f"/api/v10/channels/{channel_id}/messages/pins",
                     f"/api/v10/channels/{channel_id}/messages/{reply['id']}",
                     f"/api/v10/channels/{channel_id}"):
            assert json_body(copy_client.get(path, headers=owner.headers), 200) == \
                json_body(client.get(path, headers=owner.headers), 200), path


# -- the real executable -----------------------------------------------------------------------------------

def test_the_flask_executable_imports_and_reports(database, client, owner, channel_id, tmp_path):
    good = backdated_history(channel_id, owner.id, days=15)
    path = history_file(tmp_path, good + ["not json"])
    result = subprocess.run([FLASK, "messages", "import", str(path)], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "DATABASE_URL": database.database_url})

    assert result.returncode == 1, result.stderr
    assert f"line {len(good) + 1}: not JSON: " in result.stderr
    assert f"imported {len(good)}, skipped 0 (already present and identical), failed 1" in result.stderr
    assert history_ids(client, owner, channel_id) == sorted((int(m["id"]) for m in good), reverse=True)


def test_attachments_and_components_travel_with_export_files(database, app, client, resources, owner, channel_id,
                                                              tmp_path):
    import io

    url = f"/api/v10/channels/{channel_id}/messages"
    rows = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "go", "custom_id": "go"}]}]
    sent = json_body(client.post(url, content_type="multipart/form-data", headers=owner.headers, data={
        "payload_json": json.dumps({"content": "files", "components": rows}),
        "files[0]": (io.BytesIO(b"alpha"), "a.txt"), "files[1]": (io.BytesIO(bytes(range(200))), "b.bin")}), 200)
    files = tmp_path / "files"
    exported = run(app, "export", "--channel", str(channel_id), "--out", str(tmp_path / "export.jsonl"),
                   "--files", str(files))
    assert exported.exit_code == 0, exported.output
    line = json.loads((tmp_path / "export.jsonl").read_text().splitlines()[-1])
    assert [a["filename"] for a in line["attachments"]] == ["a.txt", "b.bin"] and line["components"] == rows

    with empty_copy(database, resources, tmp_path) as copy:
        without_files = import_file(copy, tmp_path / "export.jsonl")
        assert without_files.exit_code == 1 and "no file in the blob store" in without_files.output
        imported = import_file(copy, tmp_path / "export.jsonl", "--files", str(files))
        assert summary(imported) == "imported 1, skipped 0 (already present and identical), failed 0"
        copy_client = copy.test_client()
        copied = json_body(copy_client.get(f"{url}/{sent['id']}", headers=owner.headers), 200)
        assert copied["components"] == rows
        for attachment, expected in zip(copied["attachments"], (b"alpha", bytes(range(200))), strict=True):
            path, _, query = attachment["url"].partition("?")
            download = copy_client.get(path.removeprefix("http://localhost"), query_string=query)
            assert (download.status_code, download.data) == (200, expected)
