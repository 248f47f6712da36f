"""The transaction and producer admin APIs: ListTransactions, DescribeTransactions,
DescribeProducers, FindCoordinator for transactional ids, and WriteTxnMarkers (abort a hanging
transaction) — the ground under ``moldau txn``/``moldau producers`` and ``kafka-transactions``.

confluent-kafka's AdminClient has none of them, so each goes over the wire with kio
(:mod:`moldau.cli.kafka_wire`); DescribeTransactions is even decoded by hand (see
:func:`decode_describe_transactions`). :class:`TxnAdminSession` extends the general
:class:`~moldau.cli.admin.AdminSession` so one session answers both kinds of question.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i8, i16, i32, i64

from moldau.cli.admin import AdminSession, BrokerInfo, TopicPartitionKey
from moldau.cli.common import CliError
from moldau.cli.kafka_wire import wire_exchange, wire_request
from moldau.protocol.api import ApiKey, schema_for

_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_INT64 = struct.Struct(">q")
_UINT8 = struct.Struct(">B")


@dataclass(frozen=True)
class TransactionListing:
    """One transactional id as ListTransactions reports it, with the broker that answered."""

    transactional_id: str
    coordinator: int
    producer_id: int
    state: str


@dataclass(frozen=True)
class TransactionDescription:
    """DescribeTransactions' answer for one id; ``error_code`` 0 means the fields are valid.

    ``transaction_start_time_ms`` is None when no transaction is open (Kafka sends -1);
    ``partitions`` are those in the transaction — while preparing to commit or abort, only
    those still without a marker.
    """

    transactional_id: str
    coordinator: int
    error_code: int
    state: str = ""
    producer_id: int = -1
    producer_epoch: int = -1
    transaction_timeout_ms: int = 0
    transaction_start_time_ms: int | None = None
    partitions: tuple[TopicPartitionKey, ...] = ()


@dataclass(frozen=True)
class ProducerInfo:
    """An active producer of one partition (DescribeProducers); None where Kafka sends -1."""

    producer_id: int
    producer_epoch: int
    coordinator_epoch: int | None
    last_sequence: int
    last_timestamp_ms: int
    current_txn_start_offset: int | None


# Kafka's ``Errors.message()`` for what the transaction admin APIs commonly answer.
TXN_ERROR_MESSAGES = {
    3: "This server does not host this topic-partition.",
    6: "For requests intended only for the leader, this error indicates that the broker is "
    "not the current leader.",
    14: "The coordinator is loading and hence can't process requests.",
    15: "The coordinator is not available.",
    16: "This is not the correct coordinator.",
    35: "The version of API is not supported.",
    47: "Producer attempted to produce with an old epoch.",
    52: "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer "
    "the current coordinator for a given producer",
    53: "Transactional Id authorization failed.",
    105: "The transactionalId could not be found.",
}
TRANSACTIONAL_ID_NOT_FOUND = 105
_RETRIABLE_COORDINATOR_CODES = frozenset({14, 15, 16})
_RETRY_BACKOFF_S = 0.1
_TXN_KEY_TYPE = 1  # FindCoordinator key_type: 0 group, 1 transaction


def txn_error_text(code: int) -> str:
    """Kafka's sentence for an error code, or the code's name when we have no sentence."""
    if code in TXN_ERROR_MESSAGES:
        return TXN_ERROR_MESSAGES[code]
    try:
        return f"{ErrorCode(code).name.upper()} (error code {code})"
    except ValueError:
        return f"Kafka error code {code}"


class TxnAdminSession(AdminSession):
    """An :class:`AdminSession` that also speaks the transaction and producer APIs.

    Each request goes to the broker that owns the answer (a transactional id's coordinator,
    a partition's leader), so the session keeps the cluster's broker list, fetched once.
    """

    def __init__(
        self, bootstrap: str, timeout_ms: int, extra_config: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(bootstrap, timeout_ms, extra_config)
        self._broker_cache: tuple[BrokerInfo, ...] | None = None

    # Like Kafka's admin client, a coordinator lookup or a request
    # answered "loading", "not available" or "not the coordinator" is retried until the
    # session's timeout: the first lookup of a transactional id on a fresh cluster is what
    # creates __transaction_state, and the coordinator is unavailable until it exists.

    def list_transactions(
        self,
        states: Sequence[str] = (),
        producer_ids: Sequence[int] = (),
        duration_ms: int = -1,
    ) -> list[TransactionListing]:
        """ListTransactions on every broker (each coordinates its share of ids), sorted by id.

        ``states`` are Kafka's state names (``Ongoing``…); ``duration_ms`` ≥ 0 keeps only
        transactions open longer than that, which needs ListTransactions v1 (KIP-994), so v1
        is only used then and a broker with v0 alone still answers every other question.
        """
        version = 1 if duration_ms >= 0 else 0
        schema = schema_for(ApiKey.LIST_TRANSACTIONS, version)
        fields: dict[str, Any] = {
            "state_filters": tuple(states),
            "producer_id_filters": tuple(i64(p) for p in producer_ids),
        }
        if version >= 1:
            fields["duration_filter"] = i64(duration_ms)
        request = schema.request_type(**fields)
        listings: list[TransactionListing] = []
        for broker in self._brokers():
            response = wire_request(
                broker.host,
                broker.port,
                ApiKey.LIST_TRANSACTIONS,
                version,
                request,
                self.timeout_ms,
            )
            code = int(response.error_code)
            if code:
                raise CliError(
                    f"listing transactions on broker {broker.node_id} failed: "
                    f"{txn_error_text(code)}",
                    code=code,
                )
            listings += [
                TransactionListing(
                    str(t.transactional_id), broker.node_id, int(t.producer_id), t.transaction_state
                )
                for t in response.transaction_states
            ]
        return sorted(listings, key=lambda t: (t.transactional_id, t.coordinator))

    def describe_transactions(
        self, transactional_ids: Sequence[str]
    ) -> list[TransactionDescription]:
        """DescribeTransactions at each id's coordinator, answered in the order asked.

        An id the coordinator does not know comes back with ``error_code``
        TRANSACTIONAL_ID_NOT_FOUND (105) rather than raising, so one unknown id does not
        hide the others; :meth:`describe_transaction` raises for the single-id case.
        """
        deadline = time.monotonic() + self._timeout_s
        found: dict[str, TransactionDescription] = {}
        pending = list(dict.fromkeys(transactional_ids))
        while pending:
            by_coordinator: dict[BrokerInfo, list[str]] = {}
            for transactional_id in pending:
                coordinator = self._txn_coordinator(transactional_id, deadline)
                by_coordinator.setdefault(coordinator, []).append(transactional_id)
            retry: list[str] = []
            for coordinator, ids in by_coordinator.items():
                for description in self._describe_transactions_at(coordinator, ids):
                    code = description.error_code
                    if code in _RETRIABLE_COORDINATOR_CODES and time.monotonic() < deadline:
                        retry.append(description.transactional_id)
                    else:
                        found[description.transactional_id] = description
                for missing in set(ids) - set(found) - set(retry):
                    found[missing] = TransactionDescription(missing, coordinator.node_id, -1)
            pending = retry
            if pending:
                time.sleep(_RETRY_BACKOFF_S)
        return [found[t] for t in transactional_ids]

    def describe_transaction(self, transactional_id: str) -> TransactionDescription:
        """One id's description, or a CliError naming the id (e.g. when it does not exist)."""
        (description,) = self.describe_transactions([transactional_id])
        code = description.error_code
        if code == TRANSACTIONAL_ID_NOT_FOUND:
            raise CliError(f"transactional id '{transactional_id}' does not exist", code=code)
        if code:
            raise CliError(
                f"describing transactional id '{transactional_id}' failed: {txn_error_text(code)}",
                code=code,
            )
        return description

    def describe_producers(
        self, topic: str, partition: int, broker_id: int | None = None
    ) -> list[ProducerInfo]:
        """Active producers of one partition, sorted by producer id.

        Asked of the partition's leader (from metadata), or of replica ``broker_id`` when
        given (Kafka's ``--broker-id``): each replica keeps its own producer state.
        """
        node = self._replica(topic, partition, broker_id)
        target = node.node_id
        schema = schema_for(ApiKey.DESCRIBE_PRODUCERS, 0)
        module = schema.request_module
        request = schema.request_type(
            topics=(module.TopicRequest(name=topic, partition_indexes=(i32(partition),)),)
        )
        response = wire_request(
            node.host, node.port, ApiKey.DESCRIBE_PRODUCERS, 0, request, self.timeout_ms
        )
        for topic_result in response.topics:
            for part in topic_result.partitions:
                if topic_result.name != topic or int(part.partition_index) != partition:
                    continue
                code = int(part.error_code)
                if code:
                    reason = part.error_message or txn_error_text(code)
                    raise CliError(
                        f"describing producers of {topic}-{partition} on broker {target} "
                        f"failed: {reason}",
                        code=code,
                    )
                producers = [_producer_info(p) for p in part.active_producers]
                return sorted(producers, key=lambda p: p.producer_id)
        raise CliError(f"broker {target} did not answer for partition {topic}-{partition}")

    def abort_transaction(
        self,
        topic: str,
        partition: int,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
    ) -> None:
        """Write an ABORT marker for one producer to one partition (Kafka's abortTransaction).

        For a *hanging* transaction — one its coordinator has forgotten, holding the
        partition's last stable offset back forever. WriteTxnMarkers goes straight to the
        partition's leader, as the coordinator's own markers do; the producer epoch and
        coordinator epoch must not be older than the partition's, or it is refused.
        """
        node = self._replica(topic, partition, None)
        schema = schema_for(ApiKey.WRITE_TXN_MARKERS, 1)
        module = schema.request_module
        marker = module.WritableTxnMarker(
            producer_id=i64(producer_id),
            producer_epoch=i16(producer_epoch),
            transaction_result=False,
            topics=(
                module.WritableTxnMarkerTopic(name=topic, partition_indexes=(i32(partition),)),
            ),
            coordinator_epoch=i32(coordinator_epoch),
        )
        response = wire_request(
            node.host,
            node.port,
            ApiKey.WRITE_TXN_MARKERS,
            1,
            schema.request_type(markers=(marker,)),
            self.timeout_ms,
        )
        codes = [
            int(part.error_code)
            for result in response.markers
            for topic_result in result.topics
            for part in topic_result.partitions
            if topic_result.name == topic and int(part.partition_index) == partition
        ]
        if not codes:
            raise CliError(
                f"broker {node.node_id} did not answer for partition {topic}-{partition}"
            )
        if codes[0]:
            raise CliError(
                f"aborting the transaction of producer {producer_id} on {topic}-{partition} "
                f"failed: {txn_error_text(codes[0])}",
                code=codes[0],
            )

    def _replica(self, topic: str, partition: int, broker_id: int | None) -> BrokerInfo:
        """The broker to ask about a partition: its leader, or replica ``broker_id``."""
        (info,) = self.describe_topics([topic], with_configs=False)
        layout = {p.partition: p for p in info.partitions}
        if partition not in layout:
            raise CliError(f"partition {partition} of topic '{topic}' does not exist", code=3)
        target = layout[partition].leader if broker_id is None else broker_id
        if target is None:
            raise CliError(f"partition {topic}-{partition} has no leader", code=5)
        node = next((b for b in self._brokers() if b.node_id == target), None)
        if node is None:
            raise CliError(f"broker {target} is not in the cluster")
        return node

    def _brokers(self) -> tuple[BrokerInfo, ...]:
        """The cluster's brokers as metadata advertises them (fetched once per session)."""
        if self._broker_cache is None:
            self._broker_cache = self.cluster().brokers
            if not self._broker_cache:
                raise CliError("the cluster reported no brokers")
        return self._broker_cache

    def _txn_coordinator(self, transactional_id: str, deadline: float) -> BrokerInfo:
        """FindCoordinator (v3, key_type transaction), retried while it is not available."""
        schema = schema_for(ApiKey.FIND_COORDINATOR, 3)
        request = schema.request_type(key=transactional_id, key_type=i8(_TXN_KEY_TYPE))
        broker = self._brokers()[0]
        while True:
            response = wire_request(
                broker.host, broker.port, ApiKey.FIND_COORDINATOR, 3, request, self.timeout_ms
            )
            code = int(response.error_code)
            if code == 0:
                return BrokerInfo(int(response.node_id), response.host, int(response.port))
            if code not in _RETRIABLE_COORDINATOR_CODES or time.monotonic() >= deadline:
                reason = response.error_message or txn_error_text(code)
                raise CliError(
                    f"finding the transaction coordinator of '{transactional_id}' failed: {reason}",
                    code=code,
                )
            time.sleep(_RETRY_BACKOFF_S)

    def _describe_transactions_at(
        self, coordinator: BrokerInfo, transactional_ids: Sequence[str]
    ) -> list[TransactionDescription]:
        schema = schema_for(ApiKey.DESCRIBE_TRANSACTIONS, 0)
        request = schema.request_type(transactional_ids=tuple(transactional_ids))
        frame = wire_exchange(
            coordinator.host,
            coordinator.port,
            ApiKey.DESCRIBE_TRANSACTIONS,
            0,
            request,
            self.timeout_ms,
        )
        return decode_describe_transactions(frame, coordinator.node_id)


def _producer_info(state: Any) -> ProducerInfo:
    coordinator_epoch = int(state.coordinator_epoch)
    start_offset = int(state.current_txn_start_offset)
    return ProducerInfo(
        producer_id=int(state.producer_id),
        producer_epoch=int(state.producer_epoch),
        coordinator_epoch=coordinator_epoch if coordinator_epoch >= 0 else None,
        last_sequence=int(state.last_sequence),
        last_timestamp_ms=int(state.last_timestamp),
        current_txn_start_offset=start_offset if start_offset >= 0 else None,
    )


class _FrameReader:
    """Just enough of Kafka's flexible encoding to read one response by hand."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def _unpack(self, fmt: struct.Struct) -> int:
        if self.offset + fmt.size > len(self.data):
            raise CliError("malformed response from the broker: it ends too early")
        (value,) = fmt.unpack_from(self.data, self.offset)
        self.offset += fmt.size
        return int(value)

    def int16(self) -> int:
        return self._unpack(_INT16)

    def int32(self) -> int:
        return self._unpack(_INT32)

    def int64(self) -> int:
        return self._unpack(_INT64)

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self._unpack(_UINT8)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str:
        size = self.uvarint() - 1
        if size < 0:
            return ""
        end = self.offset + size
        if end > len(self.data):
            raise CliError("malformed response from the broker: it ends too early")
        text = self.data[self.offset : end].decode("utf-8", errors="replace")
        self.offset = end
        return text

    def compact_array_length(self) -> int:
        return max(self.uvarint() - 1, 0)

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.offset += self.uvarint()  # size, then skip the value


def decode_describe_transactions(frame: bytes, coordinator: int) -> list[TransactionDescription]:
    """A DescribeTransactions v0 response frame (after its size prefix), read by hand.

    kio cannot be used here: it types ``transaction_start_time`` as a datetime and refuses
    the -1 Kafka sends for a transactional id with no open transaction (state Empty,
    CompleteCommit, …) — exactly the ids people describe most.
    """
    reader = _FrameReader(frame)
    reader.int32()  # correlation id
    reader.skip_tagged_fields()  # response header v1
    reader.int32()  # throttle_time_ms
    descriptions: list[TransactionDescription] = []
    for _ in range(reader.compact_array_length()):
        error_code = reader.int16()
        transactional_id = reader.compact_string()
        state = reader.compact_string()
        timeout_ms = reader.int32()
        start_time_ms = reader.int64()
        producer_id = reader.int64()
        producer_epoch = reader.int16()
        partitions: list[TopicPartitionKey] = []
        for _ in range(reader.compact_array_length()):
            topic = reader.compact_string()
            partitions += [(topic, reader.int32()) for _ in range(reader.compact_array_length())]
            reader.skip_tagged_fields()
        reader.skip_tagged_fields()
        descriptions.append(
            TransactionDescription(
                transactional_id=transactional_id,
                coordinator=coordinator,
                error_code=error_code,
                state=state,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                transaction_timeout_ms=timeout_ms,
                transaction_start_time_ms=start_time_ms if start_time_ms >= 0 else None,
                partitions=tuple(sorted(partitions)),
            )
        )
    return descriptions
