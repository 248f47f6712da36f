"""A second producer with the same transactional id fences the first (zombie fencing).

The first producer opens a transaction and writes a record; the second calls
init_transactions() with the same id, which bumps the epoch and aborts the first one's open
transaction. The first producer's next produce/commit must then fail as fenced (each client
reports it its own way), its records never become visible to read_committed consumers, and the
second producer carries on committing normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from txn_helpers import WAIT_S, create_topics, read_to_end

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

FENCED_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}


def is_confluent_fenced(err: KafkaError) -> bool:
    if err.code() in FENCED_CODES:
        return True
    text = str(err).lower()
    return err.fatal() and ("fenc" in text or "epoch" in text)


def fence_confluent(bootstrap: str, topic: str, txn_id: str) -> None:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "transactional.id": txn_id}
    first = Producer({**conf, "linger.ms": 0})
    first.init_transactions(WAIT_S)
    first.begin_transaction()
    first.produce(topic, b"first-0", key=b"k", partition=0)
    assert first.flush(WAIT_S) == 0

    second = Producer(conf)
    second.init_transactions(WAIT_S)

    try:
        first.produce(topic, b"first-1", key=b"k", partition=0)
        first.flush(WAIT_S)
        first.commit_transaction(WAIT_S)
    except KafkaException as exc:
        err: KafkaError = exc.args[0]
        if not is_confluent_fenced(err):
            # An abortable error first: the documented reaction is abort, which must then
            # be refused as fenced (the coordinator knows a newer epoch).
            assert err.txn_requires_abort(), err
            with pytest.raises(KafkaException) as info:
                first.abort_transaction(WAIT_S)
            err = info.value.args[0]
        assert is_confluent_fenced(err), err
    else:
        raise AssertionError("fenced confluent producer committed")

    second.begin_transaction()
    second.produce(topic, b"second-0", key=b"k", partition=0)
    second.commit_transaction(WAIT_S)


def fence_kafka_python(bootstrap: str, topic: str, txn_id: str) -> None:
    from kafka import KafkaProducer
    from kafka.errors import ProducerFencedError

    def make() -> Any:
        return KafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=txn_id, max_block_ms=30_000
        )

    first = make()
    second = None
    try:
        first.init_transactions()
        first.begin_transaction()
        first.send(topic, value=b"first-0", key=b"k", partition=0).get(timeout=WAIT_S)

        second = make()
        second.init_transactions()

        # Straight to EndTxn with the old epoch. (A produce first would race with the
        # client's KIP-360 epoch bump: commit_transaction() then fails on the client's own
        # state machine, "Invalid transition from BUMPING_PRODUCER_EPOCH", before it ever
        # asks the broker.)
        with pytest.raises(ProducerFencedError):
            first.commit_transaction()

        second.begin_transaction()
        second.send(topic, value=b"second-0", key=b"k", partition=0).get(timeout=WAIT_S)
        second.commit_transaction()
    finally:
        with contextlib.suppress(Exception):
            first.close(timeout=2)
        if second is not None:
            second.close(timeout=5)


def fence_aiokafka(bootstrap: str, topic: str, txn_id: str) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError as AKError
    from aiokafka.errors import ProducerFenced

    async def run() -> None:
        first = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        await first.start()
        second = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        try:
            await first.begin_transaction()
            await first.send_and_wait(topic, b"first-0", key=b"k", partition=0)

            await second.start()

            try:
                future = await first.send(topic, b"first-1", key=b"k", partition=0)
                with contextlib.suppress(AKError):
                    await future
                await first.commit_transaction()
            except ProducerFenced:
                pass
            else:
                raise AssertionError("fenced aiokafka producer committed")

            await second.begin_transaction()
            await second.send_and_wait(topic, b"second-0", key=b"k", partition=0)
            await second.commit_transaction()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(first.stop(), 5)
            await second.stop()

    asyncio.run(asyncio.wait_for(run(), 90))


FENCE = {
    "confluent": fence_confluent,
    "kafka-python": fence_kafka_python,
    "aiokafka": fence_aiokafka,
}


@pytest.mark.parametrize("client", list(FENCE))
def test_second_producer_fences_the_first(broker: BrokerProcess, client: str) -> None:
    (topic,) = create_topics(broker.bootstrap, 1, prefix="fence")
    FENCE[client](broker.bootstrap, topic, f"fence-{client}-{uuid.uuid4().hex[:6]}")

    committed = read_to_end(broker.bootstrap, [(topic, 0)], "read_committed")
    assert [r.value for r in committed] == [b"second-0"]
    uncommitted = read_to_end(broker.bootstrap, [(topic, 0)], "read_uncommitted")
    assert b"first-0" in [r.value for r in uncommitted]  # written, then aborted by the fence
