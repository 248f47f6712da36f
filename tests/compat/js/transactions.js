// Run kafkajs transactions as the request on stdin says, then read the topic back with
// kafkajs consumers, and print what happened as JSON.
//
// Request: { brokers: [..], topic, transactionalId,
//            transactions: [{ action: 'commit' | 'abort', messages: [{ key: b64 | null,
//                             value: b64 }], offsets?: { groupId, topic, partition, offset } }],
//            readers: [{ groupId, readUncommitted: bool, stopAfterValue: b64,
//                        timeoutMs }] }
// Each transaction is producer.transaction(), one send() of its messages to partition 0,
// then sendOffsets() if it has offsets, then commit() or abort(). Each reader is a kafkajs
// consumer in its own group, subscribed fromBeginning, that collects every message it is
// given until it has seen the value stopAfterValue (or timeoutMs passes: then timedOut is
// true). Output: { sent: [[RecordMetadata, ...], ...],
//                  reads: [{ timedOut, messages: [{ partition, offset, key, value }] }] }
'use strict'

const { makeKafka, fromB64, runMain } = require('./common')

function toB64(buffer) {
  return buffer === null || buffer === undefined ? null : buffer.toString('base64')
}

async function runTransactions(kafka, req) {
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: true,
    transactionalId: req.transactionalId,
    maxInFlightRequests: 1,
  })
  await producer.connect()
  const sent = []
  try {
    for (const txn of req.transactions) {
      const transaction = await producer.transaction()
      try {
        sent.push(
          await transaction.send({
            topic: req.topic,
            messages: txn.messages.map((m) => ({
              partition: 0,
              key: fromB64(m.key),
              value: fromB64(m.value),
            })),
          }),
        )
        if (txn.offsets) {
          const { groupId, topic, partition, offset } = txn.offsets
          await transaction.sendOffsets({
            consumerGroupId: groupId,
            topics: [{ topic, partitions: [{ partition, offset: String(offset) }] }],
          })
        }
      } catch (err) {
        await transaction.abort()
        throw err
      }
      if (txn.action === 'commit') await transaction.commit()
      else await transaction.abort()
    }
  } finally {
    await producer.disconnect()
  }
  return sent
}

async function read(kafka, topic, reader) {
  const consumer = kafka.consumer({
    groupId: reader.groupId,
    readUncommitted: Boolean(reader.readUncommitted),
  })
  const messages = []
  let timer
  const done = new Promise((resolve) => {
    timer = setTimeout(() => resolve(true), reader.timeoutMs || 20000)
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) resolve(payload.error)
    })
    consumer
      .connect()
      .then(() => consumer.subscribe({ topic, fromBeginning: true }))
      .then(() =>
        consumer.run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const value = toB64(message.value)
            messages.push({ partition, offset: message.offset, key: toB64(message.key), value })
            if (value === reader.stopAfterValue) resolve(false)
          },
        }),
      )
      .catch(resolve)
  })
  const outcome = await done
  clearTimeout(timer)
  await consumer.disconnect()
  if (outcome instanceof Error) throw outcome
  return { timedOut: outcome === true, messages }
}

runMain(async (req) => {
  const kafka = makeKafka(req.brokers)
  const sent = await runTransactions(kafka, req)
  const reads = []
  for (const reader of req.readers || []) reads.push(await read(kafka, req.topic, reader))
  return { sent, reads }
})
