// Run a list of kafkajs admin operations and print each one's result (or error) as JSON.
//
// Request: { brokers: [..], retries: n (optional, kafkajs' default otherwise), ops: [{ op: 'createTopics' | 'fetchTopicMetadata' |
//            'fetchTopicOffsets' | 'fetchTopicOffsetsByTimestamp' | 'deleteTopics' |
//            'listTopics', args: ... }] }
// Operations run in order on one connected admin client; a failing one records
// { error: {...} } and the rest still run, so a test can check the error kafkajs reports.
// Output: { results: [ { ok: <result> } | { error: {...} } ] }.
'use strict'

const { makeKafka, describeError, runMain } = require('./common')

async function runOp(admin, { op, args }) {
  switch (op) {
    case 'createTopics':
      return admin.createTopics(args)
    case 'fetchTopicMetadata':
      return admin.fetchTopicMetadata(args)
    case 'fetchTopicOffsets':
      return admin.fetchTopicOffsets(args.topic)
    case 'fetchTopicOffsetsByTimestamp':
      return admin.fetchTopicOffsetsByTimestamp(args.topic, args.timestamp)
    case 'deleteTopics':
      return admin.deleteTopics(args)
    case 'listTopics':
      return admin.listTopics()
    default:
      throw new Error(`unknown op ${op}`)
  }
}

runMain(async (req) => {
  const retry = req.retries === undefined ? undefined : { retries: req.retries }
  const admin = makeKafka(req.brokers).admin({ retry })
  await admin.connect()
  const results = []
  try {
    for (const op of req.ops) {
      try {
        const ok = await runOp(admin, op)
        results.push({ ok: ok === undefined ? null : ok })
      } catch (err) {
        process.stderr.write(`${op.op} failed: ${err.stack || err}\n`)
        results.push({ error: describeError(err) })
      }
    }
  } finally {
    await admin.disconnect()
  }
  return { results }
})
