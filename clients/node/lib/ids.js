/**
 * Prediction ids: UUIDv7 (RFC 9562), unique across processes and sortable by the time they were
 * made, laid out as the Python runtime makes them (`ml_matching.contract.ids`):
 *
 * `unix_ts_ms` (48 bits) · version 7 · a 12-bit counter within the millisecond · variant · 62 bits
 * of which 30 are random for the process and 32 count. Strictly increasing within the process;
 * two processes collide only if they drew the same 30-bit prefix in the same millisecond at the
 * same count. (`crypto.randomUUID` makes v4 ids only.)
 */

import {randomBytes} from 'node:crypto'

/** A UUIDv7 as the runtime answers it (lower-case hex). */
export const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** The variant bits (0b10) and the process's 30 random bits, as 8 hex digits. */
const PREFIX = ((0x8000_0000 | (randomBytes(4).readUInt32BE(0) & 0x3fff_ffff)) >>> 0).toString(16)
let last = 0
let count = 0

/** @returns {string} a new prediction id, greater than every one this process made before */
export function newPredictionId() {
  let ms = Date.now()
  if (ms <= last) {
    ms = last // the same millisecond (or the clock went back): count on
    count++
  } else {
    last = ms
    count = 0
  }
  const time = ms.toString(16).padStart(12, '0')
  const sub = (Math.floor(count / 2 ** 32) & 0xfff).toString(16).padStart(3, '0')
  const rest = (count >>> 0).toString(16).padStart(8, '0')
  return `${time.slice(0, 8)}-${time.slice(8)}-7${sub}-${PREFIX.slice(0, 4)}-${PREFIX.slice(4)}${rest}`
}

/**
 * @param {unknown} text
 * @returns {text is string}
 */
export function isPredictionId(text) {
  return typeof text === 'string' && UUID7.test(text)
}
