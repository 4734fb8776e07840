import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {readFile} from 'node:fs/promises'
import {InvalidInputError, MLMatchingError, loadModel, weightedModel} from '../index.js'
import {featureMismatch} from '../lib/validate.js'
import {RF, sidecarOf, uniformRow, versionDir} from './support.js'

/** @import {OnnxModel, WeightedModel, InvalidReason} from '../index.js' */

/**
 * @typedef Case
 * @property {string} name
 * @property {(names: ReadonlyArray<string>) => unknown} row
 * @property {InvalidReason} reason
 * @property {string | undefined} field
 * @property {RegExp} message
 */

/** @type {Array<Case>} */
const CASES = [
  {
    name: 'not an object: array',
    row: (names) => names.map(() => 0.5),
    reason: 'shape',
    field: undefined,
    message: /expected an object of features, got an array/
  },
  {name: 'not an object: null', row: () => null, reason: 'shape', field: undefined, message: /got null/},
  {
    name: 'not an object: string',
    row: () => '{}',
    reason: 'shape',
    field: undefined,
    message: /got a string "\{\}"/
  },
  {
    name: 'not a plain object: Map',
    row: (names) => new Map(names.map((name) => [name, 0.5])),
    reason: 'shape',
    field: undefined,
    message: /got an object \(Map\)/
  },
  {
    name: 'missing feature',
    row: (names) => {
      const row = uniformRow(names, 0.5)
      delete row.brandFit
      return row
    },
    reason: 'missing',
    field: 'brandFit',
    message: /missing feature `brandFit` \(expected 19 features, got 18\)$/
  },
  {
    name: 'unknown feature',
    row: (names) => uniformRow(names, 0.5, {brandfit: 0.5}),
    reason: 'unknown',
    field: 'brandfit',
    message: /unknown feature `brandfit` \(the model has 19 features\)$/
  },
  {
    name: 'unknown reported before missing (a misspelt name)',
    row: (names) => {
      const row = uniformRow(names, 0.5, {brandfit: 0.5})
      delete row.brandFit
      return row
    },
    reason: 'unknown',
    field: 'brandfit',
    message: /^(row 2: )?unknown feature `brandfit`/
  },
  {
    name: 'numeric string',
    row: (names) => uniformRow(names, 0.5, {brandFit: '0.5'}),
    reason: 'type',
    field: 'brandFit',
    message: /feature `brandFit`: expected a number, got a string "0\.5"/
  },
  {
    name: 'boolean',
    row: (n) => uniformRow(n, 0.5, {brandFit: true}),
    reason: 'type',
    field: 'brandFit',
    message: /got a boolean/
  },
  {
    name: 'null',
    row: (n) => uniformRow(n, 0.5, {brandFit: null}),
    reason: 'type',
    field: 'brandFit',
    message: /got null/
  },
  {
    name: 'array',
    row: (n) => uniformRow(n, 0.5, {brandFit: [0.5]}),
    reason: 'type',
    field: 'brandFit',
    message: /got an array/
  },
  {
    name: 'undefined',
    row: (n) => uniformRow(n, 0.5, {brandFit: undefined}),
    reason: 'type',
    field: 'brandFit',
    message: /got undefined/
  },
  {
    name: 'bigint',
    row: (n) => uniformRow(n, 0.5, {brandFit: 1n}),
    reason: 'type',
    field: 'brandFit',
    message: /got a bigint/
  },
  {
    name: 'NaN',
    row: (n) => uniformRow(n, 0.5, {brandFit: Number.NaN}),
    reason: 'non-finite',
    field: 'brandFit',
    message: /feature `brandFit`: value NaN is not a finite number/
  },
  {
    name: 'Infinity',
    row: (n) => uniformRow(n, 0.5, {brandFit: Infinity}),
    reason: 'non-finite',
    field: 'brandFit',
    message: /value Infinity is not a finite number/
  },
  {
    name: 'above the declared maximum',
    row: (n) => uniformRow(n, 0.5, {brandFit: 1.5}),
    reason: 'range',
    field: 'brandFit',
    message: /feature `brandFit`: value 1\.5 is outside \[0, 1\]$/
  },
  {
    name: 'below the declared minimum',
    row: (n) => uniformRow(n, 0.5, {brandFit: -1e-9}),
    reason: 'range',
    field: 'brandFit',
    message: /value -1e-9 is outside \[0, 1\]/
  },
  {
    name: 'the first bad feature in model order is named',
    row: (n) => uniformRow(n, 0.5, {contentEngagement: 2, nicheAlignment: 3}),
    reason: 'range',
    field: 'nicheAlignment',
    message: /`nicheAlignment`/
  }
]

/**
 * @param {Case} c
 * @param {number | undefined} row
 */
function matches(c, row) {
  /** @param {unknown} error */
  return (error) => {
    assert.ok(error instanceof InvalidInputError, `expected InvalidInputError, got ${error}`)
    assert.ok(error instanceof MLMatchingError)
    assert.equal(error.name, 'InvalidInputError')
    assert.equal(error.reason, c.reason)
    assert.equal(error.field, c.field)
    assert.equal(error.row, row)
    assert.match(error.message, c.message)
    assert.equal(error.message.startsWith('row '), row !== undefined)
    if (row !== undefined) assert.match(error.message, new RegExp(`^row ${row}: `))
    return true
  }
}

