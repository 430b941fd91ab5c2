"""Request schemas (pydantic). IDs arrive as strings (Discord's form) or integers (discord.py's): both parse.

Every schema names, in ``unsupported``, the fields Discord documents for its route that this service does not
implement: a request that gives one (not null) is refused with 400 naming it (app.api.parse_body), never
accepted and dropped. The OpenAPI document lists them (``x-discord-unsupported``), and a test sends each. Keys
Discord does not document are ignored, as Discord ignores them.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from app.api.rich_content import EMBED_TOTAL_LIMIT, ActionRow, AttachmentEntry, Components, Embed, WebUrl
from app.auth.permissions import OverwriteType, parse_permissions
from app.domain import GUILD_CREATABLE_CHANNEL_TYPES, MAX_POSITION, ChannelType, MessageReferenceType
from app.errors import InvalidForm
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


class Body(Schema):
    """A request body. Subclasses must set ``unsupported`` (possibly empty): building the OpenAPI document
    fails for a body that does not, so a new route cannot forget to say what it refuses."""

    unsupported: ClassVar[frozenset[str]]


class GuildCreate(Body):
    unsupported = frozenset({"region", "icon", "verification_level", "default_message_notifications",
                             "explicit_content_filter", "roles", "channels", "afk_channel_id", "afk_timeout",
                             "system_channel_id", "system_channel_flags"})

    name: Annotated[str, StringConstraints(min_length=2, max_length=100)]


class OverwriteIn(Schema):
    id: Snowflake
    type: OverwriteTypeValue
    allow: NullablePermissions = 0
    deny: NullablePermissions = 0

    def as_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "allow": self.allow or 0, "deny": self.deny or 0}


ChannelName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


#: Channel fields of voice, forum and media channels and of threads, which this service does not implement.
_CHANNEL_UNSUPPORTED = frozenset({
    "bitrate", "user_limit", "rtc_region", "video_quality_mode", "default_auto_archive_duration",
    "default_reaction_emoji", "available_tags", "default_sort_order", "default_forum_layout",
    "default_thread_rate_limit_per_user"})


#: The fields of a channel edit that only threads take (app.api.channels refuses them for other channels).
THREAD_EDIT_FIELDS = ("archived", "auto_archive_duration", "locked", "invitable", "applied_tags")
#: The fields of a channel edit that threads do not take.
NON_THREAD_EDIT_FIELDS = ("topic", "position", "permission_overwrites", "parent_id", "nsfw")
AutoArchiveDuration = Literal[60, 1440, 4320, 10080]
AppliedTags = Annotated[list[Snowflake], Field(max_length=5)]
SlowMode = Annotated[int, Field(ge=0, le=21600)]


class ChannelEdit(Body):
    """Discord's one body of PATCH /channels/{id}: a guild channel's fields, or a thread's."""

    unsupported = _CHANNEL_UNSUPPORTED | {"type", "flags", "icon"}

    name: ChannelName | None = None
    topic: Annotated[str, StringConstraints(max_length=1024)] | None = None
    position: Annotated[int, Field(ge=0, le=MAX_POSITION)] | None = None
    permission_overwrites: list[OverwriteIn] | None = None
    parent_id: Snowflake | None = None
    nsfw: bool | None = None
    rate_limit_per_user: SlowMode | None = None
    archived: bool | None = None
    auto_archive_duration: AutoArchiveDuration | None = None
    locked: bool | None = None
    invitable: bool | None = None
    applied_tags: AppliedTags | None = None


class ChannelCreate(ChannelEdit):
    """The fields of an edit, with a name required and the channel's type (which an edit cannot change)."""

    unsupported = _CHANNEL_UNSUPPORTED | frozenset(THREAD_EDIT_FIELDS)

    # A new channel is never a thread: these are refused unless absent, null or empty (which ask for nothing).
    archived: Any = None
    auto_archive_duration: Any = None
    locked: Any = None
    invitable: Any = None
    applied_tags: Any = None

    name: ChannelName
    type: CreatableChannelType | None = ChannelType.GUILD_TEXT


