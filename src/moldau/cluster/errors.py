"""Errors of the cluster metadata layer (etcd client and cluster metadata store).

They are plain exceptions with one-line messages: the broker turns the topic errors into Kafka
error codes (TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION) and the start-up errors
(``NodeIdInUseError``, ``ClusterIdMismatchError``, ``EtcdError``) into a single line on the
terminal and a non-zero exit, so the message must say what to fix without a traceback.
"""

from __future__ import annotations


class EtcdError(Exception):
    """etcd is unreachable or answered something we cannot use.

    The message names the endpoint. ``code`` is etcd's gRPC status code when etcd itself
    refused the request (5 = not found, 9 = failed precondition ...), None for transport
    failures, so callers can tell "etcd said no" from "etcd is not there".
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class WatchCompacted(EtcdError):
    """A watch asked for revisions etcd has already compacted away.

    The watcher cannot replay what it missed; it must reload the whole prefix (a fresh range
    read) and start watching again after that read's revision.
    """

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"watch revision was compacted (compact revision {compact_revision})")
        self.compact_revision = compact_revision


class NodeIdInUseError(Exception):
    """Another live broker (a different data directory) holds this node id's registration."""


class ClusterIdMismatchError(Exception):
    """The data directory belongs to another cluster than the one etcd (or config) names."""


class TopicExistsError(Exception):
    """create_topic on a name that already exists (TOPIC_ALREADY_EXISTS)."""


class UnknownTopicError(Exception):
    """A mutation named a topic that does not exist (UNKNOWN_TOPIC_OR_PARTITION)."""
