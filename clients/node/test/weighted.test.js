import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import {describe, test} from 'node:test'
import {ArtifactCorruptError, readSidecar, weightedModel} from '../index.js'
import {GB, RF, sidecarOf, uniformRow, versionDir} from './support.js'

describe('weightedModel', () => {
  test('p = sigmoid(intercept + Σ coefficient · x), in the runtime response shape', async () => {
    const sidecar = await sidecarOf(RF)
    const model = weightedModel(sidecar)
    assert.equal(model.source, 'weighted')
    assert.equal(model.version, RF)
    const row = sidecar.goldenRows[7].features
    const {intercept, coefficients} = sidecar.baseline
    const z = intercept + model.features.reduce((sum, name) => sum + coefficients[name] * row[name], 0)
    const p = 1 / (1 + Math.exp(-z))
    const result = await model.predict(row)
    assert.deepEqual(Object.keys(result), [
      'score',
      'confidence',
      'successProbability',
      'featureImportance',
      'modelVersion'
    ])
    assert.ok(Math.abs(result.score - 100 * p) < 1e-12)
    assert.equal(result.score, result.successProbability)
    assert.equal(result.modelVersion, RF)
  })

  test('the golden rows match the baseline probabilities within 1e-9', async () => {
    for (const version of [RF, GB]) {
      const sidecar = await readSidecar(versionDir(version))
      const model = weightedModel(sidecar)
      const got = await model.probabilities(sidecar.goldenRows.map((row) => row.features))
      for (const [i, row] of sidecar.goldenRows.entries()) {
        assert.ok(Math.abs(got[i] - row.baselineProbability) <= 1e-9, `${version} golden row ${i}`)
      }
    }
  })

  test('values are used as given, not rounded to float32', async () => {
    const model = weightedModel(await sidecarOf(RF))
    const x = 0.1 // not a float32
    const a = (await model.probabilities([uniformRow(model.features, x)]))[0]
    const b = (await model.probabilities([uniformRow(model.features, Math.fround(x))]))[0]
    assert.notEqual(a, b)
  })

  test('confidence uses the same formula and observed ranges as the ONNX model', async () => {
    const sidecar = await sidecarOf(RF)
    const model = weightedModel(sidecar)
    const stats = sidecar.trainingData.features
    const row = uniformRow(model.features, 1)
    const k = model.features.filter((name) => Math.fround(1) > Math.fround(stats[name].max)).length
    assert.ok(k > 0)
    const p = (await model.probabilities([row]))[0]
    const result = await model.predict(row)
    assert.equal(result.confidence, 100 * Math.abs(2 * p - 1) * (1 - k / model.features.length))
  })

  test('predictBatch equals predict row by row', async () => {
    const sidecar = await sidecarOf(GB)
    const model = weightedModel(sidecar)
    const rows = sidecar.goldenRows.map((row) => row.features)
    const batch = await model.predictBatch(rows)
    for (const [i, row] of rows.entries()) {
      const {score, confidence, successProbability} = await model.predict(row)
      assert.deepEqual(batch.predictions[i], {score, confidence, successProbability})
    }
  })

  test('a golden baseline probability off by more than 1e-9 is refused', async () => {
    const sidecar = await sidecarOf(RF)
    sidecar.goldenRows[4].baselineProbability += 1e-8
    assert.throws(
      () => weightedModel(sidecar),
      (error) => {
        assert.ok(error instanceof ArtifactCorruptError)
        assert.equal(error.check, 'golden-rows')
        assert.match(error.message, /^golden-rows: golden row 4: expected baseline p=/)
        return true
      }
    )
    assert.equal(weightedModel(sidecar, {verify: false}).version, RF)
  })

  test('a baseline lacking a coefficient is refused', async () => {
    const sidecar = await sidecarOf(RF)
    delete sidecar.baseline.coefficients.brandFit
    assert.throws(() => weightedModel(sidecar), {
      name: 'ArtifactCorruptError',
      check: 'sidecar',
      message: 'sidecar: baseline has no coefficient for feature `brandFit`'
    })
  })

  test('something that is not a sidecar is refused', () => {
    assert.throws(() => weightedModel({version: RF}), {name: 'ArtifactCorruptError', check: 'sidecar'})
    assert.throws(() => weightedModel(null), {name: 'ArtifactCorruptError', check: 'sidecar'})
  })

  /**
   * Run a script in which importing onnxruntime-node fails with `error` (a resolve hook).
   *
   * @param {string} error
   *   JavaScript that makes the Error to throw.
   */
  async function withoutOnnxruntime(error) {
    const hook = [
      'export async function resolve(specifier, context, next) {',
      `  if (specifier === 'onnxruntime-node') throw ${error}`,
      '  return next(specifier, context)',
      '}'
    ].join('\n')
    const script = `
      import {register} from 'node:module'
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}))
      const api = await import(${JSON.stringify(new URL('../index.js', import.meta.url).href)})
      const model = api.weightedModel(await api.readSidecar(${JSON.stringify(versionDir(RF))}))
      const row = Object.fromEntries(model.features.map((name) => [name, 0.5]))
      const result = await model.predict(row)
      let loadError = ''
      try { await api.loadModel(${JSON.stringify(versionDir(RF))}) } catch (error) { loadError = error.message }
      console.log(JSON.stringify({score: result.score, loadError}))
    `
    const {stdout} = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url))
    })
    return JSON.parse(stdout)
  }

  test('works where onnxruntime-node cannot load (the package imports it lazily)', async () => {
    const out = await withoutOnnxruntime("new Error('no native binding here')")
    assert.ok(out.score > 0 && out.score < 100)
    assert.equal(
      out.loadError,
      `onnxruntime-node cannot be loaded on ${process.platform}/${process.arch} (no native binding here); ` +
        'weightedModel(sidecar) scores with the baseline in pure JavaScript'
    )
  })

  test('says how to install onnxruntime-node when it is missing (a folder install brings none)', async () => {
    const out = await withoutOnnxruntime(
      "Object.assign(new Error(\"Cannot find package 'onnxruntime-node' imported from /app/node_modules/ml-matching-client/lib/model.js\"), {code: 'ERR_MODULE_NOT_FOUND'})"
    )
    assert.ok(out.score > 0 && out.score < 100)
    assert.match(
      out.loadError,
      /^onnxruntime-node is not installed beside ml-matching-client: install the client from its tarball/
    )
    assert.match(out.loadError, /ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node/)
  })
})
