/**
 * Sticky assignment (lib/assignment.js) against the repository's golden vectors
 * (`schemas/assignment-vectors.json`, which the Python implementation is tested against too), the
 * monotone-ramp property, shares within binomial bounds, and prediction ids (lib/ids.js).
 * tests/property/test_node_assignment.py compares this module with Python's on random keys.
 */

import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {describe, test} from 'node:test'
import {InvalidInputError, armOf, bucket} from '../index.js'
import {
  BUCKETS,
  CONTROL,
  HASH_VERSION,
  MAX_KEY_BYTES,
  armIndex,
  checkUnits,
  unitDigest
} from '../lib/assignment.js'
import {UUID7, isPredictionId, newPredictionId} from '../lib/ids.js'
import {unitHeader} from '../lib/runtime-client.js'
import {REPO} from './support.js'

/** @import {Experiment} from '../index.js' */

const VECTORS = JSON.parse(readFileSync(path.join(REPO, 'schemas/assignment-vectors.json'), 'utf8'))

/** A small deterministic generator (the tests need no randomness of their own). */
function random(seed = 20261130) {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
    return state / 2 ** 32
  }
}

/**
 * @param {number} n
 * @param {() => number} next
 */
function keys(n, next) {
  return Array.from({length: n}, (_, i) => `unit-${i}-${Math.floor(next() * 1e9)}`)
}

/**
 * @param {ReadonlyArray<number>} weights
 * @returns {Experiment}
 */
function experiment(weights, salt = 'exp-ramp') {
  return {
    id: 'exp',
    name: 'ramp',
    state: 'running',
    control: 'v0',
    candidates: weights.map((weight, k) => ({arm: `c${k}`, version: `v${k + 1}`, weight})),
    shadow: [],
    salt,
    horizonDays: 30,
    createdAt: '2026-11-30T10:00:00.000Z',
    revision: 1,
    hash: HASH_VERSION
  }
}

describe('the golden vectors', () => {
  test('name this hash and these buckets', () => {
    assert.equal(VECTORS.hash, HASH_VERSION)
    assert.equal(VECTORS.buckets, BUCKETS)
    assert.ok(VECTORS.vectors.length >= 16)
  })

  for (const vector of VECTORS.vectors) {
    test(`${vector.what}: bucket ${vector.bucket}`, () => {
      const salt = vector.salt ?? VECTORS.salt
      assert.equal(Buffer.byteLength(vector.key, 'utf8'), vector.utf8Bytes)
      assert.equal(unitDigest(salt, vector.key), vector.sha256)
      assert.equal(bucket(salt, vector.key), vector.bucket)
      // The digest the ledger keeps is that of the bytes salt · 0x00 · key, whatever the key's script.
      const bytes = Buffer.concat([Buffer.from(salt), Buffer.from([0]), Buffer.from(vector.key, 'utf8')])
      assert.equal(createHash('sha256').update(bytes).digest('hex'), vector.sha256)
    })
  }

  for (const refused of VECTORS.refused) {
    test(`${refused.what}: refused`, () => {
      assert.throws(() => bucket(VECTORS.salt, refused.key), InvalidInputError)
    })
  }
})

describe('unit keys', () => {
  test('are refused in the runtime words: empty, a lone surrogate, over 4096 UTF-8 bytes, not text', () => {
    /** @type {Array<[unknown, string]>} */
    const cases = [
      ['', 'the unit key is empty: send a brand id, a pair id, … (or no key at all)'],
      ['a\ud800', 'the unit key is not valid Unicode text (a lone surrogate)'],
      ['\udfffb', 'the unit key is not valid Unicode text (a lone surrogate)'],
      ['k'.repeat(MAX_KEY_BYTES + 1), 'the unit key is 4097 bytes in UTF-8, more than 4096'],
      ['ü'.repeat(2049), 'the unit key is 4098 bytes in UTF-8, more than 4096'],
      [42, 'the unit key must be a string, got a number']
    ]
    for (const [key, message] of cases) {
      assert.throws(
        () => bucket('salt', /** @type {string} */ (key)),
        (error) => {
          assert.ok(error instanceof InvalidInputError)
          assert.deepEqual(
            [error.message, error.reason, error.field, error.code],
            [message, 'unit', 'unit', 'invalid_input']
          )
          return true
        }
      )
    }
    assert.equal(typeof bucket('salt', 'k'.repeat(MAX_KEY_BYTES)), 'number')
    assert.equal(typeof bucket('salt', '🚀'.repeat(1024)), 'number', '4096 bytes of emoji')
  })

  test('a batch has one valid key per row, named by its row', () => {
    assert.throws(() => checkUnits(['a'], [{}, {}]), {
      message: '`units` has 1 keys for 2 instances: one per row, in order'
    })
    assert.throws(() => checkUnits('a', [{}]), {
      message: '`units` must be a list of unit keys, one per row, got a string "a"'
    })
    assert.throws(
      () => checkUnits(['a', ''], [{}, {}]),
      (error) => {
        assert.ok(error instanceof InvalidInputError)
        assert.deepEqual([error.row, error.field], [1, 'units'])
        assert.match(error.message, /^row 1: the unit key is empty/)
        return true
      }
    )
  })

  test('travel in ML-Unit-Key as they are, or percent-encoded UTF-8 when they are more than visible ASCII', () => {
    assert.equal(unitHeader('brand-42:creator-1337'), 'brand-42:creator-1337')
    assert.equal(unitHeader('Café'), 'Caf%C3%A9')
    assert.equal(unitHeader(' brand / 42 ? '), '%20brand%20%2F%2042%20%3F%20', 'spaces at the ends survive')
    assert.equal(unitHeader('50%off'), '50%25off', 'a % is encoded: the runtime decodes any %')
    assert.equal(decodeURIComponent(unitHeader('brand 🚀✨')), 'brand 🚀✨')
    assert.throws(() => unitHeader('\ud800'), InvalidInputError)
  })
})

