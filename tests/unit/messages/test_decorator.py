"""StoreDecorator: every interface method reaches ``inner`` through ``call``, each write tells ``written``, and
``layer`` finds a store by kind whatever the stacking order."""
from __future__ import annotations

import inspect
from datetime import datetime, timezone

import pytest

from app.messages.base import WRITE_METHODS, Message, MessageStore, StoreDecorator
from app.messages.coalescing import CoalescingMessageStore
from app.messages.instrumented import InstrumentedMessageStore

CHANNEL = 7


class Recorder(MessageStore):
    """A store that answers every interface method by recording its name and arguments."""

    backend = "recorder"

    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []


def _recording(name: str):
    def record(self, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        return name
    return record


INTERFACE = sorted(name for name, member in vars(MessageStore).items()
                   if callable(member) and not name.startswith("__")
                   and name not in ("layer", "_read_buckets", "joins_transactions_of"))
for _name in INTERFACE:
    setattr(Recorder, _name, _recording(_name))
Recorder.__abstractmethods__ = frozenset()


class Watching(StoreDecorator):
    def __init__(self, inner):
        super().__init__(inner)
        self.operations: list[str] = []
        self.written_channels: list[int] = []

    def call(self, operation, method, *args, **kwargs):
        self.operations.append(operation)
        return method(*args, **kwargs)

    def written(self, channel_id):
        self.written_channels.append(channel_id)


def arguments_for(name: str) -> tuple[tuple, dict]:
    """Positional and keyword arguments that fit the interface method ``name``, with the channel CHANNEL."""
    message = Message(id=1 << 40, channel_id=CHANNEL, author_id=1)
    values = {"channel_id": CHANNEL, "message": message, "message_id": 1 << 40, "message_ids": [1 << 40],
              "changes": {}, "emoji": "x", "user_id": 1, "pinned_at": datetime.now(timezone.utc), "bucket": 1,
              "after": None, "before": None, "limit": 1, "oldest_first": False, "viewer_id": 1, "author_id": 1,
              "nonce": "n", "ttl_seconds": 1, "keys": [(CHANNEL, 1 << 40)], "guild_id": 1, "since": 1}
    args, kwargs = [], {}
    for parameter in list(inspect.signature(getattr(MessageStore, name)).parameters.values())[1:]:
        if parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = values[parameter.name]
        else:
            args.append(values[parameter.name])
    return tuple(args), kwargs


def test_the_declared_writes_are_interface_methods():
    assert WRITE_METHODS <= set(INTERFACE)


@pytest.mark.parametrize("name", [n for n in INTERFACE if not n.startswith("_") and n != "close"])
def test_every_interface_method_reaches_inner_through_call(name):
    inner = Recorder()
    store = Watching(inner)
    args, kwargs = arguments_for(name)

    assert getattr(store, name)(*args, **kwargs) == name
    assert inner.calls == [(name, args, kwargs)]
    assert store.operations == [name]
    assert store.written_channels == ([CHANNEL] if name in WRITE_METHODS else [])


def test_a_failed_write_still_tells_written():
    inner = Recorder()

    def fail(*_args):
        raise RuntimeError("timed out after the write landed")

    inner.delete_messages = fail
    store = Watching(inner)
    with pytest.raises(RuntimeError):
        store.delete_messages(CHANNEL, [1])
    assert store.written_channels == [CHANNEL]


def test_bucket_reads_and_close_go_straight_to_inner():
    inner = Recorder()
    store = Watching(inner)
    store._read_bucket(CHANNEL, 1, after=None, before=None, limit=1, oldest_first=False)
    store.close()
    assert [call[0] for call in inner.calls] == ["_read_bucket", "close"]
    assert store.operations == []


def test_layer_finds_each_store_of_the_stack_by_kind():
    backend = Recorder()
    coalescing = CoalescingMessageStore(backend)
    outer = InstrumentedMessageStore(coalescing)

    assert outer.layer(InstrumentedMessageStore) is outer
    assert outer.layer(CoalescingMessageStore) is coalescing
    assert outer.layer(Recorder) is backend
    assert outer.backend == "recorder"
    with pytest.raises(LookupError):
        coalescing.layer(InstrumentedMessageStore)


def test_decorator_methods_carry_the_interface_contract():
    assert StoreDecorator.list_messages.__doc__ == MessageStore.list_messages.__doc__
    assert StoreDecorator.create_message.__doc__ == MessageStore.create_message.__doc__
