"""A write's transaction on PostgreSQL as one query (models.base.execute_later): the store's writes whose results
nothing reads wait, with the BEGIN, for the transaction's next statement, and go to the server with it."""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timezone
from types import SimpleNamespace

import gevent
import psycopg2.extras
import pytest
from psycopg2 import extensions
from sqlalchemy import event, func, select, text
from sqlalchemy import exc as sa_exc

import models.base
from app.events import outbox
from app.events.base import Event
from app.messages import instrumented
from app.messages.base import Message, StoreUnavailable
from app.services.channel_writes import ChannelWrites
from models import Channel
from models.base import shared_transaction, when_transaction_ends
from tests.ops.conftest import sample
from tests.support.databases import pooled_driver_connections

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)


@pytest.fixture
def channel(make):
    owner = make.actor("owner")
    guild_id, channel_id = make.guild(owner)
    return owner, channel_id, guild_id


@contextmanager
def round_trips():
    """The queries this greenlet sends, by psycopg2 connection: each waits for its answer through the wait
    callback once, however many statements it holds."""
    counted: Counter = Counter()
    waiting = extensions.get_wait_callback() or psycopg2.extras.wait_select
    me = gevent.getcurrent()

    def wait(connection):
        if gevent.getcurrent() is me:
            counted[connection] += 1
        return waiting(connection)

    extensions.set_wait_callback(wait)
    try:
        yield counted
    finally:
        extensions.set_wait_callback(waiting if waiting is not psycopg2.extras.wait_select else None)


def _message(resources, channel_id: int, author_id: int, **fields) -> Message:
    return Message(id=resources.ids.next_id(), channel_id=channel_id, author_id=author_id, **fields)


def _event(resources, channel_id: int, guild_id: int) -> Event:
    return Event(id=resources.ids.next_id(), type="MESSAGE_CREATE", guild_id=guild_id, channel_id=channel_id)


def _state(resources, channel_id: int):
    """The channel's bookkeeping and the outbox's size."""
    with resources.engine.connect() as connection:
        row = connection.execute(select(Channel.messages_version, Channel.last_message_id)
                                 .where(Channel.id == channel_id)).one()
        return tuple(row), connection.execute(select(func.count()).select_from(outbox.event_outbox)).scalar()


def test_a_create_is_one_round_trip(resources, channel):
    owner, channel_id, guild_id = channel
    message = _message(resources, channel_id, owner.id, content="one query")
    store = resources.message_store
    with round_trips() as counted:
        ChannelWrites(resources.engine, store).apply(
            channel_id, lambda: store.create_message(message), created=message.id,
            events=lambda _: [_event(resources, channel_id, guild_id)])
    assert list(counted.values()) == [1]
    assert store.get_message(channel_id, message.id) == message
    assert store.channel_buckets(channel_id) == [message.bucket]
    assert _state(resources, channel_id)[0][1] == message.id
    # The connection goes back to the pool with the driver's own cursors.
    assert not any([driver.cursor_factory for driver in pooled_driver_connections(resources.engine)])


@pytest.mark.parametrize("write", ["add_reaction", "remove_reaction", "remove_emoji", "clear_reactions",
                                   "unpin_message"])
def test_a_reaction_or_an_unpin_is_one_round_trip(resources, channel, write):
    owner, channel_id, _guild_id = channel
    store = resources.message_store
    message = _message(resources, channel_id, owner.id, pinned=True)
    store.create_message(message)
    store.add_reaction(channel_id, message.id, "👍", owner.id)
    arguments = {"add_reaction": ("🎉", owner.id), "remove_reaction": ("👍", owner.id), "remove_emoji": ("👍",),
                 "clear_reactions": (), "unpin_message": ()}[write]
    with round_trips() as counted:
        ChannelWrites(resources.engine, store).apply(
            channel_id, lambda: getattr(store, write)(channel_id, message.id, *arguments))
    assert list(counted.values()) == [1]
    emojis = [count.emoji for count in store.reaction_counts(channel_id, [message.id], owner.id).get(message.id, [])]
    assert emojis == {"add_reaction": ["👍", "🎉"], "unpin_message": ["👍"]}.get(write, [])
    assert store.get_message(channel_id, message.id).pinned == (write != "unpin_message")


def test_a_delete_sends_its_statements_with_the_read_of_last_message_id(resources, channel):
    """The bookkeeping's read sees the deletion it travels with: deleting the newest message moves
    last_message_id back to the one before."""
    owner, channel_id, _guild_id = channel
    store = resources.message_store
    writes = ChannelWrites(resources.engine, store)
    older, middle, newest = (_message(resources, channel_id, owner.id, content=f"m{n}") for n in range(3))
    for message in (older, middle, newest):
        writes.apply(channel_id, lambda message=message: store.create_message(message), created=message.id)
    store.add_reaction(channel_id, middle.id, "👍", owner.id)
    with round_trips() as counted:
        writes.apply(channel_id, lambda: store.delete_messages(channel_id, [middle.id]), deleted={middle.id})
    # BEGIN and the three DELETEs with the SELECT of last_message_id; the bookkeeping with the COMMIT.
    assert list(counted.values()) == [2]
    assert store.get_message(channel_id, middle.id) is None
    assert store.reaction_counts(channel_id, [middle.id], owner.id) == {}
    writes.apply(channel_id, lambda: store.delete_messages(channel_id, [newest.id]), deleted={newest.id})
    assert _state(resources, channel_id)[0][1] == older.id


