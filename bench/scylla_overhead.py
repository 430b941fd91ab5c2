"""What ScyllaMessageStore costs over the bare driver: the same queries, on the same nodes, in the same run.

    python -m gevent.monkey --module bench.scylla_overhead [--rounds 7] [--operations 300]

Starts three CQL test nodes in a subprocess (so their work does not count against the client), applies the
migrations, then times each operation through the store and through the driver directly, alternating the two
in every round so that drift (a busy machine, a warming cache) hits both alike. Prints the median time per
operation of each and their ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import gevent.pool
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from app.ids import SnowflakeGenerator, bucket_bounds, bucket_of
from app.messages.base import Message
from app.messages.scylla import READ_PROFILE, ScyllaMessageStore
from tests.scylla.stores import apply_migrations, fresh_store, settings_for
from tests.support.cqlnode.control import RemoteCluster

CHANNEL = 1
#: Requests in flight at once in the concurrent workload: enough to overlap round trips, few enough that none
#: waits long enough in the client to trigger a speculative execution (which would measure timing luck).
CONCURRENCY = 50


class BareDriver:
    """The store's own statements (the same CQL text) executed straight through its session, with the same
    execution profiles (reads may be speculatively re-sent, as the store's are)."""

    def __init__(self, store, keyspace: str):
        session = store.session
        self.session = session
        self.select_message = session.prepare(ScyllaMessageStore._SELECT_MESSAGE.format(ks=keyspace))
        self.select_buckets = session.prepare(
            f"SELECT bucket FROM {keyspace}.channel_buckets WHERE channel_id = ?")
        self.select_page = session.prepare(ScyllaMessageStore._READ_NEWEST.format(ks=keyspace))
        self.insert_message = session.prepare(ScyllaMessageStore._INSERT_MESSAGE.format(ks=keyspace))
        self.insert_bucket = session.prepare(ScyllaMessageStore._INSERT_BUCKET.format(ks=keyspace))
        self.unset_columns = [UNSET_VALUE] * 13  # the insert's columns after author_id and content
        for statement in (self.select_message, self.select_buckets, self.select_page, self.insert_message,
                          self.insert_bucket):
            statement.is_idempotent = True  # as the store marks its own (speculative reads need it)

    def get_message(self, channel_id: int, message_id: int):
        return self.session.execute(self.select_message, (channel_id, bucket_of(message_id), message_id),
                                    execution_profile=READ_PROFILE).one()

    def list_messages(self, channel_id: int, limit: int):
        buckets = [row.bucket for row in self.session.execute(self.select_buckets, (channel_id,),
                                                              execution_profile=READ_PROFILE)]
        low, high = bucket_bounds(buckets[0])
        return list(self.session.execute(self.select_page, (channel_id, buckets[0], low, high, limit),
                                         execution_profile=READ_PROFILE))

    def create_message(self, message: Message) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self.insert_message, (message.channel_id, message.bucket, message.id, message.author_id,
                                        message.content, *self.unset_columns))
        batch.add(self.insert_bucket, (message.channel_id, message.bucket))
        self.session.execute(batch)


def per_operation(run, operations: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / operations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--operations", type=int, default=300)
    arguments = parser.parse_args()
    count = arguments.operations

    with RemoteCluster(nodes=3, first_address=70) as nodes:
        settings = settings_for(nodes.contact_points, nodes.port)
        apply_migrations(settings)
        with fresh_store(settings) as store:
            bare = BareDriver(store, settings.scylla_keyspace)
            ids = SnowflakeGenerator(1)
            existing = [Message(id=ids.next_id(), channel_id=CHANNEL, author_id=2, content=f"message {n}")
                        for n in range(count)]
            for message in existing:
                store.create_message(message)

            def fresh_messages():
                return [Message(id=ids.next_id(), channel_id=CHANNEL + 1, author_id=2, content="new")
                        for _ in range(count)]

            def concurrently(call):
                def run():
                    gevent.pool.Pool(CONCURRENCY).map(lambda message: call(message.channel_id, message.id), existing)
                return run

            workloads = {
                "get_message": (lambda: [store.get_message(CHANNEL, m.id) for m in existing],
                                lambda: [bare.get_message(CHANNEL, m.id) for m in existing]),
                "list_messages(limit=50)": (lambda: [store.list_messages(CHANNEL, limit=50) for _ in existing],
                                            lambda: [bare.list_messages(CHANNEL, 50) for _ in existing]),
                "create_message": (lambda: [store.create_message(m) for m in fresh_messages()],
                                   lambda: [bare.create_message(m) for m in fresh_messages()]),
                f"get_message, {CONCURRENCY} at a time": (concurrently(store.get_message),
                                                          concurrently(bare.get_message)),
            }
            print(f"{count} operations per measurement, median of {arguments.rounds} rounds, 3 nodes in a subprocess")
            print(f"{'operation':34} {'driver µs/op':>13} {'store µs/op':>12} {'ratio':>7}")
            ratios = []
            for name, (through_store, through_driver) in workloads.items():
                through_store(), through_driver()  # warm: prepared statements, connections
                store_times, driver_times = [], []
                for _ in range(arguments.rounds):
                    driver_times.append(per_operation(through_driver, count))
                    store_times.append(per_operation(through_store, count))
                driver, wrapped = statistics.median(driver_times), statistics.median(store_times)
                ratios.append(wrapped / driver)
                print(f"{name:34} {driver * 1e6:13.0f} {wrapped * 1e6:12.0f} {wrapped / driver:7.2f}")
            print(f"{'geometric mean of ratios':34} {'':13} {'':12} {statistics.geometric_mean(ratios):7.2f}")


if __name__ == "__main__":
    main()