class OverwriteEdit(Body):
    unsupported = frozenset()

    type: OverwriteTypeValue
    allow: NullablePermissions = 0
    deny: NullablePermissions = 0


RoleColor = Annotated[int, Field(ge=0, le=0xFFFFFF)]


class RoleColors(Schema):
    """Discord's role colours; only the primary one is implemented, so the others must be absent or null."""

    model_config = ConfigDict(extra="forbid")

    primary_color: RoleColor
    secondary_color: None = None
    tertiary_color: None = None


class RoleCreate(Body):
    unsupported = frozenset({"icon", "unicode_emoji"})

    name: Annotated[str, StringConstraints(max_length=100)] | None = None
    permissions: NullablePermissions = None
    color: RoleColor | None = None
    colors: RoleColors | None = None
    hoist: bool | None = None
    mentionable: bool | None = None

    @model_validator(mode="after")
    def _primary_color_is_the_color(self):
        # discord.py (2.6 and later) sends the colour only as colors.primary_color.
        if self.colors is not None and self.color is None:
            self.color = self.colors.primary_color
        return self


class RoleEdit(RoleCreate):
    pass


class MemberAdd(Body):
    unsupported = frozenset({"mute", "deaf"})

    #: The added user's OAuth2 access token with the guilds.join scope, granted to the calling bot.
    access_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    nick: Annotated[str, StringConstraints(max_length=32)] | None = None
    roles: list[Snowflake] | None = None


