"""Rows for tests that serve a real gunicorn: a migrated SQLite file, or any URL, with users and a guild."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.extensions import Resources
from config import Settings
from tests.support.databases import migrated_database
from tests.support.factories import Actor, Factory


@dataclass
class World:
    owner: Actor
    guild_id: int
    channel_ids: list[int]


def seed(settings: Settings, channels: int = 1) -> World:
    """An owner with a guild of ``channels`` text channels, written through the service's own code paths."""
    resources = Resources(settings)
    try:
        make = Factory(resources)
        owner = make.actor()
        guild_id, general = make.guild(owner)
        return World(owner, guild_id, [general] + [make.channel(guild_id, f"c{i}") for i in range(channels - 1)])
    finally:
        resources.close()


def sqlite_settings(directory: Path):
    """A migrated SQLite database in ``directory`` (a context manager yielding Settings)."""
    return migrated_database("sqlite", directory)