describe('arms', () => {
  test('candidate k of n owns the buckets from k·⌊10000/n⌋ and serves the first `weight`', () => {
    assert.equal(armIndex(0, [1000]), 0)
    assert.equal(armIndex(999, [1000]), 0)
    assert.equal(armIndex(1000, [1000]), -1)
    assert.equal(armIndex(9999, [10_000]), 0)
    // Three candidates: regions of 3333; bucket 9999 is nobody's region: control.
    assert.deepEqual(
      [0, 499, 500, 3333, 3333 + 1999, 3333 + 2000, 6666, 6666 + 99, 6666 + 100, 9999].map((b) =>
        armIndex(b, [500, 2000, 100])
      ),
      [0, 0, -1, 1, 1, -1, 2, 2, -1, -1]
    )
    assert.equal(armIndex(1234, []), -1, 'no candidate: control')
  })

  test('armOf gives the arm, its version and weight, and the digest the ledger keeps', () => {
    const [vector] = VECTORS.vectors // brand-42: bucket 8809
    const exp = experiment([5000], VECTORS.salt)
    assert.deepEqual(armOf(exp, vector.key), {
      arm: CONTROL,
      version: 'v0',
      weight: 5000,
      index: -1,
      unit: vector.sha256
    })
    const all = experiment([10_000], VECTORS.salt)
    assert.deepEqual(armOf(all, vector.key), {
      arm: 'c0',
      version: 'v1',
      weight: 10_000,
      index: 0,
      unit: vector.sha256
    })
  })

  test('raising a weight only moves units from control to that candidate (a randomized ramp)', () => {
    const next = random()
    const units = keys(2000, next)
    for (let round = 0; round < 200; round++) {
      const n = 1 + Math.floor(next() * 4)
      const size = Math.floor(BUCKETS / n)
      const before = Array.from({length: n}, () => Math.floor(next() * (size + 1)))
      const k = Math.floor(next() * n)
      const after = [...before]
      after[k] = before[k] + Math.floor(next() * (size - before[k] + 1))
      const salt = `ramp-${round}`
      for (const unit of units) {
        const was = armOf(experiment(before, salt), unit).index
        const is = armOf(experiment(after, salt), unit).index
        if (was !== is) {
          assert.equal(was, -1, `round ${round}: ${unit} left candidate ${was}`)
          assert.equal(is, k, `round ${round}: ${unit} moved to candidate ${is}, not the raised ${k}`)
        }
      }
    }
  })

  test('over 100,000 keys each arm serves its weight within binomial bounds (4.5 σ)', () => {
    const weights = [1000, 2500, 50]
    const exp = experiment(weights, 'exp-shares')
    const units = keys(100_000, random(7))
    /** @type {Map<string, number>} */
    const counts = new Map()
    for (const unit of units) {
      const {arm} = armOf(exp, unit)
      counts.set(arm, (counts.get(arm) ?? 0) + 1)
    }
    const expected = new Map([
      [CONTROL, BUCKETS - 3550],
      ['c0', 1000],
      ['c1', 2500],
      ['c2', 50]
    ])
    for (const [arm, weight] of expected) {
      const p = weight / BUCKETS
      const sigma = Math.sqrt(units.length * p * (1 - p))
      const got = counts.get(arm) ?? 0
      assert.ok(Math.abs(got - units.length * p) <= 4.5 * sigma, `${arm}: ${got} for a share of ${p}`)
    }
  })
})

describe('prediction ids', () => {
  test('are UUIDv7: the time in front, version 7, variant 10, strictly increasing', () => {
    const before = Date.now()
    const ids = Array.from({length: 5000}, () => newPredictionId())
    const after = Date.now()
    for (const id of ids) {
      assert.match(id, UUID7)
      assert.ok(isPredictionId(id))
      const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
      assert.ok(ms >= before && ms <= after, `${id}: ${ms} outside [${before}, ${after}]`)
    }
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `${ids[i]} after ${ids[i - 1]}`)
    assert.equal(new Set(ids.map((id) => id.slice(19, 23))).size, 1, 'one process prefix')
    assert.ok(!isPredictionId('0190a0e0-0000-4000-8000-000000000000'), 'a v4 is not one')
  })
})