def test_a_message_with_every_field_is_sent_as_psycopg2_sends_it(resources, channel):
    """The writes held back are rendered exactly as SQLAlchemy and psycopg2 send them when run at once."""
    owner, channel_id, guild_id = channel
    store = resources.message_store
    message = _message(
        resources, channel_id, owner.id, content="100% it's \\ 'quoted' %(content)s %s ünïcode 🎉", type=19,
        flags=4, tts=True, mention_everyone=True, mentions=(owner.id, 7), mention_roles=(guild_id,),
        embeds_json='[{"title": "%"}]', nonce="n%", pinned=True,
        edited_at=datetime(2026, 1, 2, 3, 4, 5, 6, timezone.utc), reference_message_id=1,
        reference_channel_id=channel_id, reference_guild_id=guild_id, attachments_json="[]",
        components_json="[]", guild_id=guild_id, webhook_id=9, webhook_username="hook",
        webhook_avatar_url="https://example.com/%20")
    sent = []
    spy = lambda _conn, cursor, statement, parameters, *_: sent.append(cursor.mogrify(statement, parameters))  # noqa: E731
    event.listen(resources.engine, "before_cursor_execute", spy)
    try:
        store.create_message(message)  # its own transaction: run at once
    finally:
        event.remove(resources.engine, "before_cursor_execute", spy)
    assert store.get_message(channel_id, message.id) == message

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), shared_transaction(resources.engine) as connection:
        store.create_message(message)
        unsent = list(models.base._UNSENT[connection.connection.driver_connection])
        raise Abandoned
    assert len(sent) == 2
    assert unsent == [b"BEGIN", *sent]


def test_a_read_in_the_transaction_sees_the_writes_before_it_in_the_same_round_trip(resources, channel):
    owner, channel_id, _guild_id = channel
    store = resources.message_store
    message = _message(resources, channel_id, owner.id)
    with shared_transaction(resources.engine):
        with round_trips() as counted:
            store.create_message(message)
            assert sum(counted.values()) == 0
            assert store.get_message(channel_id, message.id) == message
            assert sum(counted.values()) == 1
    assert store.get_message(channel_id, message.id) == message


def test_a_statement_outside_sqlalchemy_sees_the_writes_before_it(resources, channel):
    owner, channel_id, _guild_id = channel
    store = resources.message_store
    message = _message(resources, channel_id, owner.id)
    with shared_transaction(resources.engine) as connection:
        store.create_message(message)
        cursor = connection.connection.driver_connection.cursor()
        cursor.execute("SELECT count(*) FROM messages WHERE channel_id = %s", (channel_id,))
        assert cursor.fetchone() == (1,)


def test_writes_that_nothing_follows_are_sent_with_the_commit(resources, channel):
    owner, channel_id, guild_id = channel
    store = resources.message_store
    messages = [_message(resources, channel_id, owner.id, content=f"m{n}") for n in range(2)]
    with round_trips() as counted:
        with shared_transaction(resources.engine):
            for message in messages:
                store.create_message(message)
    assert list(counted.values()) == [1]
    assert store.get_messages(channel_id, [message.id for message in messages]) == {
        message.id: message for message in messages}


def test_several_events_sent_as_many_rows_come_after_the_writes(resources, channel):
    owner, channel_id, guild_id = channel
    store = resources.message_store
    message = _message(resources, channel_id, owner.id)
    before = _state(resources, channel_id)
    ChannelWrites(resources.engine, store).apply(
        channel_id, lambda: store.create_message(message), created=message.id,
        events=lambda _: [_event(resources, channel_id, guild_id) for _ in range(3)])
    after = _state(resources, channel_id)
    assert store.get_message(channel_id, message.id) == message
    assert after == ((before[0][0] + 1, message.id), before[1] + 3)


@contextmanager
def message_inserts_failing(resources, sqlstate: str):
    with resources.engine.begin() as connection:
        connection.execute(text(
            "CREATE FUNCTION refuse_message() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '{sqlstate}'; END $$"))
        connection.execute(text("CREATE TRIGGER refuse_message BEFORE INSERT ON messages "
                                "FOR EACH ROW EXECUTE FUNCTION refuse_message()"))
    try:
        yield
    finally:
        with resources.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER refuse_message ON messages"))
            connection.execute(text("DROP FUNCTION refuse_message()"))


