"""Writes into one busy channel on PostgreSQL (app.services.channel_writes): the channel's row is locked only by
the transaction's last statements, sent with its COMMIT as one query, so writers queue on it only while the
server runs them, never while a worker busy with other requests' Python gets round to committing."""
from __future__ import annotations

import gevent
import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy import exc as sa_exc

from app.events.base import Event
from app.messages.base import Message
from app.services.channel_writes import ChannelWrites
from models import Channel
from tests.support.databases import pooled_driver_connections

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)

WRITERS = 20


@pytest.fixture
def channel(make):
    owner = make.actor("owner")
    guild_id, channel_id = make.guild(owner)
    return owner, channel_id, guild_id


@pytest.fixture
def other_process(resources):
    engine = create_engine(resources.settings.database_url)
    yield engine
    engine.dispose()


def _message(resources, channel_id: int, author_id: int, content: str = "hi") -> Message:
    return Message(id=resources.ids.next_id(), channel_id=channel_id, author_id=author_id, content=content)


def _created(resources, channel_id: int, guild_id: int):
    return lambda _result: [Event(id=resources.ids.next_id(), type="MESSAGE_CREATE", guild_id=guild_id,
                                  channel_id=channel_id)]


def _channel_row(resources, channel_id: int):
    with resources.engine.connect() as connection:
        return connection.execute(select(Channel.messages_version, Channel.last_message_id)
                                  .where(Channel.id == channel_id)).one()


def test_the_channel_row_is_free_while_the_write_and_its_events_are_built(resources, channel, other_process):
    """Another writer can take the channel's row while this one's message is written and its events built."""
    owner, channel_id, guild_id = channel
    message = _message(resources, channel_id, owner.id)
    taken = []

    def events(_result):
        # The message is written, its transaction open: another session locks the row at once, or fails.
        with other_process.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '300ms'"))
            connection.execute(text("UPDATE channels SET name = name WHERE id = :id"), {"id": channel_id})
            taken.append(True)
        return _created(resources, channel_id, guild_id)(_result)

    ChannelWrites(resources.engine, resources.message_store).apply(
        channel_id, lambda: resources.message_store.create_message(message), created=message.id, events=events)
    assert taken == [True]
    assert resources.message_store.get_message(channel_id, message.id) == message
    assert _channel_row(resources, channel_id).last_message_id == message.id


def test_the_lock_the_events_and_the_commit_go_in_one_query(resources, channel):
    owner, channel_id, guild_id = channel
    message = _message(resources, channel_id, owner.id)
    sent: list[str] = []
    listener = lambda _conn, _cursor, statement, *_: sent.append(statement.strip())  # noqa: E731
    event.listen(resources.engine, "before_cursor_execute", listener)
    try:
        ChannelWrites(resources.engine, resources.message_store).apply(
            channel_id, lambda: resources.message_store.create_message(message), created=message.id,
            events=_created(resources, channel_id, guild_id))
    finally:
        event.remove(resources.engine, "before_cursor_execute", listener)
    last = sent[-1]
    assert last.startswith("UPDATE channels") and "INSERT INTO event_outbox" in last and last.endswith("COMMIT")
    # Nothing after it: no COMMIT of the driver's (it would warn "there is no transaction in progress").
    assert sum(1 for statement in sent if "COMMIT" in statement.upper()) == 1
    assert not any(statement.upper().startswith("UPDATE CHANNELS") for statement in sent[:-1])
    # The connection goes back to the pool as it came: a transaction begun there by the driver, not in autocommit.
    assert not any([driver.autocommit for driver in pooled_driver_connections(resources.engine)])


def test_a_write_failing_after_begin_leaves_no_open_transaction(resources, channel, other_process):
    owner, channel_id, guild_id = channel
    message = _message(resources, channel_id, owner.id)
    before = _channel_row(resources, channel_id)

    def lands_then_breaks():
        resources.message_store.create_message(message)
        raise ValueError("a bug after the write")

    with pytest.raises(ValueError):
        ChannelWrites(resources.engine, resources.message_store).apply(
            channel_id, lands_then_breaks, created=message.id, events=_created(resources, channel_id, guild_id))
    assert resources.message_store.get_message(channel_id, message.id) is None
    assert _channel_row(resources, channel_id) == before
    with other_process.connect() as connection:
        stuck = connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'")).scalar()
    assert stuck == 0
    assert not any([driver.autocommit for driver in pooled_driver_connections(resources.engine)])


def test_a_failing_bookkeeping_statement_rolls_the_write_back(resources, channel):
    """An error in the one query (here: the outbox row refused) rolls back the message written before it."""
    owner, channel_id, guild_id = channel
    message = _message(resources, channel_id, owner.id)
    before = _channel_row(resources, channel_id)
    broken = [Event(id=resources.ids.next_id(), type="MESSAGE_CREATE", guild_id=guild_id,
                    channel_id=channel_id)]
    writes = ChannelWrites(resources.engine, resources.message_store)
    with resources.engine.begin() as connection:
        connection.execute(text("ALTER TABLE event_outbox ADD CONSTRAINT refuse_all CHECK (id < 0) NOT VALID"))
    try:
        with pytest.raises(sa_exc.IntegrityError):
            writes.apply(channel_id, lambda: resources.message_store.create_message(message), created=message.id,
                         events=lambda _: broken)
    finally:
        with resources.engine.begin() as connection:
            connection.execute(text("ALTER TABLE event_outbox DROP CONSTRAINT refuse_all"))
    assert resources.message_store.get_message(channel_id, message.id) is None
    assert _channel_row(resources, channel_id) == before
    # The pool's connections are usable: the next write commits.
    writes.apply(channel_id, lambda: resources.message_store.create_message(message), created=message.id,
                 events=lambda _: broken)
    assert _channel_row(resources, channel_id).last_message_id == message.id


def test_concurrent_writers_into_one_channel_all_land_and_last_message_id_is_the_newest(resources, channel):
    owner, channel_id, guild_id = channel
    before = _channel_row(resources, channel_id)
    writes = ChannelWrites(resources.engine, resources.message_store)
    messages = [_message(resources, channel_id, owner.id, f"m{n}") for n in range(WRITERS)]

    def send(message: Message) -> None:
        writes.apply(channel_id, lambda: resources.message_store.create_message(message), created=message.id,
                     events=_created(resources, channel_id, guild_id))

    # Reversed: the newest id commits first, so an older one committing later must not move the pointer back.
    gevent.joinall([gevent.spawn(send, message) for message in reversed(messages)], raise_error=True)
    after = _channel_row(resources, channel_id)
    assert after.messages_version == before.messages_version + WRITERS
    assert after.last_message_id == max(message.id for message in messages)
    stored = resources.message_store.get_messages(channel_id, [message.id for message in messages])
    assert len(stored) == WRITERS
