"""Request schemas of what a message carries besides its text: embeds, components and attachment entries, checked
the way Discord checks them (types, ranges, lengths, counts, URL schemes), so that nothing stored can break a
client that reads it back (https://discord.com/developers/docs/resources/message#embed-object,
https://discord.com/developers/docs/components/reference).

Unknown keys inside these objects are refused (400 naming them) rather than stored or silently dropped.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from app.ids import InvalidSnowflake, parse_snowflake

#: Discord's limits on embeds.
EMBED_TOTAL_LIMIT = 6000
MAX_URL_LENGTH = 2048
_WEB_SCHEMES = ("http://", "https://")
_MEDIA_SCHEMES = (*_WEB_SCHEMES, "attachment://")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _url(schemes: tuple[str, ...]):
    def check(value: str) -> str:
        if not value.lower().startswith(schemes) or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value):
            raise PydanticCustomError("url_scheme", "Scheme \"{scheme}\" is not supported. Scheme must be one of "
                                      "{allowed}.", {"scheme": value.split(":", 1)[0][:16],
                                                     "allowed": ", ".join(s[:-3] for s in schemes)})
        return value
    return Annotated[str, AfterValidator(check)]


WebUrl = _url(_WEB_SCHEMES)
MediaUrl = _url(_MEDIA_SCHEMES)


def _text(max_length: int, min_length: int = 0):
    return Annotated[str, StringConstraints(max_length=max_length, min_length=min_length)]


def _timestamp(value: Any) -> str:
    """An ISO 8601 time, stored in Discord's form (UTC, microseconds, ``+00:00``) which every client parses."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
            try:
                return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
            except OverflowError:
                pass
    raise PydanticCustomError("timestamp", 'Could not parse "{value}". Should be ISO8601.',
                              {"value": str(value)[:64]})


Timestamp = Annotated[Any, AfterValidator(_timestamp)]
Dimension = Annotated[int, Field(ge=0, le=2**31 - 1)]


class EmbedFooter(Strict):
    text: _text(2048)
    icon_url: MediaUrl | None = None
    proxy_icon_url: MediaUrl | None = None


class EmbedMedia(Strict):
    url: MediaUrl
    proxy_url: MediaUrl | None = None
    height: Dimension | None = None
    width: Dimension | None = None


class EmbedVideo(Strict):
    url: MediaUrl | None = None
    proxy_url: MediaUrl | None = None
    height: Dimension | None = None
    width: Dimension | None = None


class EmbedProvider(Strict):
    name: _text(256) | None = None
    url: WebUrl | None = None


class EmbedAuthor(Strict):
    name: _text(256)
    url: WebUrl | None = None
    icon_url: MediaUrl | None = None
    proxy_icon_url: MediaUrl | None = None


class EmbedField(Strict):
    name: _text(256)
    value: _text(1024)
    inline: StrictBool | None = None


class Embed(Strict):
    title: _text(256) | None = None
    # Discord makes every embed a client sends "rich", whatever it says.
    type: _text(32) | None = None
    description: _text(4096) | None = None
    url: WebUrl | None = None
    timestamp: Timestamp | None = None
    color: Annotated[int, Field(ge=0, le=0xFFFFFF)] | None = None
    footer: EmbedFooter | None = None
    image: EmbedMedia | None = None
    thumbnail: EmbedMedia | None = None
    video: EmbedVideo | None = None
    provider: EmbedProvider | None = None
    author: EmbedAuthor | None = None
    fields: Annotated[list[EmbedField], Field(max_length=25)] | None = None

    def characters(self) -> int:
        """What counts toward Discord's 6000 characters across a message's embeds."""
        texts = [self.title, self.description, self.footer and self.footer.text, self.author and self.author.name]
        texts += [text for field in self.fields or () for text in (field.name, field.value)]
        return sum(len(text) for text in texts if text)

    def stored(self) -> dict[str, Any]:
        return {**self.model_dump(exclude_none=True), "type": "rich"}


