"""Request schemas (pydantic). IDs arrive as strings (Discord's form) or integers (discord.py's): both parse.

Unknown fields are ignored, as Discord ignores them: clients send fields this service does not model.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from app.auth.permissions import OverwriteType, parse_permissions
from app.domain import GUILD_CREATABLE_CHANNEL_TYPES, MAX_POSITION, ChannelType, MessageReferenceType
from app.ids import InvalidSnowflake, parse_snowflake


def _snowflake(value: Any) -> int:
    try:
        return parse_snowflake(value)
    except InvalidSnowflake:
        # A type of its own, so that app.api.form_errors can answer Discord's NUMBER_TYPE_COERCE for it.
        raise PydanticCustomError("snowflake", "is not snowflake") from None


def _permissions(value: Any) -> int:
    return parse_permissions(value)


Snowflake = Annotated[int, BeforeValidator(_snowflake)]
Permissions = Annotated[int, BeforeValidator(_permissions)]
NullablePermissions = Annotated[int | None, BeforeValidator(lambda v: None if v is None else _permissions(v))]


def _one_of(members) -> Any:
    """A Literal of the members' plain integers, so validation errors and the OpenAPI document show ``0 or 1``
    as before, not enum reprs such as ``<ChannelType.GUILD_TEXT: 0>``."""
    return Literal[tuple(sorted(int(member) for member in members))]


OverwriteTypeValue = _one_of(OverwriteType)
CreatableChannelType = _one_of(GUILD_CREATABLE_CHANNEL_TYPES)
MessageReferenceTypeValue = _one_of(MessageReferenceType)


class Schema(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class GuildCreate(Schema):
    name: Annotated[str, StringConstraints(min_length=2, max_length=100)]


class OverwriteIn(Schema):
    id: Snowflake
    type: OverwriteTypeValue
    allow: NullablePermissions = 0
    deny: NullablePermissions = 0

    def as_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "allow": self.allow or 0, "deny": self.deny or 0}


ChannelName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ChannelEdit(Schema):
    name: ChannelName | None = None
    topic: Annotated[str, StringConstraints(max_length=1024)] | None = None
    position: Annotated[int, Field(ge=0, le=MAX_POSITION)] | None = None
    permission_overwrites: list[OverwriteIn] | None = None
    parent_id: Snowflake | None = None
    nsfw: bool | None = None
    rate_limit_per_user: Annotated[int, Field(ge=0, le=21600)] | None = None


class ChannelCreate(ChannelEdit):
    """The fields of an edit, with a name required and the channel's type (which an edit cannot change)."""

    name: ChannelName
    type: CreatableChannelType | None = ChannelType.GUILD_TEXT


class OverwriteEdit(Schema):
    type: OverwriteTypeValue
    allow: NullablePermissions = 0
    deny: NullablePermissions = 0


class RoleCreate(Schema):
    name: Annotated[str, StringConstraints(max_length=100)] | None = None
    permissions: NullablePermissions = None
    color: Annotated[int, Field(ge=0, le=0xFFFFFF)] | None = None
    hoist: bool | None = None
    mentionable: bool | None = None


class RoleEdit(RoleCreate):
    pass


class MemberAdd(Schema):
    #: The added user's OAuth2 access token with the guilds.join scope, granted to the calling bot.
    access_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    nick: Annotated[str, StringConstraints(max_length=32)] | None = None
    roles: list[Snowflake] | None = None


class AllowedMentions(Schema):
    parse: list[Literal["users", "roles", "everyone"]] | None = None
    users: Annotated[list[Snowflake], Field(max_length=100)] | None = None
    roles: Annotated[list[Snowflake], Field(max_length=100)] | None = None
    replied_user: bool | None = None


class MessageReferenceIn(Schema):
    type: MessageReferenceTypeValue | None = MessageReferenceType.DEFAULT
    message_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    guild_id: Snowflake | None = None
    fail_if_not_exists: bool | None = True


def _nonce(value: Any) -> str | int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= 25:
        return value
    raise ValueError("nonce must be an integer or a string of at most 25 characters")


Nonce = Annotated[str | int | None, BeforeValidator(_nonce)]
Content = Annotated[str, StringConstraints(max_length=2000)]


class MessageCreate(Schema):
    content: Content | None = None
    nonce: Nonce = None
    enforce_nonce: bool | None = None
    tts: bool | None = None
    embeds: Annotated[list[dict[str, Any]], Field(max_length=10)] | None = None
    embed: dict[str, Any] | None = None
    allowed_mentions: AllowedMentions | None = None
    message_reference: MessageReferenceIn | None = None
    flags: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


class MessageEdit(Schema):
    content: Content | None = None
    embeds: Annotated[list[dict[str, Any]], Field(max_length=10)] | None = None
    embed: dict[str, Any] | None = None
    allowed_mentions: AllowedMentions | None = None
    flags: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


class BulkDelete(Schema):
    messages: list[Snowflake]
