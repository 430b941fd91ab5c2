"""The domain's names carry Discord's numbers: checked against discord.py, the client the API must satisfy."""
from __future__ import annotations

import discord
import pytest

from app.domain import ChannelType, MessageReferenceType, MessageType

#: Types discord.py knows that Discord does not document (guild_stream, emoji_added): not ours to name.
UNDOCUMENTED_MESSAGE_TYPES = {13, 63}


@pytest.mark.parametrize("theirs", list(discord.ChannelType), ids=lambda t: t.name)
def test_every_channel_type_discord_py_knows_has_our_name(theirs):
    assert theirs.value in {ours.value for ours in ChannelType}


@pytest.mark.parametrize("theirs", [t for t in discord.MessageType if t.value not in UNDOCUMENTED_MESSAGE_TYPES],
                         ids=lambda t: t.name)
def test_every_documented_message_type_discord_py_knows_has_our_name(theirs):
    assert theirs.value in {ours.value for ours in MessageType}


def test_names_that_match_discord_py_have_its_values():
    pairs = [(MessageType.DEFAULT, discord.MessageType.default), (MessageType.REPLY, discord.MessageType.reply),
             (MessageType.CHANNEL_PINNED_MESSAGE, discord.MessageType.pins_add),
             (MessageType.THREAD_STARTER_MESSAGE, discord.MessageType.thread_starter_message),
             (ChannelType.GUILD_TEXT, discord.ChannelType.text),
             (ChannelType.GUILD_ANNOUNCEMENT, discord.ChannelType.news),
             (ChannelType.GUILD_CATEGORY, discord.ChannelType.category),
             (ChannelType.GUILD_FORUM, discord.ChannelType.forum),
             (MessageReferenceType.DEFAULT, discord.MessageReferenceType.default),
             (MessageReferenceType.FORWARD, discord.MessageReferenceType.forward)]
    assert [ours.value for ours, _ in pairs] == [theirs.value for _, theirs in pairs]
