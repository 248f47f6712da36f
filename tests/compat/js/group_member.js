// One kafkajs consumer-group member, run as its own process so tests can SIGKILL it.
//
// Usage: node group_member.js '<json options>' with { bootstrap, group, topic,
// session_timeout_ms }. Reports on stdout, one JSON object per line, exactly like
// tests/compat/group_member.py: ready, assignment (after every join), msg, committed (after
// each record's own synchronous commit) and closed (after a clean disconnect on SIGTERM,
// which leaves the group).
'use strict'

const { makeKafka } = require('./common')

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, t: Date.now() / 1000, ...(fields || {}) }) + '\n')
}

async function main() {
  const opts = JSON.parse(process.argv[2])
  const kafka = makeKafka([opts.bootstrap])
  const consumer = kafka.consumer({
    groupId: opts.group,
    sessionTimeout: opts.session_timeout_ms || 6000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 100,
  })
  let current = []
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const next = (payload.memberAssignment[opts.topic] || []).slice().sort((a, b) => a - b)
    const added = next.filter((p) => !current.includes(p))
    const revoked = current.filter((p) => !next.includes(p))
    current = next
    emit('assignment', { partitions: next, added, revoked })
  })
  let stopping = false
  process.on('SIGTERM', async () => {
    if (stopping) return
    stopping = true
    await consumer.disconnect()
    emit('closed')
    process.exit(0)
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [opts.topic], fromBeginning: true })
  emit('ready')
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      const offset = Number(message.offset)
      emit('msg', { p: partition, o: offset })
      try {
        await consumer.commitOffsets([{ topic, partition, offset: String(offset + 1) }])
      } catch (err) {
        return // a rebalance fenced this generation: the successor re-reads
      }
      emit('committed', { p: partition, o: offset + 1 })
    },
  })
}

main().catch((err) => {
  process.stderr.write(`failed: ${err.stack || err}\n`)
  process.exit(1)
})
