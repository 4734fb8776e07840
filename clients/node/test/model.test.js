import assert from 'node:assert/strict'
import {readFile, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {ArtifactCorruptError, ExplanationUnavailableError, loadModel, weightedModel} from '../index.js'
import {GB, RF, copyVersion, editSidecar, sidecarOf, uniformRow, versionDir} from './support.js'

/** @import {OnnxModel} from '../index.js' */

describe('loadModel', () => {
  /** @type {OnnxModel} */
  let model

  before(async () => {
    model = await loadModel(versionDir(RF))
  })
  after(() => model.close())

  test('reads the version, its features and the onnxruntime-node version', async () => {
    const sidecar = await sidecarOf(RF)
    assert.equal(model.version, RF)
    assert.equal(model.source, 'local')
    assert.equal(model.threads, 1)
    assert.deepEqual(
      model.features,
      sidecar.features.map((f) => f.name)
    )
    assert.equal(model.features.length, 19)
    assert.match(model.onnxruntimeVersion, /^\d+\.\d+\.\d+/)
  })

  test('predict returns the runtime response shape', async () => {
    const result = await model.predict(uniformRow(model.features, 0.5))
    assert.deepEqual(Object.keys(result), [
      'score',
      'confidence',
      'successProbability',
      'featureImportance',
      'modelVersion'
    ])
    assert.equal(result.modelVersion, RF)
    assert.equal(result.score, result.successProbability)
    assert.ok(result.score >= 0 && result.score <= 100)
    assert.ok(result.confidence >= 0 && result.confidence <= 100)
  })

  test('score is 100·p of the golden rows, p from onnxruntime within 1e-5', async () => {
    for (const row of model.sidecar.goldenRows) {
      const result = await model.predict(row.features)
      assert.ok(Math.abs(result.score / 100 - row.probability) <= 1e-5)
    }
  })

  test('confidence is 100·|2p−1|·(1−k/n), k counting features outside the observed range', async () => {
    const stats = model.sidecar.trainingData.features
    // 0.5 lies inside every observed range; the declared bounds 0 and 1 lie outside some.
    const inside = uniformRow(model.features, 0.5)
    const outsideNames = model.features.filter((name) => stats[name].min > 0)
    assert.ok(outsideNames.length >= 2, 'the fixture has features never observed at 0')
    const changes = Object.fromEntries(outsideNames.map((name) => [name, 0]))
    const k = outsideNames.length
    const n = model.features.length
    for (const [row, outside] of [
      [inside, 0],
      [uniformRow(model.features, 0.5, changes), k]
    ]) {
      const result = await model.predict(/** @type {Record<string, number>} */ (row))
      const p = (await model.probabilities([/** @type {Record<string, number>} */ (row)]))[0]
      assert.equal(result.score, 100 * p)
      assert.equal(result.confidence, 100 * Math.abs(2 * p - 1) * (1 - /** @type {number} */ (outside) / n))
    }
  })

  test('extrapolation is judged in float32', async () => {
    const stats = model.sidecar.trainingData.features
    const name = model.features[0]
    const min = stats[name].min
    // A double a hair below the observed minimum that rounds to the same float32 is not outside.
    const below = min - Math.abs(min) * 1e-12
    assert.ok(below < min && Math.fround(below) === Math.fround(min))
    const row = uniformRow(model.features, 0.5, {[name]: below})
    const p = (await model.probabilities([row]))[0]
    assert.equal((await model.predict(row)).confidence, 100 * Math.abs(2 * p - 1))
  })

  test('featureImportance is the impurity importance in feature order, summing to 1', async () => {
    const {featureImportance} = await model.predict(uniformRow(model.features, 0.5))
    assert.deepEqual(Object.keys(featureImportance), model.features)
    const raw = model.sidecar.featureImportance.impurity
    const total = model.features.reduce((sum, name) => sum + Math.max(0, raw[name]), 0)
    for (const name of model.features) {
      assert.ok(Math.abs(featureImportance[name] - Math.max(0, raw[name]) / total) < 1e-15)
    }
    assert.ok(Math.abs(Object.values(featureImportance).reduce((a, b) => a + b) - 1) < 1e-12)
    assert.ok(Object.isFrozen(featureImportance))
  })

  test('predictBatch equals predict row by row', async () => {
    const rows = model.sidecar.goldenRows.map((row) => row.features)
    rows.push(uniformRow(model.features, 0), uniformRow(model.features, 1))
    const batch = await model.predictBatch(rows)
    assert.equal(batch.modelVersion, RF)
    assert.equal(batch.predictions.length, rows.length)
    for (const [i, row] of rows.entries()) {
      const {score, confidence, successProbability, featureImportance} = await model.predict(row)
      assert.deepEqual(batch.predictions[i], {score, confidence, successProbability})
      assert.deepEqual(batch.featureImportance, featureImportance)
    }
  })

  test('rows whose keys come in another order score the same', async () => {
    const row = model.sidecar.goldenRows[5].features
    const reversed = Object.fromEntries(Object.entries(row).reverse())
    assert.deepEqual(await model.predict(reversed), await model.predict(row))
  })
})

describe('loadModel with options', () => {
  test('the gradient boosting version loads and scores', async () => {
    const model = await loadModel(versionDir(GB), {threads: 2})
    try {
      assert.equal(model.threads, 2)
      const result = await model.predict(model.sidecar.goldenRows[2].features)
      assert.ok(Math.abs(result.score / 100 - model.sidecar.goldenRows[2].probability) <= 1e-5)
    } finally {
      await model.close()
    }
  })

  test('threads must be a positive integer', async () => {
    for (const threads of [0, -1, 1.5, Number.NaN]) {
      await assert.rejects(loadModel(versionDir(RF), {threads}), {name: 'SettingsError', message: /threads/})
    }
  })

  test('a path that is not a version folder is named as such, not as a corrupt sidecar', async () => {
    const store = path.dirname(versionDir(RF))
    for (const [given, words] of /** @type {const} */ ([
      [path.join(store, 'nope'), /nope: no such folder \(give a version folder/],
      [path.join(versionDir(RF), 'model.json'), /model\.json: a file, not a folder/],
      [store, /is a store, not a version: give one of its version folders$/],
      [undefined, /expected a version folder's path, got undefined/]
    ])) {
      await assert.rejects(loadModel(/** @type {any} */ (given)), {name: 'SettingsError', message: words})
    }
  })
})

describe('explanations', () => {
  test('the golden rows are explained as the sidecar records, within 1e-6', async () => {
    for (const version of [RF, GB]) {
      const model = await loadModel(versionDir(version))
      try {
        const {explanation, goldenRows} = model.sidecar
        const got = await model.contributions(goldenRows.map((row) => row.features))
        assert.ok(explanation, `${version} has an explainer`)
        const expected = explanation.goldenContributions.flat()
        assert.equal(got.length, expected.length)
        for (const [i, value] of got.entries())
          assert.ok(Math.abs(value - expected[i]) <= 1e-6, `${version} ${i}`)
      } finally {
        await model.close()
      }
    }
  })

  test('predict with explain adds contributions that add up to the output', async () => {
    const model = await loadModel(versionDir(GB))
    try {
      const row = model.sidecar.goldenRows[5].features
      const plain = await model.predict(row)
      const explained = await model.predict(row, {explain: true})
      assert.deepEqual(Object.keys(explained), [
        ...Object.keys(plain),
        'contributions',
        'baseValue',
        'explanationScale'
      ])
      assert.equal(explained.score, plain.score)
      assert.equal(explained.explanationScale, 'log-odds')
      assert.deepEqual(Object.keys(explained.contributions ?? {}), model.features)
      const total = Object.values(explained.contributions ?? {}).reduce(
        (a, b) => a + b,
        explained.baseValue ?? 0
      )
      assert.ok(Math.abs(1 / (1 + Math.exp(-total)) - plain.successProbability / 100) <= 1e-5)
    } finally {
      await model.close()
    }
  })

  test('a version without an explainer refuses explain, and still scores', async () => {
    const copy = await copyVersion(RF, (dir) => editSidecar(dir, (s) => delete s.explanation))
    const model = await loadModel(copy.dir)
    try {
      const row = model.sidecar.goldenRows[0].features
      await assert.rejects(model.predict(row, {explain: true}), (error) => {
        assert.ok(error instanceof ExplanationUnavailableError)
        assert.equal(/** @type {ExplanationUnavailableError} */ (error).code, 'explanation_unavailable')
        assert.match(String(error), new RegExp(`version ${RF} has no explainer`))
        return true
      })
      await assert.rejects(model.predictBatch([row], {explain: true}), ExplanationUnavailableError)
      assert.equal(model.drift().rows, 0, 'a row refused an explanation is not observed')
      assert.ok((await model.predict(row)).score >= 0)
      assert.equal(model.drift().rows, 1)
    } finally {
      await model.close()
      await copy.cleanup()
    }
  })

  test('the pure-JS baseline has nothing to explain with', async () => {
    const model = weightedModel(await sidecarOf(RF))
    await assert.rejects(
      model.predict(uniformRow(model.features, 0.5), {explain: true}),
      ExplanationUnavailableError
    )
  })
})

/**
 * Damage a file in place: its middle byte changes, its size does not.
 *
 * @param {string} file
 */
async function flipOneByte(file) {
  const bytes = await readFile(file)
  bytes[Math.floor(bytes.length / 2)] ^= 0x01
  await writeFile(file, bytes)
}

describe('loadModel refuses a bad version', () => {
  /**
   * @param {(dir: string) => Promise<void>} edit
   * @param {string} check
   * @param {RegExp} message
   */
  async function refused(edit, check, message) {
    const copy = await copyVersion(RF, edit)
    try {
      await assert.rejects(loadModel(copy.dir), (error) => {
        assert.ok(error instanceof ArtifactCorruptError)
        assert.equal(error.name, 'ArtifactCorruptError')
        assert.equal(error.check, check)
        assert.match(error.message, message)
        return true
      })
    } finally {
      await copy.cleanup()
    }
  }

  test('an untouched copy loads (the checks below test only their edit)', async () => {
    const copy = await copyVersion(RF)
    try {
      await (await loadModel(copy.dir)).close()
    } finally {
      await copy.cleanup()
    }
  })

  test('model.onnx with one byte changed', async () => {
    await refused(
      (dir) => flipOneByte(path.join(dir, 'model.onnx')),
      'sha256',
      /^sha256: model\.onnx has sha256 [0-9a-f]{64} \(\d+ bytes\), sidecar expects/
    )
  })

  test('model.onnx cut short', async () => {
    await refused(
      async (dir) => {
        const file = path.join(dir, 'model.onnx')
        await writeFile(file, (await readFile(file)).subarray(0, 1000))
      },
      'sha256',
      /\(1000 bytes\)/
    )
  })

  test('a sidecar whose sha256 does not match', async () => {
    await refused(
      (dir) => editSidecar(dir, (s) => (s.onnx.sha256 = '0'.repeat(64))),
      'sha256',
      /sidecar expects 0{64}/
    )
  })

  test('a golden row whose probability does not match', async () => {
    await refused(
      (dir) => editSidecar(dir, (s) => (s.goldenRows[3].probability += 0.01)),
      'golden-rows',
      /^golden-rows: golden row 3: expected p=.*onnxruntime-node .* gives .*\|diff\| 1\.00e-2 > 0\.00001/
    )
  })

  test('a golden row drifting by less than 1e-5 still loads', async () => {
    const copy = await copyVersion(RF, (dir) =>
      editSidecar(dir, (s) => (s.goldenRows[3].probability += 5e-6))
    )
    try {
      await (await loadModel(copy.dir)).close()
    } finally {
      await copy.cleanup()
    }
  })

  test('a sidecar naming another version', async () => {
    await refused(
      (dir) => editSidecar(dir, (s) => (s.version = GB)),
      'sidecar',
      /sidecar names version 20260102_000000, folder is 20260101_000000/
    )
  })

  test('a sidecar with a feature more than the model has columns', async () => {
    await refused(
      (dir) =>
        editSidecar(dir, (s) => {
          s.features.push({name: 'extra', min: 0, max: 1})
          s.trainingData.features.extra = {min: 0, max: 1}
        }),
      'input-width',
      /model input has 19 columns, sidecar lists 20 features/
    )
  })

  test('a sidecar naming another input', async () => {
    await refused((dir) => editSidecar(dir, (s) => (s.onnx.inputName = 'x')), 'input-width', /`x`/)
  })

  test('a sidecar naming an output the model lacks', async () => {
    await refused(
      (dir) => editSidecar(dir, (s) => (s.onnx.probabilitiesOutput = 'output_probability')),
      'outputs',
      /lack \["output_probability"\]/
    )
  })

  test('a sidecar lacking a field scoring needs', async () => {
    await refused(
      (dir) => editSidecar(dir, (s) => delete s.trainingData.features.brandFit),
      'sidecar',
      /`trainingData\.features\.brandFit` must be an object/
    )
  })

  test('a sidecar that is not JSON', async () => {
    await refused((dir) => writeFile(path.join(dir, 'model.json'), '{"version": '), 'sidecar', /not JSON/)
  })

  test('a folder without model.json', async () => {
    await refused((dir) => rm(path.join(dir, 'model.json')), 'sidecar', /cannot read model\.json/)
  })

  test('explain.onnx with one byte changed', async () => {
    await refused(
      (dir) => flipOneByte(path.join(dir, 'explain.onnx')),
      'explain',
      /^explain: explain\.onnx has sha256 [0-9a-f]{64} \(\d+ bytes\), sidecar expects/
    )
  })

  test('a golden contribution that does not match', async () => {
    await refused(
      (dir) => editSidecar(dir, (s) => (s.explanation.goldenContributions[2][0] += 0.01)),
      'golden-explanations',
      /^golden-explanations: golden row 2, feature `[a-zA-Z]+`: expected contribution .* \(tolerance 0\.00001\)/
    )
  })

  test('a model.onnx that onnxruntime cannot parse', async () => {
    await refused(
      async (dir) => {
        const garbage = Buffer.from('not an onnx model')
        await writeFile(path.join(dir, 'model.onnx'), garbage)
        const {createHash} = await import('node:crypto')
        await editSidecar(dir, (s) => {
          s.onnx.sha256 = createHash('sha256').update(garbage).digest('hex')
          s.onnx.bytes = garbage.length
        })
      },
      'onnx',
      /onnxruntime-node cannot load model\.onnx/
    )
  })
})
