"""Domain errors with Discord's JSON codes. The API maps them to HTTP in one place (app.api.errors).

``errors`` follows Discord's nested form: keys follow the JSON path, leaves are
``{"_errors": [{"code": "...", "message": "..."}]}``.
"""
from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 400
    code = 0
    message = "Bad Request"

    def __init__(self, message: str | None = None, *, errors: dict[str, Any] | None = None):
        super().__init__(message or self.message)
        if message:
            self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


class Unauthorized(AppError):
    status, code, message = 401, 0, "401: Unauthorized"




class UnknownChannel(AppError):
    status, code, message = 404, 10003, "Unknown Channel"


class UnknownGuild(AppError):
    status, code, message = 404, 10004, "Unknown Guild"


class UnknownMember(AppError):
    status, code, message = 404, 10007, "Unknown Member"


class UnknownMessage(AppError):
    status, code, message = 404, 10008, "Unknown Message"


class UnknownOverwrite(AppError):
    status, code, message = 404, 10009, "Unknown Overwrite"


class UnknownRole(AppError):
    status, code, message = 404, 10011, "Unknown Role"


class UnknownUser(AppError):
    status, code, message = 404, 10013, "Unknown User"


class UnknownBan(AppError):
    status, code, message = 404, 10026, "Unknown Ban"


class UserBanned(AppError):
    """Adding a banned user to the guild (PUT .../members/{user_id}) until they are unbanned."""

    status, code, message = 403, 40007, "The user is banned from this guild."


class BulkBanFailed(AppError):
    """A bulk ban that banned nobody, as Discord answers it."""

    status, code, message = 400, 500000, "Failed to ban users"


class UnknownEmoji(AppError):
    status, code, message = 400, 10014, "Unknown Emoji"


class UnknownWebhook(AppError):
    status, code, message = 404, 10015, "Unknown Webhook"


class InvalidWebhookToken(AppError):
    status, code, message = 401, 50027, "Invalid Webhook Token"


class MaxWebhooks(AppError):
    status, code = 400, 30007

    def __init__(self, limit: int):
        super().__init__(f"Maximum number of webhooks reached ({limit})")


class MaxPins(AppError):
    status, code = 400, 30003

    def __init__(self, limit: int):
        super().__init__(f"Maximum number of pins reached ({limit})")


class MaxReactions(AppError):
    status, code, message = 400, 30010, "Maximum number of reactions reached (20)"



class MissingAccess(AppError):
    status, code, message = 403, 50001, "Missing Access"


class InvalidAccessToken(AppError):
    """An OAuth2 access token that is unknown, expired, revoked, of another user, granted to another client, or
    without the scope the route needs: Discord answers all of these alike."""

    status, code, message = 403, 50025, "Invalid OAuth2 access token"



class CannotEditOthersMessage(AppError):
    status, code, message = 403, 50005, "Cannot edit a message authored by another user"


class EmptyMessage(AppError):
    status, code, message = 400, 50006, "Cannot send an empty message"


class NonTextChannel(AppError):
    status, code, message = 400, 50008, "Cannot send messages in a non-text channel"


class MissingPermissions(AppError):
    status, code, message = 403, 50013, "Missing Permissions"


class BulkDeleteCount(AppError):
    status, code, message = 400, 50016, "You must provide at least 2 and fewer than 100 messages to delete."



class SystemMessageAction(AppError):
    status, code, message = 400, 50021, "Cannot execute action on a system message"



class BulkDeleteTooOld(AppError):
    status, code, message = 400, 50034, "You can only bulk delete messages that are under 14 days old."


class CannotMessageUser(AppError):
    status, code, message = 403, 50007, "Cannot send messages to this user"


class DMChannelAction(AppError):
    status, code, message = 400, 50003, "Cannot execute action on a DM channel"


class UnknownAttachment(AppError):
    status, code, message = 404, 10000, "404: Not Found"


class InvalidForm(AppError):
    status, code, message = 400, 50035, "Invalid Form Body"

    @classmethod
    def field(cls, path: str | tuple[str, ...], code: str, message: str) -> InvalidForm:
        """An error on one field; ``path`` is dotted or a tuple of keys (array indices as strings)."""
        keys = path.split(".") if isinstance(path, str) else path
        leaf: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
        for key in reversed(keys):
            leaf = {str(key): leaf}
        return cls(errors=leaf)


class InvalidJSON(AppError):
    status, code, message = 400, 50109, "The request body contains invalid JSON."


class CannotReplyWithoutHistory(AppError):
    status, code, message = 403, 160002, "Cannot reply without permission to read message history"


class ChannelTypeAction(AppError):
    status, code, message = 400, 50024, "Cannot execute action on this channel type"


class ThreadArchived(AppError):
    status, code, message = 400, 50083, "Thread is archived"


class ThreadArchivedLocked(ThreadArchived):
    """Sending to an archived thread that is locked, without MANAGE_THREADS to reopen it: Discord's 403."""

    status = 403


class ThreadExists(AppError):
    status, code, message = 400, 160004, "A thread has already been created for this message"


class ThreadLocked(AppError):
    status, code, message = 403, 160005, "Thread is locked"


class WebhookForumNeedsThread(AppError):
    """Executing a forum or media channel's webhook without ``thread_id`` or ``thread_name``."""

    status, code, message = 400, 220001, "Webhooks posted to forum channels must have a thread_name or thread_id"


class WebhookThreadNameAndId(AppError):
    status, code, message = 400, 220002, "Webhooks posted to forum channels cannot have both a thread_name and " \
                                         "thread_id"


class WebhookThreadsForumOnly(AppError):
    status, code, message = 400, 220003, "Webhooks can only create threads in forum channels"


class ServiceUnavailable(AppError):
    """A backing store did not answer in time. Clients should retry after ``retry_after`` seconds."""

    status, code, message = 503, 0, "Service temporarily unavailable, retry later."

    def __init__(self, message: str | None = None, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class SearchIndexNotReady(AppError):
    """The guild's search index is being built: Discord answers such a search 202 with this body."""

    status, code, message = 202, 110000, "Index not yet available. Try again later"

    def __init__(self, *, documents_indexed: int, retry_after: float = 2.0):
        super().__init__()
        self.documents_indexed = documents_indexed
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code, "retry_after": self.retry_after,
                "documents_indexed": self.documents_indexed}
