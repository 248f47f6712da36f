"""Entry points of Kafka's tool names: ``kafka-topics[.sh]``, ``kafka-console-producer[.sh]``,
``kafka-console-consumer[.sh]``, ``kafka-configs[.sh]``,
``kafka-consumer-groups[.sh]``, ``kafka-transactions[.sh]``.

Each is a thin front end (argparse, Kafka's flags and output) over the same client code as
the ``moldau`` command; the parsers live in ``kafka_*_tool.py``. Every function takes an
optional ``argv`` (default ``sys.argv[1:]``) and returns the exit code, so tests can call
them in-process and the console scripts can ``sys.exit()`` with the result.
"""

from __future__ import annotations

from collections.abc import Sequence

from moldau.cli import (
    kafka_configs_tool,
    kafka_console_tools,
    kafka_consumer_groups_tool,
    kafka_topics_tool,
    kafka_transactions_tool,
)
from moldau.cli.common import CliError
from moldau.cli.kafka_args import run_tool


def _plain(error: CliError) -> str:
    return f"ERROR {error}"


def kafka_topics(argv: Sequence[str] | None = None) -> int:
    """``kafka-topics``: create, list, describe, alter (partitions) and delete topics."""
    return run_tool(kafka_topics_tool.main, argv, kafka_topics_tool.report)


def kafka_console_producer(argv: Sequence[str] | None = None) -> int:
    """``kafka-console-producer``: stdin lines to a topic."""
    return run_tool(kafka_console_tools.producer_main, argv, _plain)


def kafka_console_consumer(argv: Sequence[str] | None = None) -> int:
    """``kafka-console-consumer``: a topic's records to stdout."""
    return run_tool(kafka_console_tools.consumer_main, argv, _plain)


def kafka_configs(argv: Sequence[str] | None = None) -> int:
    """``kafka-configs``: describe and alter topic and broker configs."""
    return run_tool(kafka_configs_tool.main, argv, kafka_configs_tool.report)


def kafka_consumer_groups(argv: Sequence[str] | None = None) -> int:
    """``kafka-consumer-groups``: list, describe, delete groups; reset and delete offsets."""
    return run_tool(kafka_consumer_groups_tool.main, argv, kafka_consumer_groups_tool.report)


def kafka_transactions(argv: Sequence[str] | None = None) -> int:
    """``kafka-transactions``: list and describe transactions, describe producers, find hanging."""
    return run_tool(kafka_transactions_tool.main, argv, kafka_transactions_tool.report)
