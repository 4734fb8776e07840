/**
 * The client against the real Python runtime (`$ML_MATCHING_PYTHON -m ml_matching.runtime`)
 * serving a copy of the fixture store: remote answers must equal local onnxruntime-node answers
 * within 1e-6; and the fake runtime of test/support.js must answer as it does.
 *
 * Runs when ML_MATCHING_PYTHON is set (nox's node session sets it); skipped, with the reason, when
 * the runtime does not become ready. Once it is ready, every check is strict.
 */

import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {cp, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {RequestRejectedError, armOf, createClient, loadModel} from '../index.js'
import {isPredictionId} from '../lib/ids.js'
import {unitHeader} from '../lib/runtime-client.js'
import {
  EXAMPLE_ROW,
  FakeRuntime,
  FakeTrainer,
  GB,
  OTHER,
  PYTHON,
  PythonService,
  REPO,
  RF,
  STORE,
  assertSameAnswer,
  exchange,
  experimentOf,
  freePort,
  memoryLogger,
  rowsOf,
  tempDir,
  testWhen,
  uniformRow,
  versionDir,
  waitFor
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
        assertSameAnswer(mine.body, expected, {
          tolerance: TOLERANCE,
          loose: ['timestamp', 'predictionId'],
          where: what
        })
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

/**
 * `count` random Unicode keys, seeded: ASCII, Latin-1, Greek and Cyrillic, CJK, Hangul, Arabic,
 * emoji and other code points outside the BMP (never a lone surrogate), spaces and `%` included,
 * 1 to 40 code points, and every 500th over 1 KB of UTF-8.
 *
 * @param {number} count
 * @param {number} [seed]
 */
export function randomKeys(count, seed = 20261130) {
  let state = seed >>> 0
  const next = () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
    return state / 2 ** 32
  }
  /** @type {Array<[number, number]>} */
  const ranges = [
    [0x20, 0x7e],
    [0xa0, 0xff],
    [0x370, 0x4ff],
    [0x600, 0x6ff],
    [0x4e00, 0x9fff],
    [0xac00, 0xd7a3],
    [0x1f300, 0x1faff],
    [0x10000, 0x10ffff]
  ]
  return Array.from({length: count}, (_, i) => {
    const length = i % 500 === 499 ? 400 : 1 + Math.floor(next() * 40)
    let key = ''
    for (let j = 0; j < length; j++) {
      const [low, high] = ranges[Math.floor(next() * ranges.length)]
      let cp = low + Math.floor(next() * (high - low + 1))
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41
      key += String.fromCodePoint(cp)
    }
    return key
  })
}

describe(
  'against the Python runtime following an experiment',
  {skip: PYTHON ? false : 'ML_MATCHING_PYTHON is not set'},
  () => {
    // OTHER scores other features than control: the runtime refuses it as a shadow, as the client does.
    const experiment = experimentOf({shadow: [GB, OTHER]})
    /** @type {PythonService} */
    let runtime
    /** @type {string | undefined} */
    let unavailable
    /** The trainer the runtime sends its ledger rows to (and the client its own). */
    const trainer = new FakeTrainer()
    let work = ''
    let dir = ''
    /** @type {Record<string, string>} a key of each arm */
    const arms = {}
    for (let i = 0; Object.keys(arms).length < 2; i++)
      arms[armOf(experiment, `brand-${i}`).arm] ??= `brand-${i}`
    /** @type {Array<string>} */
    const golden = JSON.parse(
      readFileSync(path.join(REPO, 'schemas/assignment-vectors.json'), 'utf8')
    ).vectors.map((/** @type {{key: string}} */ v) => v.key)

    before(async () => {
      work = await tempDir('runtime-experiment')
      dir = path.join(work, 'models')
      const store = path.join(work, 'store')
      await cp(STORE, store, {recursive: true})
      await writeFile(path.join(store, 'EXPERIMENT'), JSON.stringify(experiment) + '\n')
      await trainer.start()
      const port = await freePort()
      runtime = new PythonService('runtime', {
        port,
        env: {
          MODELS_DIR: store,
          ML_SERVICE_HOST: '127.0.0.1',
          ML_SERVICE_PORT: String(port),
          ML_TRAINER_URL: trainer.baseUrl
        },
        readyPath: '/experiment',
        readyTimeoutMs: READY_TIMEOUT_MS
      })
      try {
        await runtime.start()
      } catch (error) {
        unavailable = /** @type {Error} */ (error).message
      }
    })

    after(async () => {
      await runtime?.stop()
      await trainer.stop()
      if (work) await rm(work, {recursive: true, force: true})
    })

    const live = testWhen(() => unavailable)

    live('the fake runtime answers as the runtime does under an experiment', async () => {
      const fake = new FakeRuntime({served: RF})
      fake.experiment = experiment
      await fake.start()
      try {
        const row = EXAMPLE_ROW
        const header = (/** @type {string} */ key) => ({headers: {'ml-unit-key': key}, body: row})
        /** @type {Array<[string, string, {body?: unknown, headers?: Record<string, string>}?]>} */
        const requests = [
          ['GET', '/experiment'],
          ['GET', '/health'],
          ['POST', '/predict', header(arms.control)],
          ['POST', '/predict', header(arms.gb)],
          ['POST', '/predict', header(unitHeader('Café Müller GmbH'))],
          ['POST', '/predict', header(unitHeader(' brand / 42 ? '))],
          ['POST', '/predict', header('%FF%FE')],
          ['POST', '/predict', {body: row}],
          ['POST', '/predict?explain=true', header(arms.gb)],
          ['POST', '/predict', {headers: {'ml-unit-key': arms.gb}, body: {...row, brandFit: 2}}],
          [
            'POST',
            '/predict/batch',
            {body: {instances: [row, row, row], units: [arms.control, arms.gb, '株式会社サンプル']}}
          ],
          [
            'POST',
            '/predict/batch?explain=true',
            {body: {instances: [row, row], units: [arms.gb, arms.control]}}
          ],
          ['POST', '/predict/batch', {body: {instances: [row, row], units: [arms.gb]}}],
          ['POST', '/predict/batch', {body: {instances: [row, row]}}]
        ]
        for (const [method, where, options] of requests) {
          const what = `${method} ${where} ${options?.headers?.['ml-unit-key'] ?? ''}`
          const real = await exchange(runtime.url, method, where, options)
          const mine = await exchange(fake.baseUrl, method, where, options)
          assert.equal(mine.status, real.status, what)
          assert.deepEqual(mine.headers, real.headers, what)
          assertSameAnswer(mine.body, real.body, {
            tolerance: TOLERANCE,
            loose: ['timestamp', 'predictionId', 'ledger'],
            where: what
          })
        }
      } finally {
        await fake.close()
      }
    })

    live(
      "in-process assignment is the runtime's: the golden keys in ML-Unit-Key, 10,000 random ones in units",
      async () => {
        const client = createClient({
          baseUrl: runtime.url,
          trainerUrl: trainer.baseUrl,
          timeoutMs: 10_000,
          logger: memoryLogger()
        })
        const model = await client.followModel({dir, followMs: 600_000})
        try {
          assert.deepEqual(model.experiment, experiment)
          assert.deepEqual(model.refused, {[OTHER]: `it scores other features than control ${RF}`})
          const row = EXAMPLE_ROW
          for (const key of [...golden, ...randomKeys(200, 7)]) {
            const remote = await client.predict(row, {unit: key})
            const local = await model.predict(row, {unit: key})
            const {arm, version} = armOf(experiment, key)
            assert.deepEqual(
              [remote.experiment, remote.arm, remote.modelVersion],
              [experiment.id, arm, version],
              key
            )
            assert.deepEqual(
              [local.experiment, local.arm, local.modelVersion],
              [experiment.id, arm, version],
              key
            )
            assert.ok(Math.abs(remote.score - local.score) <= TOLERANCE, key)
          }
          const keys = randomKeys(10_000)
          /** @type {Record<string, number>} */
          const counts = {}
          for (let start = 0; start < keys.length; start += 2000) {
            const units = keys.slice(start, start + 2000)
            const rows = units.map(() => row)
            const remote = await client.predictBatch(rows, {units})
            const local = await model.predictBatch(rows, {units})
            assert.equal(remote.experiment, experiment.id)
            for (const [i, unit] of units.entries()) {
              const {arm} = armOf(experiment, unit)
              assert.equal(remote.predictions[i].arm, arm, unit)
              assert.equal(local.predictions[i].arm, arm, unit)
              counts[arm] = (counts[arm] ?? 0) + 1
            }
          }
          assert.ok(counts.control > 4700 && counts.gb > 4700, JSON.stringify(counts))
        } finally {
          await model.close()
        }
      }
    )

    live(
      "in-process ledger rows are the runtime's rows, and a unit keeps its arm when the runtime stops",
      async () => {
        trainer.predictions.clear()
        const client = createClient({
          baseUrl: runtime.url,
          trainerUrl: trainer.baseUrl,
          timeoutMs: 5000,
          logger: memoryLogger()
        })
        const model = await client.followModel({dir, followMs: 600_000})
        try {
          const row = rowsOf(model.model.features, 1, 4242)[0]
          for (const unit of Object.values(arms)) {
            const remote = await client.predict(row, {unit})
            const local = await model.predict(row, {unit})
            await client.flushPredictions()
            const fromRuntime = await waitFor(
              () => trainer.predictions.get(/** @type {string} */ (remote.predictionId)),
              {
                what: `the runtime's ledger row for ${unit}`
              }
            )
            const fromNode = trainer.predictions.get(local.predictionId)
            assert.ok(isPredictionId(remote.predictionId) && isPredictionId(local.predictionId))
            const {source, ...rest} = fromNode
            assert.equal(source, 'node')
            assertSameAnswer(rest, fromRuntime, {
              tolerance: TOLERANCE,
              loose: ['predictionId', 'at', 'ms'],
              where: unit
            })
            assert.deepEqual(
              fromRuntime.shadow.map((/** @type {{version: string}} */ s) => s.version),
              [GB]
            )
          }
          const before = await Promise.all(golden.map((unit) => client.predict(row, {unit})))
          await runtime.stop()
          for (const [i, unit] of golden.entries()) {
            const local = await client.predict(row, {unit})
            assert.equal(local.source, 'local')
            assert.deepEqual(
              [local.experiment, local.arm, local.modelVersion],
              [before[i].experiment, before[i].arm, before[i].modelVersion]
            )
          }
        } finally {
          await model.close()
        }
      }
    )
  }
)
