/**
 * The client against the real Python runtime (`$ML_MATCHING_PYTHON -m ml_matching.runtime`)
 * serving a copy of the fixture store: remote answers must equal local onnxruntime-node answers
 * within 1e-6; and the fake runtime of test/support.js must answer as it does.
 *
 * Runs when ML_MATCHING_PYTHON is set (nox's node session sets it); skipped, with the reason, when
 * the runtime does not become ready. Once it is ready, every check is strict.
 */

import assert from 'node:assert/strict'
import {cp, rm} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {RequestRejectedError, createClient, loadModel} from '../index.js'
import {
  EXAMPLE_ROW,
  FakeRuntime,
  GB,
  OTHER,
  PYTHON,
  PythonService,
  RF,
  STORE,
  assertSameAnswer,
  exchange,
  freePort,
  rowsOf,
  tempDir,
  uniformRow,
  versionDir
} from './support.js'

/** @import {OnnxModel, RowScore} from '../index.js' */

const READY_TIMEOUT_MS = 15_000
const TOLERANCE = 1e-6
const TOKEN = 'node-test-token'

/**
 * @param {RowScore} remote
 * @param {RowScore} local
 * @param {string} where
 */
function assertSameScore(remote, local, where) {
  for (const key of /** @type {const} */ (['score', 'confidence', 'successProbability'])) {
    const diff = Math.abs(remote[key] - local[key])
    assert.ok(diff <= TOLERANCE, `${where}: ${key} remote ${remote[key]} vs local ${local[key]}`)
  }
}

