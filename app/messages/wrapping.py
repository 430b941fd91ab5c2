"""Store wrappers that act after writes: every MessageStore method a wrapper does not define goes to its
``inner`` store, and after each write (successful or not, since a failed write may still have landed) the
wrapper is told which channel was written."""
from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Callable

from app.messages.base import MessageStore

#: Interface methods that change what a channel's reads return, with how to find that channel in their arguments.
WRITE_METHODS: dict[str, Callable[[dict], int]] = {
    "create_message": lambda arguments: arguments["message"].channel_id,
    **{name: lambda arguments: arguments["channel_id"] for name in (
        "update_message", "delete_messages", "delete_channel", "add_reaction", "remove_reaction", "remove_emoji",
        "clear_reactions", "pin_message", "unpin_message")},
}


def _delegated(name: str):
    @functools.wraps(getattr(MessageStore, name), updated=())
    def call(self, *args, **kwargs):
        return getattr(self.inner, name)(*args, **kwargs)
    return call


def _write(name: str, after_write: Callable[[MessageStore, int], None]):
    interface_method = getattr(MessageStore, name)
    signature = inspect.signature(interface_method)
    channel_of = WRITE_METHODS[name]

    @functools.wraps(interface_method, updated=())
    def call(self, *args, **kwargs):
        try:
            return getattr(self.inner, name)(*args, **kwargs)
        finally:
            after_write(self, channel_of(signature.bind(self, *args, **kwargs).arguments))
    return call


def wrap_interface(wrapper: type[MessageStore], after_write: Callable[[MessageStore, int], None]) -> None:
    """Give ``wrapper`` every interface method it does not define, so one added to MessageStore needs no change
    in any wrapper."""
    for name, member in vars(MessageStore).items():
        if not callable(member) or name.startswith("__") or name in vars(wrapper):
            continue
        setattr(wrapper, name, _write(name, after_write) if name in WRITE_METHODS else _delegated(name))
    abc.update_abstractmethods(wrapper)
