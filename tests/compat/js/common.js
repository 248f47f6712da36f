// Shared plumbing for the kafkajs compatibility scripts.
//
// Each script reads one JSON request on stdin and writes one JSON document on stdout, so
// the Python tests can drive kafkajs without parsing its logs: kafkajs logs go to stderr.
// Binary fields travel base64-encoded because JSON has no bytes type.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function stderrLogCreator() {
  return ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    process.stderr.write(`[${label}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`)
  }
}

function makeKafka(brokers) {
  return new Kafka({
    clientId: 'moldau-compat',
    brokers,
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
    connectionTimeout: 10000,
    requestTimeout: 30000,
  })
}

async function readStdinJson() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

function fromB64(text) {
  return text === null || text === undefined ? null : Buffer.from(text, 'base64')
}

// kafkajs wraps the broker's error (a KafkaJSProtocolError with the Kafka error `type`, e.g.
// UNKNOWN_TOPIC_OR_PARTITION) in retry errors; keep the whole chain for the test to inspect.
function describeError(err) {
  return {
    name: err.name,
    type: err.type || null,
    message: err.message,
    code: err.code === undefined ? null : err.code,
    cause: err.cause && err.cause !== err ? describeError(err.cause) : null,
  }
}

async function runMain(main) {
  try {
    const result = await main(await readStdinJson())
    process.stdout.write(JSON.stringify(result) + '\n')
  } catch (err) {
    process.stderr.write(`failed: ${err.stack || err}\n`)
    process.stdout.write(JSON.stringify({ error: describeError(err) }) + '\n')
    process.exitCode = 1
  }
}

module.exports = { makeKafka, fromB64, describeError, runMain }
