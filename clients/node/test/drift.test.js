/**
 * `model.drift()`: the window, the minimum rows, and a shifted feature, on the fixture store's
 * RandomForest. Agreement with the Python runtime is in parity.test.js.
 */

import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {psi, reading} from '../lib/drift.js'
import {readSidecar, weightedModel} from '../index.js'
import {RF, versionDir} from './support.js'

/**
 * `n` rows drawn from the sidecar's training histograms (a bin by its count, then uniformly inside).
 *
 * @param {import('../lib/sidecar.js').Sidecar} sidecar
 * @param {number} n
 * @param {number} seed
 */
function trainingLike(sidecar, n, seed) {
  let state = seed
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  const rows = []
  for (let r = 0; r < n; r++) {
    /** @type {Record<string, number>} */
    const row = {}
    for (const {name} of sidecar.features) {
      const {edges, counts} = sidecar.trainingData.features[name].histogram
      const total = counts.reduce((a, b) => a + b, 0)
      let pick = random() * total
      let i = 0
      while (pick >= counts[i]) pick -= counts[i++]
      row[name] = edges[i] + random() * (edges[i + 1] - edges[i])
    }
    rows.push(row)
  }
  return rows
}

describe('model.drift()', async () => {
  const sidecar = await readSidecar(versionDir(RF))

  test('rows like the training data read stable; one shifted feature reads shifted, only it', async () => {
    const model = weightedModel(sidecar)
    await model.predictBatch(trainingLike(sidecar, 2000, 1))
    for (const f of model.drift().features) assert.ok(f.psi !== null && f.psi < 0.1, `${f.name}: ${f.psi}`)

    const shifted = weightedModel(sidecar)
    const rows = trainingLike(sidecar, 2000, 2).map((row) => ({
      ...row,
      engagementRate: Math.min(row.engagementRate + 0.3, 1)
    }))
    await shifted.predictBatch(rows)
    const report = shifted.drift()
    for (const f of report.features) {
      if (f.name === 'engagementRate') {
        assert.ok(f.psi !== null && f.psi > 0.25 && f.reading === 'shifted', `${f.psi}`)
        assert.ok(f.outOfRange !== null && f.outOfRange > 0.2)
      } else {
        assert.ok(f.psi !== null && f.psi < 0.1, `${f.name}: ${f.psi}`)
      }
    }
  })

  test('nothing is read before minRows; the window keeps the latest rows', async () => {
    const model = weightedModel(sidecar, {drift: {size: 300, minRows: 100}})
    const row = trainingLike(sidecar, 1, 3)[0]
    for (let i = 0; i < 99; i++) await model.predict(row)
    const early = model.drift()
    assert.equal(early.rows, 99)
    assert.ok(
      early.features.every((f) => f.psi === null && f.outOfRange === null && f.reading === 'insufficient')
    )
    const pinned = trainingLike(sidecar, 300, 4).map((r) => ({...r, nicheAlignment: 1}))
    await model.predictBatch(pinned)
    assert.equal(model.drift().features[0].reading, 'shifted')
    await model.predictBatch(trainingLike(sidecar, 300, 5)) // the pinned rows have all left
    const late = model.drift()
    assert.equal(late.rows, 300)
    assert.equal(late.window, 300)
    assert.equal(late.features[0].reading, 'stable')
    assert.equal(
      late.features[0].bins.window.reduce((a, b) => a + b, 0),
      300
    )
  })

  test('a bad window is refused naming it', () => {
    assert.throws(
      () => weightedModel(sidecar, {drift: {size: 0}}),
      /drift size must be a positive integer, got 0/
    )
  })

  test('psi and its reading', () => {
    const even = new Array(10).fill(100)
    assert.equal(psi(even, even), 0)
    assert.ok(psi(even, [0, 0, 0, ...new Array(7).fill(100)]) > 0.25)
    assert.deepEqual(
      [reading(0.05), reading(0.2), reading(0.3), reading(null)],
      ['stable', 'moderate', 'shifted', 'insufficient']
    )
  })
})
