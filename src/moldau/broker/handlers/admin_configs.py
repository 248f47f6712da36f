"""DescribeConfigs, AlterConfigs, IncrementalAlterConfigs: topic and broker configuration.

Where the values come from: ``BrokerConfig.describe_topic(overrides)`` lists *every* topic
config with its effective value, source and synonyms (an override, else the broker key from
server.properties, else Kafka's default), and ``BrokerConfig.describe()`` does the same for
the broker itself. This module only filters, shapes and validates; the tables live in
``log/config.py`` (topic configs) and ``broker/config.py`` (broker configs).

Resources are answered one by one and never fail the whole request: a bad resource gets its
own error code and message. An alteration is all-or-nothing per resource: every operation is
validated against the would-be config set before anything is written, and ``validate_only``
stops right there.

Broker resources are read-only for now: moldau has no dynamic broker configs yet, so altering
one answers INVALID_REQUEST, which is what Kafka answers for a broker config that "cannot be
updated dynamically"; clients already show that error well. BROKER_LOGGER (log levels) is
not supported and answers INVALID_REQUEST too.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from moldau.broker.config import ConfigEntry, ConfigSource
from moldau.broker.context import RequestContext
from moldau.broker.errors import ApiError
from moldau.broker.handlers import handles
from moldau.cluster.metadata import InvalidTopicError, validate_topic_name
from moldau.log.config import TOPIC_CONFIGS, ConfigError
from moldau.protocol.api import ApiKey

if TYPE_CHECKING:
    from moldau.broker.server import Broker
    from moldau.cluster.metadata import TopicImage


class ConfigResourceType(enum.IntEnum):
    """Kafka's ``ConfigResource.Type`` ids (not the ACL ``ResourceType`` ids)."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


