/**
 * Sticky assignment of a unit (a brand, a pair: the caller's key) to an arm of an experiment,
 * exactly as the Python runtime assigns it (`ml_matching.contract.assignment`):
 *
 *   bucket = first 8 bytes of SHA-256(salt UTF-8 · 0x00 · key UTF-8), big-endian, mod 10,000
 *
 * The key is hashed as its UTF-8 bytes (never UTF-16 code units), and the repository's
 * `schemas/assignment-vectors.json` pins keys in ASCII, Latin-1, CJK, emoji and over 1 KB with
 * their buckets; both implementations are tested against it.
 *
 * Candidate `k` of `n` owns the buckets from `k · ⌊10,000 / n⌋` and serves the first `weight` of
 * them; control serves every other bucket. Raising a candidate's weight only moves units from
 * control to it, never back and never between candidates.
 */

import crypto from 'node:crypto'
import {InvalidInputError} from './errors.js'
import {kind} from './validate.js'

/** How many buckets the units are spread over. */
export const BUCKETS = 10_000
/** The name of the hash (and bucketing) above; every ledger row records it. */
export const HASH_VERSION = 'sha256-v1'
/** The longest unit key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 4096
/** The arm that serves every unit no candidate serves. */
export const CONTROL = 'control'

/** 2³² mod 10,000: the high half of the 64-bit prefix, reduced without BigInt. */
const HIGH = 2 ** 32 % BUCKETS
const SURROGATE = /\p{Surrogate}/u

/**
 * SHA-256 of a UTF-8 string, as hex: `crypto.hash` where Node has it (≥ 20.12, about three times
 * faster for short inputs), else `createHash`.
 *
 * @type {(text: string) => string}
 */
const sha256 =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text, 'utf8').digest('hex')

/**
 * @typedef {import('./contract.js').Candidate} Candidate
 *   A candidate arm: its name, its version, its weight in basis points of the units.
 * @typedef {import('./contract.js').Experiment} Experiment
 *   What the runtime follows (`GET /experiment`; the store's `EXPERIMENT`): `state` (only
 *   `running` assigns units; otherwise everyone is served by control, outside the experiment),
 *   `control` (its version), `candidates`, `shadow` (versions that score every assigned row but
 *   never serve), `salt`, `revision` (grows with every change a runtime must apply), `hash`
 *   (`sha256-v1`). Its type is generated from the repository's `schemas/experiment.schema.json`.
 *
 * @typedef Assignment
 * @property {string} arm
 *   `control`, or the candidate's arm name.
 * @property {string} version
 *   The version the arm serves.
 * @property {number} weight
 *   The arm's weight, in basis points (control's: 10,000 − the candidates' weights).
 * @property {number} index
 *   −1 for control, else the candidate's index.
 * @property {string} unit
 *   The hex SHA-256 the bucket comes from: what the ledger keeps instead of the key.
 */

/**
 * Check a unit key as the runtime does (its `unit_bytes`), with its words.
 *
 * @param {unknown} key
 * @param {{field?: string, row?: number}} [where]
 *   How the error names the key (`unit` by default; `units` and the row in a batch).
 * @returns {string} the key
 * @throws {InvalidInputError} (`reason: 'unit'`) not a string, empty, a lone surrogate, over 4096 UTF-8 bytes.
 */
export function checkUnit(key, where = {}) {
  const place = {reason: /** @type {const} */ ('unit'), field: where.field ?? 'unit', row: where.row}
  if (typeof key !== 'string') {
    throw new InvalidInputError(`the unit key must be a string, got ${kind(key)}`, place)
  }
  if (key.length === 0) {
    throw new InvalidInputError(
      'the unit key is empty: send a brand id, a pair id, … (or no key at all)',
      place
    )
  }
  if (SURROGATE.test(key)) {
    throw new InvalidInputError('the unit key is not valid Unicode text (a lone surrogate)', place)
  }
  // Each UTF-16 unit is at most 3 UTF-8 bytes: only long keys need counting.
  if (key.length * 3 > MAX_KEY_BYTES) {
    const bytes = Buffer.byteLength(key, 'utf8')
    if (bytes > MAX_KEY_BYTES) {
      throw new InvalidInputError(
        `the unit key is ${bytes} bytes in UTF-8, more than ${MAX_KEY_BYTES}`,
        place
      )
    }
  }
  return key
}

/**
 * Check a batch's keys: one valid key per row.
 *
 * @param {unknown} units
 * @param {unknown} rows
 * @throws {InvalidInputError} (`reason: 'unit'`, `field: 'units'`)
 */
export function checkUnits(units, rows) {
  if (!Array.isArray(units)) {
    throw new InvalidInputError(`\`units\` must be a list of unit keys, one per row, got ${kind(units)}`, {
      reason: 'unit',
      field: 'units'
    })
  }
  if (Array.isArray(rows) && units.length !== rows.length) {
    throw new InvalidInputError(
      `\`units\` has ${units.length} keys for ${rows.length} instances: one per row, in order`,
      {reason: 'unit', field: 'units'}
    )
  }
  for (let i = 0; i < units.length; i++) checkUnit(units[i], {field: 'units', row: i})
}

/**
 * The hex SHA-256 of the salt, a zero byte and the key (its UTF-8 bytes).
 *
 * @param {string} salt
 * @param {string} key
 * @returns {string}
 * @throws {InvalidInputError} a key the runtime refuses (see {@link checkUnit}).
 */
export function unitDigest(salt, key) {
  checkUnit(key)
  return sha256(`${salt}\u0000${key}`)
}

/**
 * The bucket, 0 to 9,999, of a unit's hex digest: its first 8 bytes, big-endian, mod 10,000.
 *
 * @param {string} digest
 */
export function bucketOf(digest) {
  const high = parseInt(digest.slice(0, 8), 16) % BUCKETS
  const low = parseInt(digest.slice(8, 16), 16) % BUCKETS
  return (high * HIGH + low) % BUCKETS
}

/**
 * The unit's bucket, 0 to 9,999, for an experiment salted with `salt`.
 *
 * @param {string} salt
 * @param {string} key
 * @returns {number}
 * @throws {InvalidInputError} a key the runtime refuses: empty, a lone surrogate, over 4096 UTF-8 bytes.
 */
export function bucket(salt, key) {
  return bucketOf(unitDigest(salt, key))
}

/**
 * Which arm serves bucket `b`: −1 for control, else the candidate's index.
 *
 * @param {number} b
 * @param {ReadonlyArray<number>} weights
 *   The candidates' weights, in order.
 */
export function armIndex(b, weights) {
  const size = Math.floor(BUCKETS / Math.max(weights.length, 1))
  const k = Math.floor(b / size)
  return k < weights.length && b - k * size < weights[k] ? k : -1
}

/**
 * The unit's arm under `experiment`, whatever its state (a caller serving a paused or stopped
 * experiment serves everyone with control instead).
 *
 * @param {Pick<Experiment, 'salt' | 'control' | 'candidates'>} experiment
 * @param {string} key
 * @returns {Assignment}
 * @throws {InvalidInputError} a key the runtime refuses.
 */
export function armOf(experiment, key) {
  const unit = unitDigest(experiment.salt, key)
  const candidates = experiment.candidates
  const k = armIndex(
    bucketOf(unit),
    candidates.map((c) => c.weight)
  )
  if (k < 0) {
    const weight = BUCKETS - candidates.reduce((sum, c) => sum + c.weight, 0)
    return {arm: CONTROL, version: experiment.control, weight, index: -1, unit}
  }
  const {arm, version, weight} = candidates[k]
  return {arm, version, weight, index: k, unit}
}
