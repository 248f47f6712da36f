// Write orders and their audit entries atomically with a kafkajs transactional producer.
//
// Run (kafkajs is installed under tests/compat/js by `make test-deps`):
//   NODE_PATH=tests/compat/js/node_modules node examples/kafkajs_transactions.js \
//     [--bootstrap HOST:PORT] [--topic orders] [--audit-topic order-audit] \
//     [--transactional-id order-writer-js] [--count N] [--group ID --source-topic NAME]
//
// A kafkajs transactional producer needs idempotent: true and at most one request in flight
// (maxInFlightRequests: 1): kafkajs refuses to create it otherwise. connect() registers the
// transactionalId with the transaction coordinator, which fences any older producer with
// that id. producer.transaction() begins a transaction and returns an object whose send(),
// sendBatch() and sendOffsets() all belong to it; commit() or abort() ends it.
// A transaction begun right after a commit may be told CONCURRENT_TRANSACTIONS while the
// coordinator still writes the previous one's markers; kafkajs logs that as an error and
// retries by itself.
//
// The run makes two transactions of --count orders, each order going to --topic and an
// audit entry to --audit-topic. The first commits. The second meets a simulated error half-way
// and is aborted: read_committed consumers (kafkajs: readUncommitted: false, the default)
// never see any of it.
//
// With --group and --source-topic, each transaction also commits the consumer group's offset
// for partition 0 of the source topic (sendOffsets), as a processor that derived one order
// from each source message would: the committed transaction moves it to --count, the aborted
// one would have moved it to 2 x --count and, being aborted, does not.
'use strict'

const { Kafka, Partitioners, logLevel } = require('kafkajs')

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback
}

const bootstrap = option('bootstrap', process.env.BOOTSTRAP_SERVERS || 'localhost:9092')
const ordersTopic = option('topic', 'orders')
const auditTopic = option('audit-topic', 'order-audit')
const transactionalId = option('transactional-id', 'order-writer-js')
const count = Number(option('count', '4'))
const groupId = option('group', null)
const sourceTopic = option('source-topic', null)

class SimulatedError extends Error {}

function orderMessages(txn, seqs) {
  const orders = seqs.map((i) => ({
    key: `customer-${i % 3}`,
    value: JSON.stringify({ orderId: `order-${i}`, customerId: `customer-${i % 3}`, txn }),
  }))
  const audit = seqs.map((i) => ({
    key: `customer-${i % 3}`,
    value: JSON.stringify({ event: 'order-created', orderId: `order-${i}`, txn }),
  }))
  return [
    { topic: ordersTopic, messages: orders },
    { topic: auditTopic, messages: audit },
  ]
}

function report(txn, results) {
  for (const r of results) {
    console.log(`sent txn=${txn} topic=${r.topicName} partition=${r.partition} baseOffset=${r.baseOffset}`)
  }
}

// The group's offset for the source partition, committed only if the transaction commits.
async function sendSourceOffset(transaction, offset) {
  if (groupId === null || sourceTopic === null) return
  await transaction.sendOffsets({
    consumerGroupId: groupId,
    topics: [{ topic: sourceTopic, partitions: [{ partition: 0, offset: String(offset) }] }],
  })
  console.log(`sent offset group=${groupId} topic=${sourceTopic} partition=0 offset=${offset}`)
}

async function main() {
  const kafka = new Kafka({
    clientId: 'order-service',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
  })

  // allowAutoTopicCreation: false below, so create whatever topic is missing first.
  const admin = kafka.admin()
  await admin.connect()
  const existing = new Set(await admin.listTopics())
  const missing = [ordersTopic, auditTopic]
    .filter((t) => !existing.has(t))
    .map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 }))
  if (missing.length > 0) {
    await admin.createTopics({ topics: missing })
    console.log(`created topics ${missing.map((t) => t.topic).join(', ')}`)
  }
  await admin.disconnect()

  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: true,
    transactionalId,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  console.log(`transactional id '${transactionalId}' via ${bootstrap}`)

  // Transaction 1: one sendBatch() across both topics, then commit.
  const first = await producer.transaction()
  try {
    const seqs = [...Array(count).keys()]
    report(1, await first.sendBatch({ topicMessages: orderMessages(1, seqs) }))
    await sendSourceOffset(first, count)
    await first.commit()
    console.log(`committed transaction 1 with ${count} orders`)
  } catch (err) {
    await first.abort()
    throw err
  }

  // Transaction 2: sends order by order and fails half-way; abort() discards all of it.
  const second = await producer.transaction()
  try {
    for (let i = count; i < 2 * count; i++) {
      if (i - count === Math.floor(count / 2)) {
        await sendSourceOffset(second, 2 * count)
        throw new SimulatedError(`payment service unavailable at order-${i}`)
      }
      for (const { topic, messages } of orderMessages(2, [i])) {
        report(2, await second.send({ topic, messages }))
      }
    }
    await second.commit()
    console.log(`committed transaction 2 with ${count} orders`)
  } catch (err) {
    if (!(err instanceof SimulatedError)) throw err
    await second.abort()
    console.log(`aborted transaction 2: ${err.message}`)
  }

  await producer.disconnect()
}

main().catch((err) => {
  console.error(`failed: ${err.stack || err}`)
  process.exit(1)
})
