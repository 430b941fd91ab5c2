"""discord.py, unmodified, against real gunicorn: files (one, several, an image's dimensions, an edit dropping one,
downloads byte for byte from their url), typing(), user.send() and the DM, fetch_guilds(), and a channel of every
kind of message the service agrees to store read back through history() (issue 18: stored data must never break
a reader). Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
import hashlib
import io
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

from app import create_app
from tests.e2e.scenarios import run_scenario
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.http import JsonClient
from tests.support.server import gunicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCENARIO_TIMEOUT = 120
LOG = b"first line\nsecond line\n" * 100


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 128, 255, 255)).save(out, "PNG")
    return out.getvalue()


IMAGE = png(64, 48)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corpus_messages(reply_to: str | None = None) -> list[dict]:
    """Messages at the edges of what the service accepts: every embed field at its limit, ten embeds, five rows
    of five buttons, a full select menu, the longest content in astral characters, offsets in timestamps."""
    full_embed = {
        "title": "t" * 256, "description": "d" * 2000, "url": "https://example.com/x?y=1#z",
        "timestamp": "2026-12-06T10:00:00.123+05:30", "color": 0xFFFFFF,
        "footer": {"text": "f" * 1000, "icon_url": "https://example.com/f.png"},
        "image": {"url": "https://example.com/i.png"}, "thumbnail": {"url": "https://example.com/t.png"},
        "author": {"name": "a" * 256, "url": "https://example.com/a", "icon_url": "https://example.com/a.png"},
        "fields": [{"name": f"n{i}", "value": "v" * 50, "inline": i % 2 == 0} for i in range(25)],
    }
    buttons = [{"type": 1, "components": [{"type": 2, "style": 1 + (i % 4), "label": f"b{r}{i}",
                                           "custom_id": f"b{r}-{i}"} for i in range(5)]} for r in range(4)]
    select = {"type": 1, "components": [{"type": 3, "custom_id": "pick", "max_values": 25, "options": [
        {"label": f"o{i}", "value": f"v{i}", "emoji": {"name": "🔥"}} for i in range(25)]}]}
    messages = [
        {"content": "x", "embeds": [full_embed]},
        {"content": "ten", "embeds": [{"title": f"e{i}", "timestamp": "2026-01-01T00:00:00"} for i in range(10)]},
        {"components": [*buttons, select]},
        {"content": "🔥" * 2000},
        {"content": "link", "components": [{"type": 1, "components": [
            {"type": 2, "style": 5, "label": "docs", "url": "https://example.com",
             "emoji": {"name": "x", "id": "1"}}]}]},
    ]
    if reply_to is not None:
        messages.append({"content": "reply", "message_reference": {"message_id": reply_to}})
    return messages


def _post_within_rate_limits(client: JsonClient, path: str, body: dict) -> dict:
    """Send as a client does: six messages into one channel pass its limit (five per five seconds), so a 429 is
    waited out as its ``retry_after`` says."""
    for _ in range(3):
        status, message = client.post(path, body)
        if status != 429:
            assert status == 200, message
            return message
        time.sleep(message["retry_after"])
    raise AssertionError(f"still rate limited: {message}")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def observed(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(f"e2e-files-{request.param}")
    with migrated_database(request.param, tmp_path) as settings:
        app = create_app(settings)
        try:
            make = Factory(app.extensions["chatstore"])
            bot, friend = make.actor("files-bot"), make.actor("files-friend")
            guild_id, channel_id = make.guild(bot, name="files guild")
            corpus_channel = make.channel(guild_id, "corpus")
            other_guild, _ = make.guild(bot, name="second guild")
            make.member(guild_id, friend)
        finally:
            app.extensions["chatstore"].close()
        with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "2"}) as server:
            client = JsonClient(server.url, bot.token)
            first = None
            for body in corpus_messages():
                message = _post_within_rate_limits(client, f"/channels/{corpus_channel}/messages", body)
                first = first or message["id"]
            _post_within_rate_limits(client, f"/channels/{corpus_channel}/messages", corpus_messages(first)[-1])
            config = {"base_url": server.url, "token": bot.token, "friend_token": friend.token,
                      "channel_id": channel_id, "corpus_channel_id": corpus_channel,
                      "image": base64.b64encode(IMAGE).decode(), "timeout": SCENARIO_TIMEOUT}
            report = run_scenario("discord_attachments_scenario.py", config, server)
            yield {"bot": bot, "friend": friend, "guilds": sorted([guild_id, other_guild])}, report


def test_one_file(observed):
    _, report = observed
    [attachment] = report["one"]
    assert (attachment["filename"], attachment["size"], attachment["description"], attachment["content_type"]) == \
        ("log.txt", len(LOG), "the log", "text/plain; charset=utf-8")
    assert report["one_downloaded"] == [sha(LOG)]


def test_several_files_and_an_image_with_its_dimensions(observed):
    _, report = observed
    picture, data, raw = report["several"]
    assert (picture["filename"], picture["content_type"], picture["width"], picture["height"]) == \
        ("picture.png", "image/png", 64, 48)
    assert (data["filename"], data["content_type"], data["width"]) == ("data.json", "application/json", None)
    assert raw["size"] == 256
    assert report["several_downloaded"] == [sha(IMAGE), sha(b"{}"), sha(bytes(range(256)))]


def test_an_edit_drops_an_attachment(observed):
    _, report = observed
    kept = [report["several"][0]["id"], report["several"][2]["id"]]
    assert [a["id"] for a in report["edited"]] == kept == report["edited_refetched"]


def test_a_dropped_attachment_no_longer_downloads(observed):
    _, report = observed
    dropped = report["several"][1]["url"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(dropped, timeout=10)
    assert refused.value.code == 404


def test_links_only_work_as_signed(observed):
    _, report = observed
    url = report["one"][0]["url"]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == LOG
    base, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&") if p)
    flipped = params["hm"][:-1] + ("0" if params["hm"][-1] != "0" else "1")
    for tampered in (f"{base}?ex={params['ex']}&is={params['is']}&hm={flipped}",
                     f"{base}?ex={int(params['ex'], 16) + 1:x}&is={params['is']}&hm={params['hm']}",
                     f"{base}?ex=1&is=0&hm={params['hm']}", base):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(tampered, timeout=10)
        assert refused.value.code == 404


def test_typing(observed):
    _, report = observed
    assert report["typed"] is True


def test_user_send_opens_a_dm_both_can_use(observed):
    seeded, report = observed
    assert report["dm"]["type"] == "private" and report["dm"]["content"] == "hi"
    assert report["dm"]["recipient"] == seeded["friend"].id
    assert report["dm_friend_view"]["type"] == "private"
    assert report["dm_friend_view"]["history"] == ["hi"]
    assert report["dm_friend_view"]["file"] == [sha(b"secret")]
    assert report["dm_answer"] == "hello back"


def test_fetch_guilds(observed):
    seeded, report = observed
    assert report["guilds"] == seeded["guilds"]
    assert [count for _, count in report["guilds_with_counts"]] == [2, 1]


def test_discord_py_reads_every_kind_of_stored_message(observed):
    _, report = observed
    corpus = list(reversed(report["corpus"]))  # oldest first, as sent
    assert len(corpus) == len(corpus_messages("0"))
    full, ten, components, _, link, reply = corpus
    assert full["timestamps"] == ["2026-12-06T04:30:00.123000+00:00"] and full["colors"] == [0xFFFFFF]
    assert len(full["embeds"][0]["fields"]) == 25
    assert len(ten["embeds"]) == 10 and ten["timestamps"][0] == "2026-01-01T00:00:00+00:00"
    assert components["components"] == [5, 5, 5, 5, 1]
    assert link["components"] == [1]
    assert reply["embeds"] == []
