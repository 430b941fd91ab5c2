"""Emoji as Discord's URLs carry them, and as the message store keeps them on reactions."""
from __future__ import annotations

import re
from dataclasses import dataclass

import emoji as emoji_data

from app.errors import UnknownEmoji
from app.ids import InvalidSnowflake, parse_snowflake

# Custom emoji arrive as name:id, or as :name:id / a:name:id when a client strips "<>" from "<:name:id>".
_CUSTOM_EMOJI = re.compile(r"^(?:a?:)?([A-Za-z0-9_~]{1,32}):([0-9]{1,20})$")


@dataclass(frozen=True)
class Emoji:
    """``key`` is what the store keeps: the unicode emoji itself, or ``name:id``."""

    key: str
    name: str
    id: int | None

    def as_json(self) -> dict:
        if self.id is None:
            return {"id": None, "name": self.name}
        return {"id": str(self.id), "name": self.name, "animated": False}


def parse_emoji(raw: str) -> Emoji:
    custom = _CUSTOM_EMOJI.match(raw)
    if custom:
        try:
            emoji_id = parse_snowflake(custom.group(2))
        except InvalidSnowflake:
            raise UnknownEmoji() from None
        name = custom.group(1)
        return Emoji(key=f"{name}:{emoji_id}", name=name, id=emoji_id)
    if 0 < len(raw) <= 32 and emoji_data.is_emoji(raw):
        return Emoji(key=raw, name=raw, id=None)
    raise UnknownEmoji()


def emoji_from_key(key: str) -> Emoji:
    name, sep, emoji_id = key.rpartition(":")
    if sep and emoji_id.isascii() and emoji_id.isdigit():
        return Emoji(key=key, name=name, id=int(emoji_id))
    return Emoji(key=key, name=key, id=None)
