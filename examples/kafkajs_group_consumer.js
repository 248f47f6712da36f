// Consume orders with kafkajs in the consumer group 'order-processing'.
//
// Run (kafkajs is installed under tests/compat/js by `make test-deps`):
//   NODE_PATH=tests/compat/js/node_modules node examples/kafkajs_group_consumer.js \
//     [--bootstrap HOST:PORT] [--topic orders] [--group order-processing] [--batch] \
//     [--max-messages N] [--idle-ms MS] [--timeout-ms MS]
//
// A kafkajs consumer always belongs to a group. fromBeginning: true only matters while the
// group has no committed offset for a partition; after that every run resumes where the
// group's last commit left it.
//
// Default mode, eachMessage: kafkajs calls the handler once per message, marks it processed
// when the handler returns and (autoCommit, the default) commits after each fetched batch.
//
// --batch mode, eachBatch with autoCommit: false: the handler gets a whole fetched batch of
// one partition and says itself how far it got. resolveOffset(offset) marks a message as
// processed, heartbeat() keeps the session alive during long batches, and
// commitOffsetsIfNecessary(uncommittedOffsets()) commits what has been resolved. (Called
// without arguments it only commits when autoCommitInterval/autoCommitThreshold say so,
// which with autoCommit off is never.)
//
// The run ends after --max-messages, or once no message has arrived for --idle-ms since
// joining the group, or after --timeout-ms in all. (After an idle stop, disconnecting can take
// up to kafkajs' maxWaitTimeInMs, 5 s by default, while an empty fetch is still waiting.)
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback
}

const bootstrap = option('bootstrap', process.env.BOOTSTRAP_SERVERS || 'localhost:9092')
const topic = option('topic', 'orders')
const groupId = option('group', 'order-processing')
const batchMode = process.argv.includes('--batch')
const maxMessages = Number(option('max-messages', '1000'))
const idleMs = Number(option('idle-ms', '5000'))
const timeoutMs = Number(option('timeout-ms', '60000'))

function describe(topicName, partition, message) {
  const key = message.key === null ? null : message.key.toString()
  const value = JSON.stringify(JSON.parse(message.value.toString()))
  return `partition=${partition} offset=${message.offset} key=${key} value=${value}`
}

async function main() {
  const kafka = new Kafka({
    clientId: 'order-service',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
  })
  const consumer = kafka.consumer({ groupId })

  let count = 0
  let joined = false
  let lastActivity = Date.now()
  let finish
  let stopping = Promise.resolve()
  const finished = new Promise((resolve) => {
    finish = resolve
  })

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    joined = true
    lastActivity = Date.now()
    const partitions = (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    console.log(`assigned partitions [${partitions.join(', ')}]`)
  })

  // A crash kafkajs will not retry (e.g. a message it cannot decode) ends the run as a failure.
  let crash = null
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) {
      crash = payload.error
      finish('crash')
    }
  })

  // Count a processed message; true once the run has all it wants.
  function consumed(partition, message) {
    console.log(describe(topic, partition, message))
    count += 1
    lastActivity = Date.now()
    if (count >= maxMessages) {
      // stop() marks the consumer stopped at once (the returned promise settles only after
      // this handler returns), so kafkajs hands over no further message, commits what was
      // processed and leaves the group.
      stopping = consumer.stop()
      finish('max-messages')
      return true
    }
    return false
  }

  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const mode = batchMode ? 'eachBatch, manual commits' : 'eachMessage, auto-commit'
  console.log(`consuming '${topic}' in group '${groupId}' (${mode}) via ${bootstrap}`)

  if (batchMode) {
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({
        batch,
        resolveOffset,
        heartbeat,
        commitOffsetsIfNecessary,
        uncommittedOffsets,
        isRunning,
        isStale,
      }) => {
        for (const message of batch.messages) {
          if (!isRunning() || isStale()) break
          const done = consumed(batch.partition, message)
          resolveOffset(message.offset)
          await heartbeat()
          if (done) break
        }
        await commitOffsetsIfNecessary(uncommittedOffsets())
      },
    })
  } else {
    await consumer.run({
      eachMessage: async ({ partition, message, heartbeat }) => {
        consumed(partition, message)
        await heartbeat()
      },
    })
  }

  const started = Date.now()
  const timer = setInterval(() => {
    const now = Date.now()
    if (joined && now - lastActivity >= idleMs) finish('idle')
    if (now - started >= timeoutMs) finish('timeout')
  }, 100)
  const reason = await finished
  clearInterval(timer)
  await stopping
  // disconnect() waits for the batch in progress, commits (eachMessage mode) and leaves
  // the group, so its partitions move to other members at once.
  await consumer.disconnect()
  console.log(`consumed ${count} messages`)
  if (reason === 'crash') {
    console.log(`consumer crashed: ${crash}`)
    process.exit(1)
  }
  if (reason === 'timeout' && !joined) {
    console.log('never joined the group')
    process.exit(1)
  }
}

main().catch((err) => {
  console.error(`failed: ${err.stack || err}`)
  process.exit(1)
})
