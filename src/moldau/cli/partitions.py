"""``moldau partitions …``: move replicas and leaders, like Kafka's
``kafka-reassign-partitions.sh`` and ``kafka-leader-election.sh``.

A reassignment is described by a *plan* in Kafka's JSON format,
``{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}``, so plans move
freely between these tools and Kafka's. ``generate`` proposes one (the controller's own
placement rule, :func:`moldau.cluster.placement.assign_replicas`, over the brokers you name),
``reassign --execute`` hands it to the cluster (AlterPartitionReassignments), ``--verify``
compares it with what the cluster now has, ``--cancel`` drops what is still in flight, and
``list-reassignments`` shows every reassignment in progress (ListPartitionReassignments).
``elect-leaders`` asks for preferred (or unclean) leader elections (ElectLeaders).

Everything is a Kafka client call: ElectLeaders through confluent-kafka's admin client, the
two reassignment APIs — which librdkafka lacks — over the wire with kio
(:mod:`moldau.cli.kafka_wire`), sent to the controller as Kafka's admin client does.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition
from kio.schema.errors import ErrorCode
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i32, i32Timedelta
from rich.table import Table

from moldau.cli.admin import AdminSession, ClusterInfo
from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_TIMEOUT_MS,
    BootstrapOption,
    CliError,
    FormatOption,
    OutputFormat,
    TimeoutOption,
    kafka_error_text,
    print_json,
    stdout_console,
    wait,
)
from moldau.cli.kafka_wire import wire_request
from moldau.cluster.placement import PlacementError, assign_replicas
from moldau.cluster.state import BrokerRegistration
from moldau.protocol.api import ApiKey, schema_for

PLAN_VERSION = 1
NOT_CONTROLLER = 41
ELECTION_NOT_NEEDED = 84
_CONTROLLER_RETRY_S = 0.2

TopicPartitionKey = tuple[str, int]


# -- plans -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanEntry:
    """One line of a reassignment plan: the replicas a partition should end up on."""

    topic: str
    partition: int
    replicas: tuple[int, ...]

    @property
    def key(self) -> TopicPartitionKey:
        return (self.topic, self.partition)


def plan_document(entries: Iterable[PlanEntry]) -> dict[str, Any]:
    """Kafka's reassignment JSON for ``entries`` (sorted by topic and partition)."""
    return {
        "version": PLAN_VERSION,
        "partitions": [
            {"topic": e.topic, "partition": e.partition, "replicas": list(e.replicas)}
            for e in sorted(entries, key=lambda e: e.key)
        ],
    }