def _timestamp(value: Any) -> Any:
    """An ISO 8601 time (one without an offset is UTC), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        except (ValueError, OverflowError):  # OverflowError: a valid time whose UTC is past year 9999
            pass
    raise PydanticCustomError("timestamp", "Could not parse {value}. Should be ISO8601.", {"value": repr(value)})


NullableTimestamp = Annotated[Any, BeforeValidator(_timestamp)]
Nick = Annotated[str, StringConstraints(max_length=32)]


class MemberEdit(Body):
    """PATCH /guilds/{id}/members/{user_id}. Keys given as null clear (nick, timeout); absent keys are kept."""

    unsupported = frozenset({"channel_id", "flags"})

    nick: Nick | None = None
    roles: Annotated[list[Snowflake], Field(max_length=250)] | None = None
    mute: bool | None = None
    deaf: bool | None = None
    communication_disabled_until: NullableTimestamp = None


class CurrentMemberEdit(Body):
    """PATCH /guilds/{id}/members/@me."""

    unsupported = frozenset({"banner", "avatar", "bio"})

    nick: Nick | None = None


DeleteMessageSeconds = Annotated[int, Field(ge=0, le=604800)]


class BanCreate(Body):
    unsupported = frozenset()

    delete_message_seconds: DeleteMessageSeconds | None = 0
    #: Deprecated by Discord for delete_message_seconds; still sent by older clients.
    delete_message_days: Annotated[int, Field(ge=0, le=7)] | None = None


class BulkBanCreate(Body):
    unsupported = frozenset()

    user_ids: Annotated[list[Snowflake], Field(min_length=1, max_length=200)]
    delete_message_seconds: DeleteMessageSeconds | None = 0


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


Embeds = Annotated[list[Embed], Field(max_length=10)]
Attachments = Annotated[list[AttachmentEntry], Field(max_length=10)]


class MessageEdit(Body):
    unsupported = frozenset()

    content: Content | None = None
    embeds: Embeds | None = None
    embed: Embed | None = None
    allowed_mentions: AllowedMentions | None = None
    flags: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    components: Components | None = None
    attachments: Attachments | None = None

    def fields(self) -> dict[str, Any]:
        """The fields given, embeds and components in their stored form."""
        fields = self.model_dump(exclude_unset=True, exclude={"embeds", "embed", "components", "attachments"})
        if self.embeds is not None or self.embed is not None:
            embeds = [*(self.embeds or ()), *([self.embed] if self.embed is not None else [])]
            _check_embed_total(embeds)
            fields["embeds"] = [embed.stored() for embed in embeds]
        if self.components is not None:
            fields["components"] = _stored_components(self.components)
        if self.attachments is not None:
            fields["attachments"] = [entry.model_dump(exclude_none=True) for entry in self.attachments]
        return fields


class MessageCreate(MessageEdit):
    unsupported = frozenset({"sticker_ids", "poll", "shared_client_theme"})

    nonce: Nonce = None
    enforce_nonce: bool | None = None
    tts: bool | None = None
    message_reference: MessageReferenceIn | None = None


def _check_embed_total(embeds: list[Embed]) -> None:
    total = sum(embed.characters() for embed in embeds)
    if total > EMBED_TOTAL_LIMIT:
        raise InvalidForm.field("embeds", "MESSAGE_EMBED_TOTAL_TOO_LONG",
                                f"Embed size exceeds maximum size of {EMBED_TOTAL_LIMIT}")


def _stored_components(rows: list[ActionRow]) -> list[dict[str, Any]]:
    """The rows as stored; custom ids are unique across a message, as Discord requires."""
    seen: set[str] = set()
    for row_index, row in enumerate(rows):
        for index, component in enumerate(row.components):
            if component.custom_id is None:
                continue
            if component.custom_id in seen:
                raise InvalidForm.field(("components", str(row_index), "components", str(index), "custom_id"),
                                        "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
            seen.add(component.custom_id)
    return [row.model_dump(exclude_none=True) for row in rows]


WebhookName = Annotated[str, StringConstraints(min_length=1, max_length=80)]
#: A webhook's avatar: the service keeps no images, so one given is refused rather than dropped.
_WEBHOOK_UNSUPPORTED = frozenset({"avatar"})


class WebhookCreate(Body):
    unsupported = _WEBHOOK_UNSUPPORTED

    name: WebhookName


class WebhookEdit(Body):
    unsupported = _WEBHOOK_UNSUPPORTED

    name: WebhookName | None = None
    channel_id: Snowflake | None = None


class WebhookTokenEdit(Body):
    """PATCH /webhooks/{id}/{token}: as Discord, no ``channel_id`` (moving a webhook needs MANAGE_WEBHOOKS)."""

    unsupported = _WEBHOOK_UNSUPPORTED | {"channel_id"}

    name: WebhookName | None = None


ThreadName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class WebhookExecute(MessageEdit):
    """POST /webhooks/{id}/{token}; ``thread_name`` starts a post in a forum or media channel. Forum tags
    (``applied_tags``) and polls are not implemented."""

    unsupported = frozenset({"applied_tags", "poll"})

    username: WebhookName | None = None
    avatar_url: WebUrl | None = None
    tts: bool | None = None
    thread_name: ThreadName | None = None


class WebhookMessageEdit(MessageEdit):
    unsupported = frozenset({"poll"})


class DMCreate(Body):
    unsupported = frozenset({"access_tokens", "nicks"})

    recipient_id: Snowflake


class BulkDelete(Body):
    unsupported = frozenset()

    messages: list[Snowflake]


class ThreadFromMessage(Body):
    """POST /channels/{id}/messages/{message_id}/threads."""

    unsupported = frozenset()

    name: ThreadName
    auto_archive_duration: AutoArchiveDuration | None = None
    rate_limit_per_user: SlowMode | None = None


class ForumMessage(MessageEdit):
    """The first message of a forum or media post; stickers are not implemented."""

    unsupported = frozenset({"sticker_ids"})

    sticker_ids: None = None


class ThreadCreate(ThreadFromMessage):
    """POST /channels/{id}/threads: a thread of a text or announcement channel, or a forum or media post (with
    ``message`` and ``applied_tags``)."""

    unsupported = frozenset()

    type: Literal[10, 11, 12] | None = None
    invitable: bool | None = None
    applied_tags: AppliedTags | None = None
    message: ForumMessage | None = None

    def fields(self) -> dict[str, Any]:
        fields = self.model_dump(exclude_unset=True, exclude={"message"})
        if self.message is not None:
            fields["message"] = self.message.fields()
        return fields
