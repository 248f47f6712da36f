// Produce with kafkajs as the request on stdin says and print the RecordMetadata as JSON.
//
// Request: { brokers: [..], topic, compression: 'none' | 'gzip', idempotent: bool,
//            acks: -1 | 1, sends: [[message, ...], ...] }
// where a message is { partition, key: b64 | null, value: b64, headers: [[name, b64]],
// timestamp: ms-string }. Each inner list is one producer.send() call, awaited in order,
// so the test controls request boundaries. Output: { results: [[RecordMetadata, ...], ...] }.
'use strict'

const { CompressionTypes } = require('kafkajs')
const { makeKafka, fromB64, runMain } = require('./common')

const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }

function toKafkajsMessage(m) {
  const message = { key: fromB64(m.key), value: fromB64(m.value) }
  if (m.partition !== undefined && m.partition !== null) message.partition = m.partition
  if (m.timestamp) message.timestamp = String(m.timestamp)
  if (m.headers && m.headers.length > 0) {
    message.headers = {}
    for (const [name, value] of m.headers) message.headers[name] = fromB64(value)
  }
  return message
}

runMain(async (req) => {
  if (!(req.compression in CODECS)) throw new Error(`unsupported codec ${req.compression}`)
  const kafka = makeKafka(req.brokers)
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: Boolean(req.idempotent),
  })
  await producer.connect()
  const results = []
  try {
    for (const messages of req.sends) {
      results.push(
        await producer.send({
          topic: req.topic,
          acks: req.acks === undefined ? -1 : req.acks,
          compression: CODECS[req.compression],
          messages: messages.map(toKafkajsMessage),
        }),
      )
    }
  } finally {
    await producer.disconnect()
  }
  return { results }
})