def parse_plan(text: str, source: str) -> list[PlanEntry]:
    """Read and check a plan; every mistake is a one-line CliError naming ``source``.

    Kafka's checks: version 1, a non-empty list, each partition once, each replica list
    non-empty without duplicates. ``log_dirs`` is accepted only as all ``"any"`` (moldau
    brokers have one log directory).
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}", 2) from None
    if not isinstance(document, dict):
        raise CliError(f"{source}: expected a JSON object with 'version' and 'partitions'", 2)
    if document.get("version", PLAN_VERSION) != PLAN_VERSION:
        raise CliError(f"{source}: unsupported plan version {document.get('version')!r}", 2)
    items = document.get("partitions")
    if not isinstance(items, list) or not items:
        raise CliError(f"{source}: 'partitions' must be a non-empty list", 2)
    entries: list[PlanEntry] = []
    seen: set[TopicPartitionKey] = set()
    for index, item in enumerate(items):
        entry = _plan_entry(item, f"{source}: partitions[{index}]")
        if entry.key in seen:
            raise CliError(f"{source}: partition {_tp(entry.key)} appears more than once", 2)
        seen.add(entry.key)
        entries.append(entry)
    return entries


def _plan_entry(item: object, where: str) -> PlanEntry:
    if not isinstance(item, dict):
        raise CliError(f"{where} must be an object with topic, partition and replicas", 2)
    topic, partition, replicas = item.get("topic"), item.get("partition"), item.get("replicas")
    if not isinstance(topic, str) or not topic:
        raise CliError(f"{where}: 'topic' must be a non-empty string", 2)
    if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
        raise CliError(f"{where}: 'partition' must be a non-negative integer", 2)
    if not isinstance(replicas, list) or not replicas or not all(map(_is_int, replicas)):
        raise CliError(f"{where}: 'replicas' must be a non-empty list of broker ids", 2)
    if len(set(replicas)) != len(replicas):
        raise CliError(
            f"{where}: duplicate broker in replicas {replicas} of {topic}-{partition}", 2
        )
    log_dirs = item.get("log_dirs")
    if log_dirs is not None and (
        not isinstance(log_dirs, list) or any(d != "any" for d in log_dirs)
    ):
        raise CliError(f"{where}: only 'any' log dirs are supported", 2)
    return PlanEntry(topic, partition, tuple(int(r) for r in replicas))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_plan(path: Path) -> list[PlanEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read plan file {path}: {exc.strerror or exc}", 2) from None
    return parse_plan(text, str(path))


def current_assignment(cluster: ClusterInfo, keys: Iterable[TopicPartitionKey]) -> list[PlanEntry]:
    """The replicas the cluster has now for ``keys`` (the rollback plan Kafka prints)."""
    replicas = {(p.topic, p.partition): p.replicas for p in cluster.partitions}
    return [PlanEntry(t, p, replicas[(t, p)]) for t, p in sorted(keys) if (t, p) in replicas]


def check_plan_against(cluster: ClusterInfo, entries: Sequence[PlanEntry]) -> None:
    """Refuse a plan naming a partition or broker the cluster does not have (Kafka does too;
    the controller would refuse a missing broker anyway, but not before the other partitions
    of the plan had started moving)."""
    known = {(p.topic, p.partition) for p in cluster.partitions}
    missing = [_tp(e.key) for e in entries if e.key not in known]
    if missing:
        raise CliError(f"the plan names partitions that do not exist: {', '.join(missing)}", 2)
    brokers = {b.node_id for b in cluster.brokers}
    unknown = sorted({r for e in entries for r in e.replicas} - brokers)
    if unknown:
        raise CliError(
            f"the plan names brokers that are not in the cluster: {_ids(unknown)} "
            f"(brokers: {_ids(brokers)})",
            2,
        )


def propose(
    cluster: ClusterInfo,
    topics: Sequence[str],
    brokers: Sequence[BrokerRegistration],
    *,
    replication_factor: int | None = None,
    rng: random.Random | None = None,
) -> list[PlanEntry]:
    """A new placement of every partition of ``topics`` over ``brokers``.

    Each topic keeps its replication factor unless one is given; like Kafka's ``--generate``
    the starting broker is random per topic, so leadership spreads over repeated runs.
    """
    rng = rng or random.Random()
    by_topic: dict[str, list[int]] = {}
    factor: dict[str, int] = {}
    for p in cluster.partitions:
        if p.topic in topics:
            by_topic.setdefault(p.topic, []).append(p.partition)
            factor.setdefault(p.topic, len(p.replicas))
    missing = [t for t in topics if t not in by_topic]
    if missing:
        raise CliError(f"topic '{missing[0]}' does not exist", 2)
    plan: list[PlanEntry] = []
    for topic in topics:
        rf = replication_factor or factor[topic]
        count = max(by_topic[topic]) + 1
        try:
            placement = assign_replicas(brokers, count, rf, start_index=rng.randrange(len(brokers)))
        except PlacementError:
            raise CliError(
                f"replication factor {rf} of topic '{topic}' is larger than the "
                f"{len(brokers)} broker(s) given",
                2,
            ) from None
        plan += [PlanEntry(topic, p, placement[p]) for p in sorted(by_topic[topic])]
    return plan


# -- the session -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerNode:
    """A broker as DescribeCluster reports it (the Metadata broker list has no racks)."""

    node_id: int
    host: str
    port: int
    rack: str | None


@dataclass(frozen=True)
class OngoingReassignment:
    """A reassignment in flight: ``replicas`` is old plus target while adding/removing (KIP-455)."""

    topic: str
    partition: int
    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]


@dataclass(frozen=True)
class PartitionOutcome:
    """What the cluster answered for one partition; ``error_code`` 0 is success."""

    topic: str
    partition: int
    error_code: int
    message: str = ""


class PartitionAdminSession(AdminSession):
    """An :class:`AdminSession` that also reassigns partitions and elects leaders.

    The reassignment APIs go to the controller named by Metadata; an answer of
    NOT_CONTROLLER (the controller moved) re-reads Metadata and retries until the session's
    timeout, as Kafka's admin client does.
    """

    def nodes(self) -> list[BrokerNode]:
        """Every broker with its rack, by node id."""
        result = wait(
            self._admin.describe_cluster(request_timeout=self.timeout_ms / 1000),
            self.timeout_ms,
            "describing the cluster",
        )
        nodes = [BrokerNode(n.id, n.host or "", n.port, n.rack or None) for n in result.nodes]
        return sorted(nodes, key=lambda n: n.node_id)

    def alter_reassignments(
        self, targets: Mapping[TopicPartitionKey, tuple[int, ...] | None]
    ) -> list[PartitionOutcome]:
        """AlterPartitionReassignments v0; a target of None cancels that partition's move."""
        schema = schema_for(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0)
        module = schema.request_module
        by_topic: dict[str, list[tuple[int, tuple[int, ...] | None]]] = {}
        for (topic, partition), replicas in sorted(targets.items()):
            by_topic.setdefault(topic, []).append((partition, replicas))
        request = schema.request_type(
            timeout=self._request_timeout(),
            topics=tuple(
                module.ReassignableTopic(
                    name=TopicName(topic),
                    partitions=tuple(
                        module.ReassignablePartition(
                            partition_index=i32(p),
                            replicas=None
                            if replicas is None
                            else tuple(BrokerId(r) for r in replicas),
                        )
                        for p, replicas in parts
                    ),
                )
                for topic, parts in by_topic.items()
            ),
        )
        response = self._to_controller(ApiKey.ALTER_PARTITION_REASSIGNMENTS, request)
        top = int(response.error_code)
        if top:
            raise CliError(
                f"reassigning partitions failed: {_error_text(top, response.error_message)}",
                code=top,
            )
        return [
            PartitionOutcome(
                str(t.name), int(p.partition_index), int(p.error_code), p.error_message or ""
            )
            for t in response.responses
            for p in t.partitions
        ]

    def list_reassignments(
        self, partitions: Iterable[TopicPartitionKey] | None = None
    ) -> list[OngoingReassignment]:
        """ListPartitionReassignments v0: those of ``partitions``, or every one (None)."""
        schema = schema_for(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0)
        module = schema.request_module
        topics = None
        if partitions is not None:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(set(partitions)):
                by_topic.setdefault(topic, []).append(partition)
            topics = tuple(
                module.ListPartitionReassignmentsTopics(
                    name=TopicName(t), partition_indexes=tuple(i32(p) for p in ps)
                )
                for t, ps in by_topic.items()
            )
        request = schema.request_type(timeout=self._request_timeout(), topics=topics)
        response = self._to_controller(ApiKey.LIST_PARTITION_REASSIGNMENTS, request)
        top = int(response.error_code)
        if top:
            raise CliError(
                f"listing reassignments failed: {_error_text(top, response.error_message)}",
                code=top,
            )
        ongoing = [
            OngoingReassignment(
                str(t.name),
                int(p.partition_index),
                tuple(int(r) for r in p.replicas),
                tuple(int(r) for r in p.adding_replicas),
                tuple(int(r) for r in p.removing_replicas),
            )
            for t in response.topics
            for p in t.partitions
        ]
        return sorted(ongoing, key=lambda r: (r.topic, r.partition))

    def elect_leaders(
        self, election_type: ElectionType, partitions: Sequence[TopicPartitionKey] | None
    ) -> list[PartitionOutcome]:
        """ElectLeaders through the admin client; None elects over every partition."""
        tps = None if partitions is None else [TopicPartition(t, p) for t, p in partitions]
        try:
            # No timeout kwargs: confluent-kafka 2.16's binding raises SystemError on either
            # (a format-string bug); ``wait`` below bounds the call by the session timeout.
            future = self._admin.elect_leaders(election_type, tps)
        except (TypeError, ValueError) as exc:
            raise CliError(f"invalid leader election request: {exc}", 2) from None
        results = wait(future, self.timeout_ms, f"electing leaders ({election_type.name})")
        outcomes = []
        for tp, error in results.items():
            code, message = 0, ""
            if error is not None:
                kafka_error = error.args[0] if isinstance(error, KafkaException) else error
                code = kafka_error.code() if isinstance(kafka_error, KafkaError) else -1
                message = kafka_error_text(error)
            outcomes.append(PartitionOutcome(tp.topic, tp.partition, code, message))
        return sorted(outcomes, key=lambda o: (o.topic, o.partition))

    def _request_timeout(self) -> i32Timedelta:
        return i32Timedelta.parse(timedelta(milliseconds=self.timeout_ms))

    def _to_controller(self, api_key: ApiKey, request: Any) -> Any:
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            cluster = self.cluster()
            controller = next(
                (b for b in cluster.brokers if b.node_id == cluster.controller_id), None
            )
            if controller is not None:
                response = wire_request(
                    controller.host, controller.port, api_key, 0, request, self.timeout_ms
                )
                if int(response.error_code) != NOT_CONTROLLER:
                    return response
            if time.monotonic() >= deadline:
                raise CliError(
                    f"no controller answered {ApiKey(api_key).name} within {self.timeout_ms} ms"
                )
            time.sleep(_CONTROLLER_RETRY_S)


