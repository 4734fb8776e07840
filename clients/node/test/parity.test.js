/**
 * Cross-runtime parity: the same float32 rows scored by Python onnxruntime (written to
 * test/fixtures/ by scripts/node_parity_fixture.py) and here by onnxruntime-node.
 */

import assert from 'node:assert/strict'
import {existsSync, readFileSync, readdirSync} from 'node:fs'
import path from 'node:path'
import {describe, test} from 'node:test'
import {ExplanationUnavailableError, loadModel, readSidecar, weightedModel} from '../index.js'
import {PARITY_FIXTURES, STORE, versionDir} from './support.js'

const ONNX_TOLERANCE = 1e-6
const BASELINE_TOLERANCE = 1e-9
const MIN_RANDOM_ROWS = 1000
const DRIFT_TOLERANCE = 1e-12

/**
 * @typedef Fixture
 * @property {string} version
 * @property {string} onnxruntime
 * @property {Array<string>} features
 * @property {number} goldenRows
 * @property {Array<Array<number>>} rows
 * @property {Array<number>} probability
 * @property {Array<number>} baselineProbability
 * @property {import('../lib/drift.js').DriftReport} drift
 * @property {Array<Array<number>> | null} contributions
 * @property {number | null} baseValue
 * @property {string | null} explanationScale
 */

const files = existsSync(PARITY_FIXTURES)
  ? readdirSync(PARITY_FIXTURES).filter((name) => name.endsWith('.json'))
  : []
const versions = readdirSync(STORE).filter((name) => /^\d{8}_\d{6}/.test(name))
const command = `python scripts/node_parity_fixture.py tests/fixtures/store clients/node/test/fixtures`
// Where the Python side is at hand (nox's node session sets this), a missing fixture is a failure.
const strict = Boolean(process.env.ML_MATCHING_PYTHON)

describe('cross-runtime parity with Python onnxruntime', () => {
  if (files.length === 0 && !strict) {
    test('parity fixture', (t) => t.skip(`no fixture in ${PARITY_FIXTURES}: run \`${command}\` first`))
    return
  }

  test('there is a fixture for every version of the store', () => {
    assert.deepEqual(files.map((name) => name.replace(/\.json$/, '')).sort(), versions.sort())
  })

  for (const file of files) {
    /** @type {Fixture} */
    const fixture = JSON.parse(readFileSync(path.join(PARITY_FIXTURES, file), 'utf8'))
    const rows = fixture.rows.map((values) =>
      Object.fromEntries(fixture.features.map((name, i) => [name, values[i]]))
    )

    describe(`${fixture.version} (Python onnxruntime ${fixture.onnxruntime})`, () => {
      test(`≥ ${MIN_RANDOM_ROWS} random rows plus the golden rows`, async () => {
        const sidecar = await readSidecar(versionDir(fixture.version))
        assert.equal(fixture.goldenRows, sidecar.goldenRows.length)
        assert.ok(rows.length - fixture.goldenRows >= MIN_RANDOM_ROWS)
        assert.deepEqual(
          fixture.features,
          sidecar.features.map((f) => f.name)
        )
        for (const [i, golden] of sidecar.goldenRows.entries()) assert.deepEqual(rows[i], golden.features)
        for (const values of fixture.rows) for (const x of values) assert.equal(Math.fround(x), x)
      })

      test(`ONNX: onnxruntime-node agrees within ${ONNX_TOLERANCE}, batch and row by row`, async (t) => {
        const model = await loadModel(versionDir(fixture.version))
        try {
          const batch = await model.predictBatch(rows)
          let worst = 0
          for (const [i, row] of rows.entries()) {
            const expected = fixture.probability[i]
            const got = batch.predictions[i].successProbability / 100
            const diff = Math.abs(got - expected)
            worst = Math.max(worst, diff)
            assert.ok(diff <= ONNX_TOLERANCE, `row ${i}: Node p=${got}, Python p=${expected}`)
            const single = await model.predict(row)
            assert.equal(single.score, batch.predictions[i].score, `row ${i}: batch ≠ single`)
            assert.equal(single.confidence, batch.predictions[i].confidence, `row ${i}: batch ≠ single`)
          }
          t.diagnostic(`max |p_node − p_python| = ${worst}`)
        } finally {
          await model.close()
        }
      })

      test(`drift: model.drift() reads what the runtime's /monitoring/drift reads`, async () => {
        const model = await loadModel(versionDir(fixture.version))
        try {
          await model.predictBatch(rows)
          const got = model.drift()
          const {features: expected, ...summary} = fixture.drift
          const {features, ...mine} = got
          assert.deepEqual(mine, summary)
          for (const [i, feature] of features.entries()) {
            const {psi, outOfRange, ...rest} = feature
            const {psi: psiPy, outOfRange: outPy, ...restPy} = expected[i]
            assert.deepEqual(rest, restPy, feature.name)
            assert.ok(
              Math.abs(Number(psi) - Number(psiPy)) <= DRIFT_TOLERANCE,
              `${feature.name}: ${psi} vs ${psiPy}`
            )
            assert.ok(Math.abs(Number(outOfRange) - Number(outPy)) <= DRIFT_TOLERANCE, feature.name)
          }
        } finally {
          await model.close()
        }
      })

      test(`explanations: explain.onnx in Node agrees with Python within ${ONNX_TOLERANCE}`, async (t) => {
        const model = await loadModel(versionDir(fixture.version))
        try {
          if (fixture.contributions === null) {
            await assert.rejects(model.predictBatch(rows, {explain: true}), ExplanationUnavailableError)
            return
          }
          const batch = await model.predictBatch(rows, {explain: true})
          assert.equal(batch.baseValue, fixture.baseValue)
          assert.equal(batch.explanationScale, fixture.explanationScale)
          let worst = 0
          for (const [i, expected] of fixture.contributions.entries()) {
            const got = fixture.features.map((name) => batch.predictions[i].contributions?.[name] ?? NaN)
            for (const [j, value] of got.entries()) {
              const diff = Math.abs(value - expected[j])
              worst = Math.max(worst, diff)
              assert.ok(
                diff <= ONNX_TOLERANCE,
                `row ${i}, ${fixture.features[j]}: Node ${value}, Python ${expected[j]}`
              )
            }
          }
          t.diagnostic(`max |c_node − c_python| = ${worst}`)
        } finally {
          await model.close()
        }
      })

      test(`weighted: the pure-JS baseline agrees within ${BASELINE_TOLERANCE}`, async () => {
        const model = weightedModel(await readSidecar(versionDir(fixture.version)))
        const got = await model.probabilities(rows)
        for (const [i, expected] of fixture.baselineProbability.entries()) {
          assert.ok(Math.abs(got[i] - expected) <= BASELINE_TOLERANCE, `row ${i}: ${got[i]} vs ${expected}`)
        }
      })
    })
  }
})