describe('against the Python runtime', {skip: PYTHON ? false : 'ML_MATCHING_PYTHON is not set'}, () => {
  /** @type {PythonService} */
  let runtime
  /** @type {string | undefined} why the runtime is not there to test */
  let unavailable
  let baseUrl = ''
  let store = ''
  /** @type {OnnxModel} */
  let rf
  /** @type {OnnxModel} */
  let gb

  before(async () => {
    rf = await loadModel(versionDir(RF))
    gb = await loadModel(versionDir(GB))
    // A copy: loading a version rewrites the store's ACTIVE, and the committed fixture must not change.
    store = path.join(await tempDir('runtime'), 'store')
    await cp(STORE, store, {recursive: true})
    const port = await freePort()
    runtime = new PythonService('runtime', {
      port,
      env: {
        MODELS_DIR: store,
        ML_SERVICE_HOST: '127.0.0.1',
        ML_SERVICE_PORT: String(port),
        ML_SERVICE_ADMIN_TOKEN: TOKEN
      },
      readyPath: '/health/ready',
      readyTimeoutMs: READY_TIMEOUT_MS
    })
    baseUrl = runtime.url
    try {
      await runtime.start()
    } catch (error) {
      unavailable = /** @type {Error} */ (error).message
    }
  })

  after(async () => {
    await runtime?.stop()
    await rf?.close()
    await gb?.close()
    if (store) await rm(path.dirname(store), {recursive: true, force: true})
  })

  /**
   * @param {string} name
   * @param {(client: ReturnType<typeof createClient>) => Promise<void>} body
   */
  function live(name, body) {
    test(name, async (t) => {
      if (unavailable) return t.skip(unavailable)
      await body(createClient({baseUrl, adminToken: TOKEN, local: rf, timeoutMs: 5000, logger: console}))
    })
  }

  live('health and readiness name the active version', async (client) => {
    const health = await client.health()
    assert.equal(health.status, 'healthy')
    assert.equal(health.service, 'ml-matching')
    assert.equal(health.modelLoaded, true)
    assert.equal(health.modelVersion, RF)
    assert.ok(!Number.isNaN(Date.parse(health.timestamp)))
  })

  live('the fake runtime of test/support.js answers as the runtime does', async () => {
    const fake = new FakeRuntime({served: RF, token: TOKEN})
    await fake.start()
    try {
      const row = EXAMPLE_ROW
      const rows = [row, ...rowsOf(rf.features, 3)]
      /** @type {Array<[string, string, {body?: unknown, headers?: Record<string, string>}?]>} */
      const requests = [
        ['GET', '/health'],
        ['GET', '/health/ready'],
        ['GET', '/models'],
        ['GET', `/models/${RF}`],
        ['GET', '/models/nope'],
        ['GET', '/models/20991231_235959'],
        ['GET', `/models/${RF}/files/model.json`],
        ['GET', `/models/${RF}/files/model.onnx`],
        ['GET', `/models/${RF}/files/card.html`],
        ['GET', `/models/${GB}/files/explain.onnx`],
        ['GET', `/models/${RF}/files/nope.txt`],
        ['GET', `/models/20991231_235959/files/model.onnx`],
        ['POST', '/predict', {body: row}],
        ['POST', '/predict?explain=true', {body: row}],
        ['POST', '/predict/batch', {body: {instances: rows}}],
        ['POST', '/predict/batch?explain=true', {body: {instances: rows}}],
        ['POST', '/predict', {body: {...row, brandFit: 1.5}}],
        ['POST', '/predict', {body: {...row, brandfit: 0.5}}],
        ['POST', '/predict/batch', {body: {instances: [row, {...row, brandFit: 2}]}}],
        ['POST', '/predict/batch', {body: {instances: []}}],
        ['POST', '/predict', {body: row, headers: {'content-type': 'text/plain'}}],
        ['POST', `/models/${GB}/load`, {headers: {authorization: 'Bearer wrong'}}],
        ['POST', `/models/${RF}/load`, {headers: {authorization: `Bearer ${TOKEN}`}}],
        ['GET', '/nope']
      ]
      for (const [method, where, options] of requests) {
        const what = `${method} ${where}`
        const real = await exchange(baseUrl, method, where, options)
        const mine = await exchange(fake.baseUrl, method, where, options)
        assert.equal(mine.status, real.status, what)
        assert.deepEqual(mine.headers, real.headers, what)
        if (Buffer.isBuffer(real.body)) {
          assert.ok(Buffer.isBuffer(mine.body) && mine.body.equals(real.body), `${what}: the same bytes`)
          continue
        }
        // The runtime names its store (a copy) in a detail; the fake names the committed one.
        const expected = JSON.parse(JSON.stringify(real.body).replaceAll(store, STORE))
        assertSameAnswer(mine.body, expected, {tolerance: TOLERANCE, loose: ['timestamp'], where: what})
      }
    } finally {
      await fake.close()
    }
  })

  live(`remote /predict equals local onnxruntime-node within ${TOLERANCE}`, async (client) => {
    const sample = [...rf.sidecar.goldenRows.map((row) => row.features), ...rowsOf(rf.features, 40)]
    sample.push(uniformRow(rf.features, 0), uniformRow(rf.features, 1))
    for (const [i, row] of sample.entries()) {
      const remote = await client.predict(row)
      const local = await rf.predict(row)
      assert.equal(remote.source, 'remote')
      assert.equal(remote.modelVersion, RF)
      assertSameScore(remote, local, `row ${i}`)
      assert.deepEqual(Object.keys(remote.featureImportance), Object.keys(local.featureImportance))
      for (const [name, value] of Object.entries(local.featureImportance)) {
        assert.ok(Math.abs(remote.featureImportance[name] - value) <= 1e-12, `importance of ${name}`)
      }
    }
  })

  live('remote /predict/batch equals local predictBatch', async (client) => {
    const sample = rowsOf(rf.features, 200)
    const remote = await client.predictBatch(sample)
    const local = await rf.predictBatch(sample)
    assert.equal(remote.source, 'remote')
    assert.equal(remote.modelVersion, RF)
    assert.equal(remote.predictions.length, sample.length)
    for (const [i, prediction] of remote.predictions.entries()) {
      assertSameScore(prediction, local.predictions[i], `row ${i}`)
    }
  })

  live('explain: remote contributions equal local ones within 1e-6, batch and single', async (client) => {
    const sample = rowsOf(rf.features, 50)
    const remote = await client.predictBatch(sample, {explain: true})
    const local = await rf.predictBatch(sample, {explain: true})
    assert.equal(remote.source, 'remote')
    assert.equal(remote.explanationScale, local.explanationScale)
    assert.ok(Math.abs(Number(remote.baseValue) - Number(local.baseValue)) <= 1e-12)
    for (const [i, prediction] of remote.predictions.entries()) {
      const mine = local.predictions[i].contributions ?? {}
      assert.deepEqual(Object.keys(prediction.contributions ?? {}), rf.features)
      for (const [name, value] of Object.entries(prediction.contributions ?? {})) {
        assert.ok(Math.abs(value - mine[name]) <= TOLERANCE, `row ${i}, ${name}: ${value} vs ${mine[name]}`)
      }
    }
    const one = await client.predict(sample[3], {explain: true})
    assert.deepEqual(one.contributions, remote.predictions[3].contributions)
    assert.equal(one.baseValue, remote.baseValue)
    const plain = await client.predict(sample[3])
    assert.equal(plain.contributions, undefined)
    assert.equal(plain.score, one.score)
  })

  live('bad input answers 400 naming the feature, thrown, never scored locally', async (client) => {
    const good = uniformRow(rf.features, 0.5)
    const {brandFit, ...missing} = good
    /** @type {Array<[string, unknown]>} */
    const cases = [
      ['missing', missing],
      ['unknown', {...good, brandfit: 0.5}],
      ['numeric string', {...good, brandFit: '0.5'}],
      ['boolean', {...good, brandFit: true}],
      ['null', {...good, brandFit: null}],
      ['out of range', {...good, brandFit: 1.5}]
    ]
    for (const [label, row] of cases) {
      const localRefusal = await rf.predict(/** @type {any} */ (row)).then(
        () => 'accepted locally',
        (/** @type {Error} */ error) => error.message
      )
      await assert.rejects(client.predict(/** @type {any} */ (row)), (error) => {
        assert.ok(error instanceof RequestRejectedError, `${label}: ${error}`)
        assert.equal(error.status, 400, label)
        assert.equal(error.code, 'invalid_input', label)
        // The runtime's words are the local model's words.
        assert.equal(error.detail, localRefusal, label)
        return true
      })
    }
    await assert.rejects(client.predictBatch([]), {name: 'RequestRejectedError', status: 400})
    assert.equal(client.degraded, false)
  })

  live('models lists the store; loadVersion swaps, and remote equals the new local model', async (client) => {
    const models = await client.models()
    assert.deepEqual(models.map((m) => m.version).sort(), [RF, GB, OTHER])
    assert.deepEqual(
      models.filter((m) => m.active).map((m) => m.version),
      [RF]
    )
    assert.equal((await client.model(GB)).version, GB)

    const unauthorised = createClient({baseUrl, adminToken: 'wrong'})
    await assert.rejects(unauthorised.loadVersion(GB), (error) => {
      assert.ok(error instanceof RequestRejectedError)
      assert.deepEqual([error.status, error.code], [401, 'unauthorized'])
      return true
    })

    const loaded = await client.loadVersion(GB)
    try {
      assert.deepEqual([loaded.status, loaded.version, loaded.previousVersion], ['success', GB, RF])
      for (const [i, row] of rowsOf(gb.features, 30).entries()) {
        const remote = await client.predict(row)
        assert.equal(remote.modelVersion, GB)
        assertSameScore(remote, await gb.predict(row), `row ${i}`)
      }
    } finally {
      await client.loadVersion(RF)
    }
  })

  live(
    'fetchModel downloads the served version, verified, and scores as the runtime does',
    async (client) => {
      const dir = await tempDir('fetch')
      try {
        const model = await client.fetchModel({dir})
        assert.equal(model.version, RF)
        for (const [i, row] of rowsOf(model.features, 20).entries()) {
          assertSameScore(await client.predict(row), await model.predict(row), `row ${i}`)
        }
        await model.close()
        await assert.rejects(client.downloadVersion('20990101_000000', dir), {
          status: 404,
          code: 'version_not_found'
        })
      } finally {
        await rm(dir, {recursive: true, force: true})
      }
    }
  )

  live('when the runtime stops, the client scores locally', async (client) => {
    const row = uniformRow(rf.features, 0.5)
    assert.equal((await client.predict(row)).source, 'remote')
    await runtime.stop()
    const quiet = createClient({baseUrl, local: rf, timeoutMs: 1000, logger: {warn() {}, info() {}}})
    assert.deepEqual(await quiet.predict(row), {...(await rf.predict(row)), source: 'local'})
  })
})