def _error_text(code: int, message: str | None) -> str:
    try:
        name = ErrorCode(code).name.upper()
    except ValueError:
        name = f"error code {code}"
    return f"{name}: {message}" if message else name


def _tp(key: TopicPartitionKey) -> str:
    return f"{key[0]}-{key[1]}"


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))


def _parse_ids(text: str, what: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"invalid {what} '{text}': expected comma-separated integers", 2) from None
    if not ids:
        raise CliError(f"no {what} given", 2)
    return list(dict.fromkeys(ids))


# -- commands ----------------------------------------------------------------------------------

app = typer.Typer(help="Reassign partitions to brokers and elect leaders.", no_args_is_help=True)


@app.command("generate")
def generate(
    topics: Annotated[
        str, typer.Option("--topics", help="Topics to move, comma-separated.", show_default=False)
    ],
    brokers: Annotated[
        str,
        typer.Option(
            "--brokers", help="Broker ids to place them on, e.g. 1,2,3.", show_default=False
        ),
    ],
    replication_factor: Annotated[
        int | None,
        typer.Option("--replication-factor", min=1, help="New replication factor [unchanged]."),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Propose a plan placing every partition of --topics on --brokers (nothing is moved).

    Text output shows the current assignment (keep it to roll back) and the proposal;
    --format json prints only the proposal, ready for ``reassign --plan``."""
    names = list(dict.fromkeys(t.strip() for t in topics.split(",") if t.strip()))
    if not names:
        raise CliError("no topics given", 2)
    wanted = _parse_ids(brokers, "broker list")
    session = PartitionAdminSession(bootstrap, timeout_ms)
    nodes = {n.node_id: n for n in session.nodes()}
    unknown = [b for b in wanted if b not in nodes]
    if unknown:
        raise CliError(f"brokers not in the cluster: {_ids(unknown)} (brokers: {_ids(nodes)})", 2)
    cluster = session.cluster()
    registrations = [
        BrokerRegistration(b, nodes[b].host, nodes[b].port, nodes[b].rack) for b in wanted
    ]
    proposal = propose(cluster, names, registrations, replication_factor=replication_factor)
    if output is OutputFormat.json:
        print_json(plan_document(proposal))
        return
    current = current_assignment(cluster, (e.key for e in proposal))
    print("Current partition replica assignment")
    print(json.dumps(plan_document(current), separators=(",", ":")))
    print()
    print("Proposed partition reassignment configuration")
    print(json.dumps(plan_document(proposal), separators=(",", ":")))


class _ReassignAction(StrEnum):
    execute = "execute"
    verify = "verify"
    cancel = "cancel"


@app.command("reassign")
def reassign(
    plan: Annotated[
        Path,
        typer.Option("--plan", help="Reassignment plan (Kafka's JSON format).", show_default=False),
    ],
    execute: Annotated[bool, typer.Option("--execute", help="Start the reassignment.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Tell whether the plan has been carried out.")
    ] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel what is still in flight for the plan.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Carry out (--execute), check (--verify) or cancel (--cancel) a reassignment plan."""
    chosen = [a for a, on in zip(_ReassignAction, (execute, verify, cancel), strict=True) if on]
    if len(chosen) != 1:
        raise CliError("give exactly one of --execute, --verify or --cancel", 2)
    entries = read_plan(plan)
    session = PartitionAdminSession(bootstrap, timeout_ms)
    if chosen[0] is _ReassignAction.execute:
        _execute(session, entries, output)
    elif chosen[0] is _ReassignAction.verify:
        _verify(session, entries, output)
    else:
        _cancel(session, entries, output)


def _execute(
    session: PartitionAdminSession, entries: Sequence[PlanEntry], output: OutputFormat
) -> None:
    cluster = session.cluster()
    check_plan_against(cluster, entries)
    current = current_assignment(cluster, (e.key for e in entries))
    outcomes = session.alter_reassignments({e.key: e.replicas for e in entries})
    started = [o for o in outcomes if o.error_code == 0]
    if output is OutputFormat.json:
        print_json(
            {
                "current": plan_document(current),
                "started": [{"topic": o.topic, "partition": o.partition} for o in started],
            }
        )
    else:
        print("Current partition replica assignment")
        print()
        print(json.dumps(plan_document(current), separators=(",", ":")))
        print()
        print("Save this to use as the --plan option during rollback")
        if started:
            names = ", ".join(_tp((o.topic, o.partition)) for o in started)
            print(f"Successfully started partition reassignments for {names}")
    _fail_on_errors(outcomes, "reassignment")


def _cancel(
    session: PartitionAdminSession, entries: Sequence[PlanEntry], output: OutputFormat
) -> None:
    outcomes = session.alter_reassignments({e.key: None for e in entries})
    cancelled = [o for o in outcomes if o.error_code == 0]
    if output is OutputFormat.json:
        print_json({"cancelled": [{"topic": o.topic, "partition": o.partition} for o in cancelled]})
    elif cancelled:
        names = ", ".join(_tp((o.topic, o.partition)) for o in cancelled)
        print(f"Successfully cancelled partition reassignments for: {names}")
    else:
        print("No reassignment of these partitions was in progress.")
    _fail_on_errors(
        [o for o in outcomes if o.error_code != ErrorCode.no_reassignment_in_progress.value],
        "cancelling the reassignment",
    )


def _verify(
    session: PartitionAdminSession, entries: Sequence[PlanEntry], output: OutputFormat
) -> None:
    ongoing = {(r.topic, r.partition) for r in session.list_reassignments(e.key for e in entries)}
    now = {
        e.key: e.replicas for e in current_assignment(session.cluster(), (e.key for e in entries))
    }
    rows: list[dict[str, Any]] = []
    for e in entries:
        if e.key in ongoing:
            status = "in_progress"
        elif e.key not in now:
            status = "missing"
        elif now[e.key] == e.replicas:
            status = "completed"
        else:
            status = "mismatch"
        rows.append(
            {
                "topic": e.topic,
                "partition": e.partition,
                "status": status,
                "target": list(e.replicas),
                "replicas": list(now.get(e.key, ())),
            }
        )
    if output is OutputFormat.json:
        print_json({"partitions": rows, "complete": all(r["status"] == "completed" for r in rows)})
        return
    print("Status of partition reassignment:")
    for r in rows:
        name = f"{r['topic']}-{r['partition']}"
        if r["status"] == "in_progress":
            print(f"Reassignment of partition {name} is still in progress.")
        elif r["status"] == "completed":
            print(f"Reassignment of partition {name} is completed.")
        elif r["status"] == "missing":
            print(f"Partition {name} does not exist.")
        else:
            print(
                f"There is no active reassignment of partition {name}, but replica set is "
                f"{_ids_in_order(r['replicas'])} rather than {_ids_in_order(r['target'])}."
            )


def _ids_in_order(ids: Iterable[int]) -> str:
    return ",".join(map(str, ids))


def _fail_on_errors(outcomes: Iterable[PartitionOutcome], doing: str) -> None:
    failed = [o for o in outcomes if o.error_code != 0]
    if failed:
        details = "; ".join(
            f"{o.topic}-{o.partition}: {_error_text(o.error_code, o.message)}" for o in failed
        )
        raise CliError(
            f"{doing} failed for {len(failed)} partition(s): {details}", code=failed[0].error_code
        )


@app.command("list-reassignments")
def list_reassignments(
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="Only this topic (repeatable).")
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Reassignments in progress: current replicas and the ones being added and removed."""
    session = PartitionAdminSession(bootstrap, timeout_ms)
    ongoing = session.list_reassignments()
    if topic:
        ongoing = [r for r in ongoing if r.topic in set(topic)]
    if output is OutputFormat.json:
        print_json([asdict(r) for r in ongoing])
        return
    if not ongoing:
        print("No partition reassignments in progress.")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Topic", "Partition", "Replicas", "Adding", "Removing"):
        table.add_column(column, no_wrap=True)
    for r in ongoing:
        table.add_row(
            r.topic,
            str(r.partition),
            _ids_in_order(r.replicas),
            _ids_in_order(r.adding_replicas),
            _ids_in_order(r.removing_replicas),
        )
    stdout_console().print(table)


class ElectionKind(StrEnum):
    preferred = "preferred"
    unclean = "unclean"


@app.command("elect-leaders")
def elect_leaders(
    election: Annotated[
        ElectionKind,
        typer.Option("--type", case_sensitive=False, help="Preferred replica, or unclean."),
    ] = ElectionKind.preferred,
    topic: Annotated[
        str | None, typer.Option("--topic", help="Only this topic [every partition].")
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", min=0, help="Only this partition of --topic.")
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Elect the preferred replica (or, unclean, any live replica) as leader.

    Unclean election may lose acknowledged messages: a replica outside the ISR can lead."""
    if partition is not None and topic is None:
        raise CliError("--partition needs --topic", 2)
    session = PartitionAdminSession(bootstrap, timeout_ms)
    targets: list[TopicPartitionKey] | None = None
    if topic is not None:
        known = [p.partition for p in session.cluster().partitions if p.topic == topic]
        if not known:
            raise CliError(f"topic '{topic}' does not exist", 2)
        if partition is not None and partition not in known:
            raise CliError(f"topic '{topic}' has no partition {partition}", 2)
        targets = [(topic, p) for p in known if partition is None or p == partition]
    kind = ElectionType.PREFERRED if election is ElectionKind.preferred else ElectionType.UNCLEAN
    outcomes = session.elect_leaders(kind, targets)
    elected = [o for o in outcomes if o.error_code == 0]
    not_needed = [o for o in outcomes if o.error_code == ELECTION_NOT_NEEDED]
    if output is OutputFormat.json:
        print_json([asdict(o) for o in outcomes])
    else:
        if elected:
            names = ", ".join(_tp((o.topic, o.partition)) for o in elected)
            print(f"Successfully completed leader election ({kind.name}) for partitions {names}")
        if not_needed:
            names = ", ".join(_tp((o.topic, o.partition)) for o in not_needed)
            print(f"Valid replica already elected for partitions {names}")
        if not outcomes:
            print("No partitions needed a leader election.")
    _fail_on_errors(
        [o for o in outcomes if o.error_code not in (0, ELECTION_NOT_NEEDED)],
        f"leader election ({kind.name})",
    )
