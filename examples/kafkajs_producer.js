// Produce orders with kafkajs, then a batch spanning two topics.
//
// Run (kafkajs is installed under tests/compat/js by `make test-deps`):
//   NODE_PATH=tests/compat/js/node_modules node examples/kafkajs_producer.js \
//     [--bootstrap HOST:PORT] [--topic orders] [--audit-topic order-audit]
//
// The producer is created with allowAutoTopicCreation: false, as careful services do, so
// the example first creates whichever of the two topics is missing with the kafkajs admin
// client. idempotent: true gives
// each message a producer id and sequence number, so a retried request cannot duplicate it.
'use strict'

const { Kafka, Partitioners, logLevel } = require('kafkajs')

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback
}

const bootstrap = option('bootstrap', process.env.BOOTSTRAP_SERVERS || 'localhost:9092')
const ordersTopic = option('topic', 'orders')
const auditTopic = option('audit-topic', 'order-audit')

function order(i) {
  return { orderId: `order-${i}`, customerId: `customer-${i % 3}`, amount: 20 + i }
}

function report(results) {
  for (const r of results) {
    console.log(`sent topic=${r.topicName} partition=${r.partition} baseOffset=${r.baseOffset}`)
  }
}

async function main() {
  const kafka = new Kafka({
    clientId: 'order-service',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
  })

  const admin = kafka.admin()
  await admin.connect()
  const existing = new Set(await admin.listTopics())
  const missing = [
    { topic: ordersTopic, numPartitions: 3, replicationFactor: 1 },
    { topic: auditTopic, numPartitions: 1, replicationFactor: 1 },
  ].filter((t) => !existing.has(t.topic))
  if (missing.length > 0) {
    await admin.createTopics({ topics: missing })
    console.log(`created topics ${missing.map((t) => t.topic).join(', ')}`)
  }
  await admin.disconnect()

  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: true,
    // The Java client's partitioner (kafkajs 2's default), named to silence kafkajs' notice
    // that the default changed in 2.0: a key lands where a Java producer would put it.
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()

  // One send() per topic: the key picks the partition, the headers travel with the message.
  const first = await producer.send({
    topic: ordersTopic,
    messages: [0, 1, 2].map((i) => ({
      key: order(i).customerId,
      value: JSON.stringify(order(i)),
      headers: { 'event-type': 'order-created', source: 'order-service' },
    })),
  })
  report(first)

  // sendBatch() groups messages for several topics into as few requests as possible.
  const batch = await producer.sendBatch({
    topicMessages: [
      {
        topic: ordersTopic,
        messages: [3, 4].map((i) => ({ key: order(i).customerId, value: JSON.stringify(order(i)) })),
      },
      {
        topic: auditTopic,
        messages: [{ key: 'audit', value: JSON.stringify({ event: 'orders-batch', count: 2 }) }],
      },
    ],
  })
  report(batch)

  await producer.disconnect()
  console.log('produced 6 messages to 2 topics')
}

main().catch((err) => {
  console.error(`failed: ${err.stack || err}`)
  process.exit(1)
})
