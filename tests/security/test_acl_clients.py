"""ACL authorization against a real broker: SASL PLAIN users, confluent-kafka and kafka-python.

The broker runs ``authorizer.class.name=acl`` with ``User:admin`` as super user; ``alice``
and ``bob`` get only what the ACLs created (as admin, through the AdminClient) give them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import TopicAuthorizationFailedError
from sasl_helpers import ADMIN_PASSWORD, ALICE_PASSWORD, confluent_config, sasl_broker_config

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

BOB_PASSWORD = "bob-Secret-55aa"
DAVE_PASSWORD = "dave-Secret-0c3d"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="admin" password="{ADMIN_PASSWORD}" user_admin="{ADMIN_PASSWORD}" '
    f'user_alice="{ALICE_PASSWORD}" user_bob="{BOB_PASSWORD}" user_dave="{DAVE_PASSWORD}";'
)
PASSWORDS = {
    "admin": ADMIN_PASSWORD,
    "alice": ALICE_PASSWORD,
    "bob": BOB_PASSWORD,
    "dave": DAVE_PASSWORD,
}


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    config = sasl_broker_config(
        **{
            "sasl.jaas.config": JAAS,
            "authorizer.class.name": "acl",
            "super.users": "User:admin",
            "group.initial.rebalance.delay.ms": "0",
        }
    )
    with BrokerProcess(config=config) as process:
        yield process
        log = process.output()
    for password in PASSWORDS.values():
        assert password not in log


def client(broker: BrokerProcess, user: str, **extra: Any) -> dict[str, Any]:
    return confluent_config(broker.bootstrap, "PLAIN", user, PASSWORDS[user], **extra)


def admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient(client(broker, "admin"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(broker: BrokerProcess, name: str) -> None:
    client = admin(broker)  # keep the handle alive until the futures resolve
    for future in client.create_topics([NewTopic(name, 1, 1)]).values():
        future.result(30)


def grant(
    broker: BrokerProcess,
    user: str,
    resource_type: ResourceType,
    name: str,
    *operations: AclOperation,
    permission: AclPermissionType = AclPermissionType.ALLOW,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
) -> None:
    bindings = [
        AclBinding(resource_type, name, pattern, f"User:{user}", "*", op, permission)
        for op in operations
    ]
    client = admin(broker)
    for future in client.create_acls(bindings).values():
        future.result(30)


def produce_one(broker: BrokerProcess, user: str, topic: str, **extra: Any) -> KafkaError | None:
    """Produce one record; the delivery error, or None when it was written."""
    errors: list[KafkaError | None] = []
    producer = Producer(client(broker, user, **{"message.timeout.ms": 10000, **extra}))
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(20)
    return errors[0] if errors else KafkaError(KafkaError._MSG_TIMED_OUT)


def consume(broker: BrokerProcess, user: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = Consumer(
        client(broker, user, **{"group.id": group, "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None:
                if len(values) >= count:
                    break
                continue
            if message.error():
                raise KafkaException(message.error())
            values.append(bytes(message.value()))
    finally:
        consumer.close()
    return values


def test_read_only_user_consumes_but_cannot_produce(broker: BrokerProcess) -> None:
    topic, group = unique("ro"), unique("g")
    create_topic(broker, topic)
    assert produce_one(broker, "admin", topic) is None
    grant(broker, "alice", ResourceType.TOPIC, topic, AclOperation.READ)
    grant(broker, "alice", ResourceType.GROUP, group, AclOperation.READ)
    assert consume(broker, "alice", topic, group, 1) == [b"v"]
    error = produce_one(broker, "alice", topic)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_prefixed_acls_apply_to_every_matching_topic(broker: BrokerProcess) -> None:
    prefix = unique("pfx") + "-"
    create_topic(broker, prefix + "eu")
    create_topic(broker, "other-" + prefix)
    grant(
        broker,
        "bob",
        ResourceType.TOPIC,
        prefix,
        AclOperation.WRITE,
        pattern=ResourcePatternType.PREFIXED,
    )
    assert produce_one(broker, "bob", prefix + "eu") is None
    error = produce_one(broker, "bob", "other-" + prefix)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_deny_overrides_an_allow(broker: BrokerProcess) -> None:
    topic = unique("deny")
    create_topic(broker, topic)
    grant(broker, "bob", ResourceType.TOPIC, topic, AclOperation.WRITE)
    assert produce_one(broker, "bob", topic) is None
    grant(
        broker,
        "bob",
        ResourceType.TOPIC,
        topic,
        AclOperation.WRITE,
        permission=AclPermissionType.DENY,
    )
    error = produce_one(broker, "bob", topic)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_group_acl_gates_joining(broker: BrokerProcess) -> None:
    topic, group = unique("grp"), unique("g")
    create_topic(broker, topic)
    grant(broker, "bob", ResourceType.TOPIC, topic, AclOperation.READ)
    with pytest.raises(KafkaException) as refused:
        consume(broker, "bob", topic, group, 1)
    assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(broker, "bob", ResourceType.GROUP, group, AclOperation.READ)
    assert produce_one(broker, "admin", topic) is None
    assert consume(broker, "bob", topic, group, 1) == [b"v"]


def test_transactional_producer_needs_its_transactional_id(broker: BrokerProcess) -> None:
    topic, txn_id = unique("txn"), unique("tx")
    create_topic(broker, topic)
    grant(broker, "alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
    settings = client(broker, "alice", **{"transactional.id": txn_id})
    producer = Producer(settings)
    with pytest.raises(KafkaException) as refused:
        producer.init_transactions(20)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    grant(broker, "alice", ResourceType.TRANSACTIONAL_ID, txn_id, AclOperation.WRITE)
    producer = Producer(settings)
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce(topic, b"in-txn")
    producer.commit_transaction(20)


def test_idempotent_producer_needs_write_somewhere(broker: BrokerProcess) -> None:
    topic = unique("idem")
    create_topic(broker, topic)
    # dave may see the topic but write nowhere: InitProducerId is refused.
    grant(broker, "dave", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    producer = Producer(client(broker, "dave", **{"enable.idempotence": True}))
    with pytest.raises(KafkaException) as refused:
        for _ in range(100):  # the fatal error surfaces on the first produce after it
            producer.produce(topic, b"v")
            producer.flush(0.1)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    grant(broker, "dave", ResourceType.TOPIC, topic, AclOperation.WRITE)
    assert produce_one(broker, "dave", topic, **{"enable.idempotence": True}) is None


def test_metadata_hides_topics_a_user_cannot_describe(broker: BrokerProcess) -> None:
    visible, hidden = unique("seen"), unique("hidden")
    create_topic(broker, visible)
    create_topic(broker, hidden)
    grant(broker, "bob", ResourceType.TOPIC, visible, AclOperation.DESCRIBE)
    topics = AdminClient(client(broker, "bob")).list_topics(timeout=20).topics
    assert visible in topics and hidden not in topics
    assert hidden in admin(broker).list_topics(timeout=20).topics


def test_kafka_python_sees_topic_authorization_failures(broker: BrokerProcess) -> None:
    topic = unique("kp")
    create_topic(broker, topic)
    grant(broker, "alice", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    settings = {
        "bootstrap_servers": broker.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "alice",
        "sasl_plain_password": ALICE_PASSWORD,
    }
    producer = KafkaProducer(**settings, retries=0, max_block_ms=10000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic, b"x").get(timeout=20)
    finally:
        producer.close()
    grant(broker, "alice", ResourceType.TOPIC, topic, AclOperation.WRITE, AclOperation.READ)
    producer = KafkaProducer(**settings)
    producer.send(topic, b"ok").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(
        topic, **settings, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    assert [m.value for m in consumer] == [b"ok"]
    consumer.close()


def test_acl_admin_needs_cluster_alter_and_acls_can_be_listed_and_deleted(
    broker: BrokerProcess,
) -> None:
    topic = unique("adm")
    with pytest.raises(KafkaException) as refused:
        binding = AclBinding(
            ResourceType.TOPIC,
            topic,
            ResourcePatternType.LITERAL,
            "User:bob",
            "*",
            AclOperation.READ,
            AclPermissionType.ALLOW,
        )
        bob = AdminClient(client(broker, "bob"))
        for future in bob.create_acls([binding]).values():
            future.result(20)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    grant(broker, "bob", ResourceType.TOPIC, topic, AclOperation.READ, AclOperation.WRITE)
    flt = AclBindingFilter(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    superuser = admin(broker)
    found = superuser.describe_acls(flt).result(20)
    assert sorted(b.operation for b in found) == [AclOperation.READ, AclOperation.WRITE]
    deleted = next(iter(superuser.delete_acls([flt]).values())).result(20)
    assert len(deleted) == 2
    assert superuser.describe_acls(flt).result(20) == []


def test_acls_survive_a_restart(broker: BrokerProcess) -> None:
    topic = unique("persist")
    create_topic(broker, topic)
    grant(broker, "alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
    broker.restart()
    assert produce_one(broker, "alice", topic) is None


def test_acl_apis_answer_security_disabled_without_an_authorizer() -> None:
    # librdkafka turns this error into an empty list; kafka-python raises it.
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KpResourceType
    from kafka.errors import SecurityDisabledError

    with BrokerProcess() as plain:
        anonymous = KafkaAdminClient(bootstrap_servers=plain.bootstrap)
        everything = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                KpResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
        try:
            with pytest.raises(SecurityDisabledError):
                anonymous.describe_acls(everything)
        finally:
            anonymous.close()