for (const kind of ['onnx', 'weighted']) {
  describe(`validation (${kind} model)`, () => {
    /** @type {OnnxModel | WeightedModel} */
    let model
    /** @type {ReadonlyArray<string>} */
    let names

    before(async () => {
      model = kind === 'onnx' ? await loadModel(versionDir(RF)) : weightedModel(await sidecarOf(RF))
      names = model.features
    })
    after(async () => {
      if ('close' in model) await model.close()
    })

    for (const c of CASES) {
      test(`predict: ${c.name}`, async () => {
        await assert.rejects(model.predict(/** @type {any} */ (c.row(names))), matches(c, undefined))
      })
      test(`predictBatch: ${c.name}, as row 2`, async () => {
        const good = uniformRow(names, 0.5)
        const rows = [good, good, c.row(names), good]
        await assert.rejects(model.predictBatch(/** @type {any} */ (rows)), matches(c, 2))
      })
    }

    test('values at the declared bounds pass', async () => {
      await model.predict(uniformRow(names, 0))
      await model.predict(uniformRow(names, 1))
      await model.predict(uniformRow(names, -0))
    })

    test('an object without a prototype passes', async () => {
      const row = Object.assign(Object.create(null), uniformRow(names, 0.5))
      assert.deepEqual(await model.predict(row), await model.predict(uniformRow(names, 0.5)))
    })

    for (const [label, rows] of [
      ['an empty batch', []],
      ['a batch that is not a list', {instances: []}],
      ['a batch that is null', null]
    ]) {
      test(`predictBatch rejects ${label}`, async () => {
        await assert.rejects(model.predictBatch(/** @type {any} */ (rows)), (error) => {
          assert.ok(error instanceof InvalidInputError)
          assert.equal(error.reason, 'shape')
          assert.equal(error.field, undefined)
          assert.equal(error.row, undefined)
          assert.match(error.message, /expected a non-empty list of rows/)
          return true
        })
      })
    }
  })
}

/**
 * The rows both runtimes refuse with the same words (the Python runtime's 400 detail is checked
 * against the same file by tests/runtime/test_input.py).
 *
 * @typedef Refusal
 * @property {string} name
 * @property {Array<string>} drop
 * @property {Record<string, unknown>} set
 * @property {string} detail
 * @property {import('../index.js').InvalidReason} reason
 * @property {Array<string>} fields
 */

describe('the same words as the Python runtime', async () => {
  const shared = new URL('../../../tests/fixtures/refusals.json', import.meta.url)
  /** @type {{cases: Array<Refusal>}} */
  const {cases} = JSON.parse(await readFile(shared, 'utf8'))
  const seed = JSON.parse(
    await readFile(new URL('../../../schemas/examples/predict.request.json', import.meta.url), 'utf8')
  )
  const model = weightedModel(await sidecarOf(RF))

  for (const c of cases) {
    test(c.name, async () => {
      const row = {...Object.fromEntries(Object.entries(seed).filter(([k]) => !c.drop.includes(k))), ...c.set}
      await assert.rejects(model.predict(/** @type {any} */ (row)), (error) => {
        assert.ok(error instanceof InvalidInputError)
        assert.equal(error.message, c.detail)
        assert.equal(error.code, 'invalid_input')
        assert.equal(error.reason, c.reason)
        assert.deepEqual(error.fields, c.fields)
        assert.equal(error.field, c.fields[0])
        return true
      })
      await assert.rejects(model.predictBatch([seed, /** @type {any} */ (row)]), {
        message: `row 1: ${c.detail}`
      })
    })
  }
})

describe('validation without declared ranges', () => {
  test('a feature with no min/max accepts any number finite in float32, as the runtime does', async () => {
    const sidecar = await sidecarOf(RF)
    delete sidecar.features[0].min
    sidecar.features[1].max = null
    const model = weightedModel(sidecar)
    const [first, second] = model.features
    await model.predict(uniformRow(model.features, 0.5, {[first]: -1e6}))
    await model.predict(uniformRow(model.features, 0.5, {[second]: 1e6}))
    await assert.rejects(model.predict(uniformRow(model.features, 0.5, {[second]: -1})), {
      reason: 'range',
      message: `feature \`${second}\`: value -1 is below the minimum 0`
    })
    await model.predict(uniformRow(model.features, 0.5, {[second]: 3.4e38}))
    await assert.rejects(model.predict(uniformRow(model.features, 0.5, {[second]: 1e39})), {
      reason: 'non-finite',
      message: `feature \`${second}\`: value 1e+39 is not a finite number in float32, which the model computes in`
    })
  })
})

test('versions that answer one request must declare the same features and ranges', () => {
  // tests/contract/test_validation.py holds the Python runtime to the same words.
  const base = [{name: 'x', min: 0, max: 1}, {name: 'y', min: 0.5}, {name: 'z'}]
  assert.equal(featureMismatch(base, base, 'control v1'), undefined)
  const other = [{name: 'x', min: 0, max: 1}, {name: 'w'}]
  assert.equal(featureMismatch(other, base, 'control v1'), 'it scores other features than control v1')
  const ranged = [
    {name: 'x', min: 0, max: 1},
    {name: 'y', max: 0.25},
    {name: 'z', min: -1}
  ]
  assert.equal(
    featureMismatch(ranged, base, 'the served v2'),
    'it declares `y` over (-Infinity, 0.25], where the served v2 declares [0.5, Infinity)'
  )
})
