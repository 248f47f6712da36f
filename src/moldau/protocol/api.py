"""The APIs moldau speaks: keys, advertised version ranges, and kio message classes per version.

Advertised ranges follow one Kafka release so that clients which infer the broker version
from ApiVersions (kafka-python, librdkafka feature detection) infer a coherent one: Kafka 3.1,
except that Fetch stops at v12 and ApiVersions goes to v4. Fetch v13+ and Produce v13+ address
topics by id (KIP-516); ApiVersions v4 only fixes KAFKA-17011 and has v3's layout. Minimum
versions follow Kafka 4.0's KIP-896 baseline where kio (generated from Kafka 4.x specs) has
no older schema: CreateTopics 2, DeleteTopics 1, DescribeConfigs 1, DescribeLogDirs 1,
OffsetCommit 2, OffsetFetch 1 (JoinGroup, whose v0-1 kio has, is served from v0); and
DescribeCluster goes to v1 because kafka-python's ``describe_cluster`` needs v1's fields.

``ADVERTISED`` is the table a new API joins once it is fully implemented: DESIGN.md §3 says to
advertise only what works, because clients degrade gracefully around what is absent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from kio.index import load_payload_module
from kio.static.constants import EntityType


class ApiKey(enum.IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    ELECT_LEADERS = 43
    DELETE_GROUPS = 42
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    CONSUMER_GROUP_HEARTBEAT = 68
    CONSUMER_GROUP_DESCRIBE = 69


@dataclass(frozen=True, slots=True)
class VersionRange:
    """Versions we advertise (``min``..``max``) and the lowest we can actually decode.

    ``decodable_min`` > ``min`` happens on purpose for Produce: old librdkafka switches
    compression off if Produce's advertised minimum is above 0 (KAFKA-18659), so we advertise
    0 and close the connection on v0-2 requests, as Kafka 4.0 does.
    """

    min: int
    max: int
    decodable_min: int

    def advertises(self, version: int) -> bool:
        return self.min <= version <= self.max

    def decodes(self, version: int) -> bool:
        return self.decodable_min <= version <= self.max


ADVERTISED: dict[int, VersionRange] = {
    ApiKey.PRODUCE: VersionRange(0, 9, 3),
    ApiKey.FETCH: VersionRange(4, 12, 4),
    ApiKey.LIST_OFFSETS: VersionRange(1, 7, 1),
    ApiKey.METADATA: VersionRange(0, 12, 0),
    ApiKey.API_VERSIONS: VersionRange(0, 4, 0),
    ApiKey.CREATE_TOPICS: VersionRange(2, 7, 2),
    ApiKey.DELETE_TOPICS: VersionRange(1, 6, 1),
    ApiKey.DELETE_RECORDS: VersionRange(0, 2, 0),
    ApiKey.INIT_PRODUCER_ID: VersionRange(0, 4, 0),
    ApiKey.DESCRIBE_CONFIGS: VersionRange(1, 4, 1),
    ApiKey.ALTER_CONFIGS: VersionRange(0, 2, 0),
    ApiKey.DESCRIBE_LOG_DIRS: VersionRange(1, 2, 1),
    ApiKey.CREATE_PARTITIONS: VersionRange(0, 3, 0),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: VersionRange(0, 1, 0),
    ApiKey.DESCRIBE_CLUSTER: VersionRange(0, 1, 0),
    ApiKey.OFFSET_COMMIT: VersionRange(2, 8, 2),
    ApiKey.OFFSET_FETCH: VersionRange(1, 8, 1),
    ApiKey.FIND_COORDINATOR: VersionRange(0, 4, 0),
    ApiKey.JOIN_GROUP: VersionRange(0, 7, 0),
    ApiKey.HEARTBEAT: VersionRange(0, 4, 0),
    ApiKey.LEAVE_GROUP: VersionRange(0, 4, 0),
    ApiKey.SYNC_GROUP: VersionRange(0, 5, 0),
    ApiKey.DESCRIBE_GROUPS: VersionRange(0, 5, 0),
    ApiKey.LIST_GROUPS: VersionRange(0, 4, 0),
    ApiKey.DELETE_GROUPS: VersionRange(0, 2, 0),
    ApiKey.OFFSET_DELETE: VersionRange(0, 0, 0),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: VersionRange(0, 1, 0),
    ApiKey.CONSUMER_GROUP_DESCRIBE: VersionRange(0, 1, 0),
    ApiKey.ADD_PARTITIONS_TO_TXN: VersionRange(0, 3, 0),
    ApiKey.ADD_OFFSETS_TO_TXN: VersionRange(0, 3, 0),
    ApiKey.END_TXN: VersionRange(0, 3, 0),
    ApiKey.WRITE_TXN_MARKERS: VersionRange(1, 1, 1),
    ApiKey.TXN_OFFSET_COMMIT: VersionRange(0, 3, 0),
    ApiKey.DESCRIBE_PRODUCERS: VersionRange(0, 0, 0),
    ApiKey.DESCRIBE_TRANSACTIONS: VersionRange(0, 0, 0),
    ApiKey.LIST_TRANSACTIONS: VersionRange(0, 1, 0),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: VersionRange(2, 4, 2),
    ApiKey.ELECT_LEADERS: VersionRange(0, 2, 0),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: VersionRange(0, 0, 0),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: VersionRange(0, 0, 0),
    ApiKey.SASL_HANDSHAKE: VersionRange(0, 1, 0),
    ApiKey.SASL_AUTHENTICATE: VersionRange(0, 2, 0),
    ApiKey.DESCRIBE_ACLS: VersionRange(1, 3, 1),
    ApiKey.CREATE_ACLS: VersionRange(1, 3, 1),
    ApiKey.DELETE_ACLS: VersionRange(1, 3, 1),
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: VersionRange(0, 0, 0),
    ApiKey.DESCRIBE_CLIENT_QUOTAS: VersionRange(0, 1, 0),
    ApiKey.ALTER_CLIENT_QUOTAS: VersionRange(0, 1, 0),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: VersionRange(0, 0, 0),
}
"""API key → advertised range. Only fully implemented APIs belong here."""

KAFKA_RELEASE = "3.1"
"""The Kafka release whose version ranges we advertise (see module docstring)."""


@dataclass(frozen=True, slots=True)
class ApiSchema:
    """The kio classes for one (api key, version): request/response types and their modules.

    Handlers build responses through ``response_module`` so that one handler serves every
    version: nested classes have the same names in each version's module.
    """

    api_key: int
    version: int
    request_type: Any
    response_type: Any
    request_module: ModuleType
    response_module: ModuleType
    request_flexible: bool
    response_header_flexible: bool


@cache
def schema_for(api_key: int, version: int) -> ApiSchema:
    """kio's classes for this api/version. Raises kio's KioIndexError if kio lacks them."""
    request_module = load_payload_module(api_key, version, EntityType.request)
    response_module = load_payload_module(api_key, version, EntityType.response)
    request_type = _payload_class(request_module, "Request")
    response_type = _payload_class(response_module, "Response")
    flexible = bool(request_type.__flexible__)
    # ApiVersions answers with a v0 response header whatever the version (KIP-511).
    header_flexible = flexible and api_key != ApiKey.API_VERSIONS
    return ApiSchema(
        api_key=api_key,
        version=version,
        request_type=request_type,
        response_type=response_type,
        request_module=request_module,
        response_module=response_module,
        request_flexible=flexible,
        response_header_flexible=header_flexible,
    )


def _payload_class(module: ModuleType, suffix: str) -> Any:
    for name, value in vars(module).items():
        if (
            name.endswith(suffix)
            and isinstance(value, type)
            and getattr(value, "__type__", None) in (EntityType.request, EntityType.response)
        ):
            return value
    raise LookupError(f"no {suffix} payload class in {module.__name__}")
