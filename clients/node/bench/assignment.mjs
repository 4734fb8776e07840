#!/usr/bin/env node
/**
 * Cost of one sticky assignment in Node: `node bench/assignment.mjs [--keys=1000000] [--rounds=5]`.
 *
 * Times `armOf(experiment, key)` (key checked, SHA-256 of salt · 0x00 · key, bucket, arm) over
 * KEYS distinct keys (brand ids and pair ids, a tenth with non-ASCII text), after a warm-up; the
 * figure is the mean µs per assignment, the median over ROUNDS rounds. Also the two ways to hash
 * Node offers, alone: `crypto.hash` (Node ≥ 20.12, what lib/assignment.js uses when it exists) and
 * `createHash`. Prints one JSON object.
 */

import crypto from 'node:crypto'
import {armOf} from '../lib/assignment.js'

const arg = (/** @type {string} */ name, /** @type {number} */ fallback) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback)
const KEYS = arg('keys', 1_000_000)
const ROUNDS = arg('rounds', 5)

const experiment = {
  salt: '01JDQZ0000-gb-vs-rf',
  control: '20260101_000000',
  candidates: [{arm: 'gb', version: '20260102_000000', weight: 5000}]
}
const keys = Array.from({length: KEYS}, (_, i) =>
  i % 10 === 0
    ? `Marke-${i}-Café-Müller-株式会社`
    : i % 2
      ? `brand-${i}:creator-${(i * 7919) % 100_003}`
      : `brand-${i}`
)

/**
 * @param {(key: string) => unknown} call
 * @returns {number} mean µs per call, the median of ROUNDS rounds over every key
 */
function measure(call) {
  for (let i = 0; i < Math.min(KEYS, 200_000); i++) call(keys[i]) // warm-up
  const rounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < KEYS; i++) call(keys[i])
    rounds.push(Number(process.hrtime.bigint() - start) / 1000 / KEYS)
  }
  rounds.sort((a, b) => a - b)
  return rounds[Math.floor(ROUNDS / 2)]
}

const prefix = `${experiment.salt}\u0000`
const result = {
  node: process.version,
  keys: KEYS,
  rounds: ROUNDS,
  hash: typeof crypto.hash === 'function' ? 'crypto.hash' : 'createHash',
  armOfUs: measure((key) => armOf(experiment, key)),
  cryptoHashUs:
    typeof crypto.hash === 'function' ? measure((key) => crypto.hash('sha256', prefix + key, 'hex')) : null,
  createHashUs: measure((key) =>
    crypto
      .createHash('sha256')
      .update(prefix + key)
      .digest('hex')
  )
}
for (const key of ['armOfUs', 'cryptoHashUs', 'createHashUs']) {
  const value = /** @type {Record<string, any>} */ (result)[key]
  if (typeof value === 'number') /** @type {Record<string, any>} */ (result)[key] = Number(value.toFixed(3))
}
console.log(JSON.stringify(result))