def _snowflake_text(value: Any) -> str:
    try:
        return str(parse_snowflake(value))
    except InvalidSnowflake:
        raise PydanticCustomError("snowflake", "is not snowflake") from None


SnowflakeText = Annotated[Any, AfterValidator(_snowflake_text)]
CustomId = _text(100, 1)


class PartialEmoji(Strict):
    id: SnowflakeText | None = None
    name: _text(32) | None = None
    animated: StrictBool | None = None

    @model_validator(mode="after")
    def _named_or_custom(self):
        if self.id is None and not self.name:
            raise PydanticCustomError("emoji", "An emoji needs an id or a name.")
        return self


class Button(Strict):
    type: Literal[2]
    style: Literal[1, 2, 3, 4, 5]
    label: _text(80) | None = None
    emoji: PartialEmoji | None = None
    custom_id: CustomId | None = None
    url: WebUrl | None = None
    disabled: StrictBool | None = None
    id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None

    @model_validator(mode="after")
    def _link_or_custom(self):
        if self.style == 5 and (self.url is None or self.custom_id is not None):
            raise PydanticCustomError("button", "A link button (style 5) has a url and no custom_id.")
        if self.style != 5 and (self.custom_id is None or self.url is not None):
            raise PydanticCustomError("button", "A button of styles 1 to 4 has a custom_id and no url.")
        if self.label is None and self.emoji is None:
            raise PydanticCustomError("button", "A button needs a label or an emoji.")
        return self


class SelectOption(Strict):
    label: _text(100, 1)
    value: _text(100, 1)
    description: _text(100) | None = None
    emoji: PartialEmoji | None = None
    default: StrictBool | None = None


class SelectDefault(Strict):
    id: SnowflakeText
    type: Literal["user", "role", "channel"]


class SelectMenu(Strict):
    type: Literal[3, 5, 6, 7, 8]
    custom_id: CustomId
    options: Annotated[list[SelectOption], Field(min_length=1, max_length=25)] | None = None
    channel_types: Annotated[list[Annotated[int, Field(ge=0, le=16)]], Field(max_length=16)] | None = None
    placeholder: _text(150) | None = None
    default_values: Annotated[list[SelectDefault], Field(max_length=25)] | None = None
    min_values: Annotated[int, Field(ge=0, le=25)] | None = None
    max_values: Annotated[int, Field(ge=1, le=25)] | None = None
    disabled: StrictBool | None = None
    id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None

    @model_validator(mode="after")
    def _options_for_string_selects(self):
        if (self.type == 3) != (self.options is not None):
            raise PydanticCustomError("select", "A string select (type 3), and only it, has options.")
        if self.channel_types is not None and self.type != 8:
            raise PydanticCustomError("select", "Only a channel select (type 8) has channel_types.")
        if self.min_values is not None and self.max_values is not None and self.min_values > self.max_values:
            raise PydanticCustomError("select", "min_values must not exceed max_values.")
        return self


class ActionRow(Strict):
    type: Literal[1]
    components: Annotated[list[Button | SelectMenu], Field(min_length=1, max_length=5)]
    id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None

    @model_validator(mode="after")
    def _buttons_or_one_select(self):
        selects = [c for c in self.components if isinstance(c, SelectMenu)]
        if selects and len(self.components) > 1:
            raise PydanticCustomError("action_row", "An action row holds up to 5 buttons or a single select menu.")
        return self


Components = Annotated[list[ActionRow], Field(max_length=5)]


class AttachmentEntry(Strict):
    """An ``attachments`` entry: ``id`` is n of an uploaded ``files[n]`` or, in an edit, an attachment to keep.
    Other keys of an attachment object (url, size, content_type... as discord.py sends kept ones back) are what
    the service itself served: read-only, so ignored."""

    model_config = ConfigDict(extra="ignore")

    id: int | str
    filename: _text(1024, 1) | None = None
    description: _text(1024) | None = None
    title: _text(1024) | None = None