@pytest.mark.parametrize(("sqlstate", "raised"), [
    ("57014", StoreUnavailable),  # query_canceled (a statement timeout): the database could not answer
    ("23514", sa_exc.IntegrityError),  # check_violation: a bug, reported as it is
])
def test_a_failing_message_insert_in_the_one_query_leaves_nothing(resources, channel, sqlstate, raised):
    owner, channel_id, guild_id = channel
    store = resources.message_store
    message = _message(resources, channel_id, owner.id)
    before = _state(resources, channel_id)
    writes = ChannelWrites(resources.engine, store)
    with message_inserts_failing(resources, sqlstate), pytest.raises(raised):
        writes.apply(channel_id, lambda: store.create_message(message), created=message.id,
                     events=lambda _: [_event(resources, channel_id, guild_id)])
    assert store.get_message(channel_id, message.id) is None
    assert store.channel_buckets(channel_id) == []
    assert _state(resources, channel_id) == before
    # The connection was rolled back and returned clean: the next write commits.
    writes.apply(channel_id, lambda: store.create_message(message), created=message.id,
                 events=lambda _: [_event(resources, channel_id, guild_id)])
    assert _state(resources, channel_id) == ((before[0][0] + 1, message.id), before[1] + 1)


def _store_calls(resources, outcome: str) -> tuple[float, float]:
    """create_message's calls of the message store with ``outcome``: counted, and timed."""
    labels = {"backend": resources.message_store.backend, "operation": "create_message", "outcome": outcome}
    return (sample("chatstore_message_store_calls_total", **labels),
            sample("chatstore_message_store_call_duration_seconds_count", **labels))


def _store_calls_by_outcome(resources) -> dict[str, tuple[float, float]]:
    return {outcome: _store_calls(resources, outcome) for outcome in ("ok", "unavailable", "error")}


@pytest.mark.parametrize(("sqlstate", "outcome"), [("57014", "unavailable"), ("23514", "error")])
def test_a_held_write_is_counted_with_the_outcome_of_the_query_that_sends_it(resources, channel, sqlstate, outcome):
    owner, channel_id, guild_id = channel
    store = resources.message_store
    message = _message(resources, channel_id, owner.id)
    before = _store_calls_by_outcome(resources)
    with message_inserts_failing(resources, sqlstate), pytest.raises((StoreUnavailable, sa_exc.IntegrityError)):
        ChannelWrites(resources.engine, store).apply(
            channel_id, lambda: store.create_message(message), created=message.id,
            events=lambda _: [_event(resources, channel_id, guild_id)])
    calls, timed = before[outcome]
    assert _store_calls_by_outcome(resources) == {**before, outcome: (calls + 1, timed + 1)}


def test_a_held_write_is_counted_once_when_its_transaction_commits(resources, channel):
    owner, channel_id, guild_id = channel
    store = resources.message_store
    held, applied = (_message(resources, channel_id, owner.id) for _ in range(2))
    before = _store_calls_by_outcome(resources)
    with shared_transaction(resources.engine):
        store.create_message(held)
        assert _store_calls_by_outcome(resources) == before
    ChannelWrites(resources.engine, store).apply(channel_id, lambda: store.create_message(applied),
                                                 created=applied.id)
    calls, timed = before["ok"]
    assert _store_calls_by_outcome(resources) == {**before, "ok": (calls + 2, timed + 2)}


def test_a_held_write_is_timed_from_its_call_to_its_transactions_end(resources, channel, monkeypatch):
    owner, channel_id, _guild_id = channel
    store = resources.message_store
    now = [10.0]
    monkeypatch.setattr(instrumented, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    labels = {"backend": store.backend, "operation": "create_message", "outcome": "ok"}
    before = sample("chatstore_message_store_call_duration_seconds_sum", **labels)
    with shared_transaction(resources.engine):
        store.create_message(_message(resources, channel_id, owner.id))
        now[0] += 3.5  # the transaction goes on after the call returned
    assert sample("chatstore_message_store_call_duration_seconds_sum", **labels) == pytest.approx(before + 3.5)


def test_what_runs_at_a_transactions_end_sees_it_ended_and_cannot_fail_it(resources, channel):
    owner, channel_id, _guild_id = channel
    store = resources.message_store
    message = _message(resources, channel_id, owner.id)
    seen = []

    def failing(error):
        seen.append((error, store.get_message(channel_id, message.id)))  # read outside the transaction
        raise RuntimeError("a bystander's bug")

    with shared_transaction(resources.engine):
        when_transaction_ends(failing)
        store.create_message(message)
    assert seen == [(None, message)]

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), shared_transaction(resources.engine):
        when_transaction_ends(failing)
        store.delete_messages(channel_id, [message.id])
        raise Abandoned
    assert isinstance(seen[1][0], Abandoned) and seen[1][1] == message
