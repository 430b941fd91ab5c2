"""A rebuild indexes a stored message as the live indexer indexes its event: the same ``has:`` flags."""
from __future__ import annotations

import orjson

from app.messages.base import Message
from app.search.base import Has
from app.search.documents import document_of
from app.search.reindex import stored_message_object


def test_a_stored_message_with_an_image_has_file_and_image_as_its_event_does():
    record = {"id": "11", "filename": "cat.png", "size": 3, "content_type": "image/png", "width": 1, "height": 1}
    message = Message(id=100, channel_id=10, author_id=7, content="look",
                      attachments_json=orjson.dumps([record]).decode())
    event_object = {"id": "100", "channel_id": "10", "author": {"id": "7"}, "content": "look",
                    "attachments": [{**record, "url": "https://cdn/cat.png", "proxy_url": "https://cdn/cat.png"}]}
    rebuilt = document_of(1, stored_message_object(message, author_is_bot=False))
    live = document_of(1, event_object)
    assert rebuilt.has == live.has
    assert rebuilt.has & Has.FILE and rebuilt.has & Has.IMAGE