class AlterConfigOp(enum.IntEnum):
    """IncrementalAlterConfigs operations (``AlterConfigOp.OpType``)."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


# -- resources -----------------------------------------------------------------------------


def _existing_topic(broker: Broker, name: str) -> TopicImage:
    """The topic a TOPIC resource names; INVALID_TOPIC_EXCEPTION or UNKNOWN_TOPIC_OR_PARTITION."""
    try:
        validate_topic_name(name)
    except InvalidTopicError as exc:
        raise ApiError(ErrorCode.invalid_topic_exception, str(exc)) from None
    topic = broker.metadata.image.topic(name)
    if topic is None:
        raise ApiError(ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist.")
    return topic


def _check_broker_name(broker: Broker, name: str | None) -> bool:
    """A BROKER resource names this node, or nobody (the cluster-wide dynamic defaults).

    Returns True for this node, False for the defaults; INVALID_REQUEST otherwise, as Kafka.
    """
    if not name:
        return False
    try:
        node_id = int(name)
    except ValueError:
        raise ApiError(
            ErrorCode.invalid_request, f"Broker id must be an integer, but it is: {name}"
        ) from None
    if node_id != broker.node_id:
        raise ApiError(
            ErrorCode.invalid_request,
            f"Unexpected broker id, expected {broker.node_id} or empty string, but received {name}",
        )
    return True


def _unsupported_type(resource_type: int) -> ApiError:
    try:
        label = ConfigResourceType(resource_type).name
    except ValueError:
        label = str(resource_type)
    return ApiError(ErrorCode.invalid_request, f"Unsupported resource type: {label}")


# -- DescribeConfigs -----------------------------------------------------------------------


def _described_entries(broker: Broker, resource: Any) -> list[ConfigEntry]:
    resource_type = int(resource.resource_type)
    if resource_type == ConfigResourceType.TOPIC:
        topic = _existing_topic(broker, resource.resource_name)
        return broker.config.describe_topic(topic.configs)
    if resource_type == ConfigResourceType.BROKER:
        this_node = _check_broker_name(broker, resource.resource_name)
        entries = broker.config.describe()
        if this_node:
            return entries
        # The empty name means the cluster-wide dynamic defaults, and moldau has none yet.
        return [e for e in entries if e.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG]
    raise _unsupported_type(resource_type)


def _describe_entry(
    ctx: RequestContext, entry: ConfigEntry, synonyms: bool, documentation: bool
) -> Any:
    hide = entry.sensitive
    return ctx.make(
        "DescribeConfigsResourceResult",
        name=entry.name,
        value=None if hide else entry.value,
        read_only=entry.read_only,
        is_default=entry.is_default,  # v0 only
        config_source=int(entry.source),  # v1+
        is_sensitive=entry.sensitive,
        synonyms=tuple(
            ctx.make(
                "DescribeConfigsSynonym",
                name=name,
                value=None if hide else value,
                source=int(source),
            )
            for name, value, source in entry.synonyms
        )
        if synonyms
        else (),
        config_type=int(entry.type),
        documentation=entry.documentation if documentation else None,
    )


@handles(ApiKey.DESCRIBE_CONFIGS)
async def handle_describe_configs(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    synonyms = bool(getattr(request, "include_synonyms", False))
    documentation = bool(getattr(request, "include_documentation", False))
    results: list[Any] = []
    for resource in request.resources:
        error: ApiError | None = None
        configs: tuple[Any, ...] = ()
        try:
            entries = _described_entries(broker, resource)
        except ApiError as exc:
            error = exc
        else:
            # Null and empty both mean "every config", as in Kafka's ConfigHelper.
            keys = set(resource.configuration_keys or ())
            configs = tuple(
                _describe_entry(ctx, entry, synonyms, documentation)
                for entry in entries
                if not keys or entry.name in keys
            )
        results.append(
            ctx.make(
                "DescribeConfigsResult",
                error_code=ErrorCode.none if error is None else error.error_code,
                error_message=None if error is None else error.message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return ctx.response(throttle_time=0, results=tuple(results))


# -- AlterConfigs / IncrementalAlterConfigs -------------------------------------------------


def _alterable_topic(broker: Broker, resource: Any) -> TopicImage:
    """The topic an alteration targets; ApiError for every other resource type."""
    resource_type = int(resource.resource_type)
    if resource_type == ConfigResourceType.TOPIC:
        return _existing_topic(broker, resource.resource_name)
    if resource_type == ConfigResourceType.BROKER:
        _check_broker_name(broker, resource.resource_name)
        raise ApiError(
            ErrorCode.invalid_request,
            "Broker configs cannot be updated dynamically yet: set them in "
            "server.properties or with --set and restart the broker.",
        )
    raise _unsupported_type(resource_type)


def _check_no_duplicate_keys(configs: Iterable[Any]) -> None:
    counts = Counter(c.name for c in configs)
    duplicates = sorted(name for name, n in counts.items() if n > 1)
    if duplicates:
        raise ApiError(
            ErrorCode.invalid_request, f"Error due to duplicate config keys: {duplicates}"
        )


def _check_known(name: str) -> None:
    if name not in TOPIC_CONFIGS:
        raise ApiError(ErrorCode.invalid_config, f"Unknown topic config name: {name}")


def _validate_overrides(broker: Broker, overrides: Mapping[str, str]) -> None:
    try:
        broker.default_log_config.with_overrides(overrides)
    except ConfigError as exc:
        raise ApiError(ErrorCode.invalid_config, str(exc)) from None


def _list_items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _apply_incremental(
    broker: Broker, current: Mapping[str, str], ops: Iterable[Any]
) -> dict[str, str]:
    """The topic's overrides after ``ops``; ApiError for any op Kafka would refuse.

    APPEND and SUBTRACT work on list configs only and start from the effective value: the
    override if there is one, else the broker default (so APPEND ``compact`` to a topic
    with the default ``delete`` policy gives ``delete,compact``, as in Kafka).
    """
    result = dict(current)
    for op in ops:
        name: str = op.name
        _check_known(name)
        try:
            operation = AlterConfigOp(int(op.config_operation))
        except ValueError:
            raise ApiError(
                ErrorCode.invalid_request, f"Unknown config operation {op.config_operation}"
            ) from None
        if operation is AlterConfigOp.DELETE:
            result.pop(name, None)
            continue
        if op.value is None:
            raise ApiError(ErrorCode.invalid_request, f"Null value not supported for: {name}")
        if operation is AlterConfigOp.SET:
            result[name] = op.value
            continue
        definition = TOPIC_CONFIGS[name]
        if definition.kind != "list":
            raise ApiError(
                ErrorCode.invalid_config,
                f"Config value append/subtract is not allowed for config key {name} "
                "because its type is not LIST.",
            )
        base = result.get(name)
        if base is None:
            base = definition.render(broker.default_log_config.get(name))
        items = _list_items(base)
        changes = _list_items(op.value)
        if operation is AlterConfigOp.APPEND:
            items += [item for item in changes if item not in items]
        else:
            items = [item for item in items if item not in changes]
        result[name] = ",".join(items)
    return result


def _alter_result(ctx: RequestContext, resource: Any, error: ApiError | None) -> Any:
    return ctx.make(
        "AlterConfigsResourceResponse",
        error_code=ErrorCode.none if error is None else error.error_code,
        error_message=None if error is None else error.message,
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
    )


def _duplicate_resources(resources: Iterable[Any]) -> set[tuple[int, str]]:
    counts = Counter((int(r.resource_type), r.resource_name) for r in resources)
    return {key for key, n in counts.items() if n > 1}


async def _alter(ctx: RequestContext, request: Any, incremental: bool) -> Any:
    broker = ctx.broker
    duplicates = _duplicate_resources(request.resources)
    results: list[Any] = []
    for resource in request.resources:
        error: ApiError | None = None
        try:
            if (int(resource.resource_type), resource.resource_name) in duplicates:
                raise ApiError(ErrorCode.invalid_request, "Duplicate resource.")
            topic = _alterable_topic(broker, resource)
            _check_no_duplicate_keys(resource.configs)
            if incremental:
                overrides = _apply_incremental(broker, topic.configs, resource.configs)
            else:
                # Legacy AlterConfigs replaces the whole override set; a null value unsets.
                overrides = {}
                for config in resource.configs:
                    _check_known(config.name)
                    if config.value is not None:
                        overrides[config.name] = config.value
            _validate_overrides(broker, overrides)
            if not request.validate_only:
                await broker.set_topic_configs(topic.name, overrides)
        except ApiError as exc:
            error = exc
        results.append(_alter_result(ctx, resource, error))
    return ctx.response(throttle_time=0, responses=tuple(results))


@handles(ApiKey.ALTER_CONFIGS)
async def handle_alter_configs(ctx: RequestContext, request: Any) -> Any:
    return await _alter(ctx, request, incremental=False)


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def handle_incremental_alter_configs(ctx: RequestContext, request: Any) -> Any:
    return await _alter(ctx, request, incremental=True)
