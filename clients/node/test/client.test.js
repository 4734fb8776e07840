/**
 * The HTTP client against the fake runtime (test/support.js), which answers as the runtime does:
 * it serves GB while the client's local model is RF, so a remote answer is told from a local one
 * by its numbers as well as by `source`.
 */

import assert from 'node:assert/strict'
import {readFile, readdir} from 'node:fs/promises'
import path from 'node:path'
import {after, before, beforeEach, describe, test} from 'node:test'
import {
  ArtifactCorruptError,
  RequestRejectedError,
  ServiceUnavailableError,
  SettingsError,
  createClient,
  loadModel,
  weightedModel
} from '../index.js'
import {
  ADMIN_TOKEN,
  FakeRuntime,
  GB,
  OTHER,
  RF,
  manualClock,
  memoryLogger,
  nextTurn,
  sidecarOf,
  tempDir,
  uniformRow,
  versionDir,
  withoutIds
} from './support.js'

/** @import {LocalScorer, OnnxModel} from '../index.js' */

/**
 * Wraps a scorer to count its use.
 *
 * @param {LocalScorer} inner
 */
function counting(inner) {
  const counter = {
    calls: 0,
    source: inner.source,
    version: inner.version,
    /** @param {Record<string, number>} row */
    predict: (row) => {
      counter.calls++
      return inner.predict(row)
    },
    /** @param {ReadonlyArray<Record<string, number>>} rows */
    predictBatch: (rows) => {
      counter.calls++
      return inner.predictBatch(rows)
    }
  }
  return counter
}

describe('createClient', () => {
  /** @type {OnnxModel} the client's local model */
  let local
  /** @type {OnnxModel} what the runtime serves */
  let served
  /** @type {Record<string, number>} */
  let row
  const server = new FakeRuntime()

  before(async () => {
    local = await loadModel(versionDir(RF))
    served = await loadModel(versionDir(GB))
    row = uniformRow(local.features, 0.5)
  })
  beforeEach(async () => {
    await server.stop()
    server.mode = 'ok'
    server.served = GB
    server.requests = []
    server.posts = []
    server.port = 0
    await server.start()
  })
  after(async () => {
    await server.close()
    await local.close()
    await served.close()
  })

  test('up → remote; stopped → local, marked; back → remote after healthIntervalMs', async () => {
    const logger = memoryLogger()
    const clock = manualClock()
    const healthIntervalMs = 5000
    const client = createClient({
      baseUrl: server.baseUrl,
      local,
      healthIntervalMs,
      timeoutMs: 1000,
      logger,
      now: clock.now
    })

    const remote = await client.predict(row)
    assert.deepEqual(withoutIds(remote), {...(await served.predict(row)), source: 'remote'})
    assert.notEqual(remote.score, (await local.predict(row)).score)
    assert.equal(client.degraded, false)
    assert.deepEqual(server.posts[0].body, row)

    await server.stop()
    const expected = await local.predict(row)
    const fallback = await client.predict(row)
    assert.deepEqual(fallback, {...expected, source: 'local'})
    assert.equal(client.degraded, true)
    assert.equal(logger.lines.length, 1)
    assert.equal(logger.lines[0][0], 'warn')
    assert.match(
      logger.lines[0][1],
      /^ml-matching service at http:\S+ is unreachable: POST \/predict failed \(.+\); scoring with the local model 20260101_000000 until/
    )

    // Back on the same port, but the last failure was under healthIntervalMs ago: still local,
    // and no probe is sent.
    await server.start()
    const seen = server.requests.length
    clock.advance(healthIntervalMs - 1)
    assert.equal((await client.predict(row)).source, 'local')
    assert.equal(server.requests.length, seen)

    clock.advance(1)
    const back = await client.predict(row)
    assert.equal(back.source, 'remote')
    assert.deepEqual(server.requests.slice(seen), ['GET /health/ready', 'POST /predict'])
    assert.equal(client.degraded, false)
    assert.deepEqual(logger.lines[1], [
      'info',
      `ml-matching service at ${server.baseUrl} is ready again; scoring remotely`
    ])
  })

  test('while degraded, /health/ready is asked at most once per healthIntervalMs', async () => {
    server.mode = 'no-model'
    const clock = manualClock()
    const healthIntervalMs = 200
    const client = createClient({
      baseUrl: server.baseUrl,
      local,
      healthIntervalMs,
      logger: memoryLogger(),
      now: clock.now
    })
    assert.equal((await client.predict(row)).source, 'local')
    for (let i = 0; i < 20; i++) {
      clock.advance(healthIntervalMs / 20 - 1) // 19 × 9 ms: still inside the interval
      assert.equal((await client.predict(row)).source, 'local')
    }
    assert.deepEqual(server.requests, ['POST /predict'])

    clock.advance(healthIntervalMs)
    await Promise.all(Array.from({length: 5}, () => client.predict(row)))
    assert.deepEqual(server.requests, ['POST /predict', 'GET /health/ready'])
    assert.equal(client.degraded, true)
  })

  test('a slow service times out → local, without waiting for its answer', async () => {
    server.mode = 'slow'
    const logger = memoryLogger()
    const client = createClient({baseUrl: server.baseUrl, local, timeoutMs: 100, logger})
    const started = performance.now()
    const result = await client.predict(row)
    assert.equal(result.source, 'local')
    assert.ok(performance.now() - started < server.slowMs, 'the client waited for the slow answer')
    assert.match(logger.lines[0][1], /POST \/predict timed out after 100 ms/)
  })

  test('503 → local, for one row and for a batch', async () => {
    server.mode = 'no-model'
    const logger = memoryLogger()
    const client = createClient({baseUrl: server.baseUrl, local, logger})
    assert.equal((await client.predict(row)).source, 'local')
    assert.match(logger.lines[0][1], /POST \/predict answered 503/)

    const rows = [row, uniformRow(local.features, 0.25)]
    const batch = await client.predictBatch(rows)
    const expected = await local.predictBatch(rows)
    assert.equal(batch.source, 'local')
    assert.deepEqual(
      batch.predictions,
      expected.predictions.map((p) => ({...p, source: 'local'}))
    )
    assert.equal(batch.modelVersion, RF)
  })

  test('every way the runtime can fail falls back within the timeout, says why, and recovers', async () => {
    /** @type {Array<unknown>} */
    const unhandled = []
    const record = (/** @type {unknown} */ reason) => void unhandled.push(reason)
    process.on('unhandledRejection', record)
    try {
      for (const [mode, why] of /** @type {const} */ ([
        ['hang', /POST \/predict timed out after 200 ms/],
        ['slow', /POST \/predict timed out after 200 ms/],
        ['reset', /POST \/predict failed \((ECONNRESET|UND_ERR_SOCKET|other side closed)/],
        ['no-model', /POST \/predict answered 503/],
        ['not-json', /POST \/predict answered with a body that is not JSON/],
        ['off-contract', /answered POST \/predict with a body outside the contract/]
      ])) {
        server.mode = mode
        const logger = memoryLogger()
        const clock = manualClock()
        const client = createClient({baseUrl: server.baseUrl, local, timeoutMs: 200, logger, now: clock.now})
        const started = performance.now()
        const result = await client.predict(row)
        const elapsed = performance.now() - started
        assert.equal(result.source, 'local', mode)
        assert.ok(elapsed < 200 + 1500, `${mode}: answered after ${elapsed} ms`)
        assert.match(logger.lines[0][1], why, mode)
        server.mode = 'ok'
        clock.advance(5000)
        assert.equal((await client.predict(row)).source, 'remote', `${mode}: recovers`)
      }
      await nextTurn() // a rejection nobody handled is reported by then
      assert.deepEqual(unhandled, [])
    } finally {
      process.off('unhandledRejection', record)
    }
  })

  test('a 200 whose body is not JSON, or not the contract’s shape → local', async () => {
    server.mode = 'not-json'
    const client = createClient({baseUrl: server.baseUrl, local, logger: memoryLogger()})
    assert.equal((await client.predict(row)).source, 'local')
    server.mode = 'off-contract'
    const other = createClient({baseUrl: server.baseUrl, local, logger: memoryLogger()})
    assert.equal((await other.predict(row)).source, 'local')
    assert.equal((await other.predictBatch([row])).source, 'local')
  })

  test('a 400 is thrown with the service detail, never hidden by the fallback', async () => {
    const spy = counting(local)
    const logger = memoryLogger()
    const client = createClient({baseUrl: server.baseUrl, local: spy, logger})
    await assert.rejects(client.predict(uniformRow(local.features, 0.5, {brandFit: 1.5})), (error) => {
      assert.ok(error instanceof RequestRejectedError)
      assert.equal(error.status, 400)
      assert.equal(error.code, 'invalid_input')
      assert.equal(error.detail, 'feature `brandFit`: value 1.5 is outside [0, 1]')
      assert.match(error.message, /^POST \/predict answered 400 invalid_input: feature `brandFit`/)
      return true
    })
    await assert.rejects(client.predictBatch([row, uniformRow(local.features, 0.5, {brandFit: 2})]), {
      name: 'RequestRejectedError',
      detail: 'row 1: feature `brandFit`: value 2 is outside [0, 1]'
    })
    assert.equal(spy.calls, 0)
    assert.equal(client.degraded, false)
    assert.deepEqual(logger.lines, [])
  })

  test('a batch scored remotely is marked on the answer and on each prediction', async () => {
    const client = createClient({baseUrl: server.baseUrl, local})
    const batch = await client.predictBatch([row, row])
    assert.equal(batch.source, 'remote')
    const expected = await served.predictBatch([row, row])
    assert.deepEqual(withoutIds(batch), {
      ...expected,
      predictions: expected.predictions.map((p) => ({...p, source: 'remote'})),
      source: 'remote'
    })
    assert.deepEqual(server.posts[0].body, {instances: [row, row]})
  })

  test('a weighted local model marks its results "weighted"', async () => {
    const weighted = weightedModel(await sidecarOf(RF))
    const client = createClient({baseUrl: server.baseUrl, local: weighted, logger: memoryLogger()})
    await server.stop()
    const result = await client.predict(row)
    assert.deepEqual(result, {...(await weighted.predict(row)), source: 'weighted'})
    assert.equal((await client.predictBatch([row])).predictions[0].source, 'weighted')
  })

  test('explain falls back to the local explainer; a weighted model cannot explain', async () => {
    const client = createClient({baseUrl: server.baseUrl, local, logger: memoryLogger()})
    await server.stop()
    const explained = await client.predict(row, {explain: true})
    assert.deepEqual(explained, {...(await local.predict(row, {explain: true})), source: 'local'})
    assert.equal(typeof explained.baseValue, 'number')
    const batch = await client.predictBatch([row], {explain: true})
    assert.deepEqual(batch.predictions[0].contributions, explained.contributions)
    const weighted = createClient({baseUrl: server.baseUrl, local: weightedModel(await sidecarOf(RF))})
    await assert.rejects(weighted.predict(row, {explain: true}), {name: 'ExplanationUnavailableError'})
  })

  test('explain asks the runtime; a runtime older than explanations is not an outage', async () => {
    const client = createClient({baseUrl: server.baseUrl, local, logger: memoryLogger()})
    const remote = await client.predict(row, {explain: true})
    assert.deepEqual(server.posts.at(-1)?.path, '/predict?explain=true')
    assert.deepEqual(withoutIds(remote), {...(await served.predict(row, {explain: true})), source: 'remote'})
    assert.equal(remote.explanationScale, 'log-odds')
    const batch = await client.predictBatch([row, row], {explain: true})
    assert.equal(batch.baseValue, remote.baseValue)
    assert.deepEqual(batch.predictions[1].contributions, remote.contributions)

    server.mode = 'before-explanations'
    await assert.rejects(client.predict(row, {explain: true}), (error) => {
      assert.equal(/** @type {Error} */ (error).name, 'ExplanationUnavailableError')
      assert.match(String(error), /answered POST \/predict\?explain=true without contributions/)
      return true
    })
    await assert.rejects(client.predictBatch([row], {explain: true}), {name: 'ExplanationUnavailableError'})
    assert.equal(client.degraded, false)
    assert.equal((await client.predict(row)).source, 'remote')
  })

  test('without a local model, an unreachable service throws ServiceUnavailableError', async () => {
    const logger = memoryLogger()
    const client = createClient({baseUrl: server.baseUrl, timeoutMs: 100, logger})
    await server.stop()
    await assert.rejects(client.predict(row), (error) => {
      assert.ok(error instanceof ServiceUnavailableError)
      assert.match(
        error.message,
        /^ml-matching service at http:\/\/127\.0\.0\.1:\d+ is unreachable: POST \/predict failed/
      )
      return true
    })
    assert.match(logger.lines[0][1], /no local model to fall back to/)

    // It keeps trying the service (there is nothing else to do): back up, answered at once.
    await server.start()
    assert.equal((await client.predict(row)).source, 'remote')
    assert.equal(logger.lines[1][0], 'info')

    server.mode = 'no-model'
    await assert.rejects(client.predictBatch([row]), {name: 'ServiceUnavailableError', status: 503})
  })

  test('health, models, model and loadVersion talk to the service, never to local', async () => {
    const client = createClient({baseUrl: server.baseUrl + '/', local, adminToken: ADMIN_TOKEN})
    const health = await client.health()
    assert.equal(health.status, 'healthy')
    assert.equal(health.modelVersion, GB)
    const models = await client.models()
    assert.deepEqual(
      models.map((m) => [m.version, m.active]),
      [
        [RF, false],
        [GB, true],
        [OTHER, false]
      ]
    )
    assert.equal((await client.model(GB)).version, GB)
    await assert.rejects(client.model('nope'), {
      name: 'RequestRejectedError',
      status: 400,
      code: 'invalid_input'
    })
    await assert.rejects(client.model('20991231_235959'), {status: 404, code: 'version_not_found'})
    assert.deepEqual(await client.loadVersion(RF), {
      status: 'success',
      version: RF,
      previousVersion: GB,
      persisted: true
    })
    assert.equal(server.posts.at(-1)?.headers.authorization, `Bearer ${ADMIN_TOKEN}`)
    assert.equal((await client.predict(row)).modelVersion, RF, 'the loaded version serves')

    const wrong = createClient({baseUrl: server.baseUrl, adminToken: 'nope'})
    await assert.rejects(wrong.loadVersion(GB), {
      name: 'RequestRejectedError',
      status: 401,
      code: 'unauthorized'
    })
    const none = createClient({baseUrl: server.baseUrl})
    await assert.rejects(none.loadVersion(GB), (error) => {
      assert.ok(error instanceof SettingsError)
      assert.equal(error.code, 'invalid_settings')
      assert.match(
        error.message,
        /^loadVersion needs the adminToken option: createClient\(\{adminToken\}\) with the runtime's ML_SERVICE_ADMIN_TOKEN$/
      )
      return true
    })
    assert.equal(
      server.posts.filter((p) => p.path.endsWith('/load')).length,
      2,
      'nothing sent without a token'
    )

    await server.stop()
    await assert.rejects(client.health(), {name: 'ServiceUnavailableError'})
  })

  test('options are checked, naming the option', () => {
    for (const [options, message] of /** @type {const} */ ([
      [{baseUrl: 'not a url'}, /^baseUrl must be an http\(s\) URL, got "not a url" \(a string\)$/],
      [
        {baseUrl: 'ftp://host'},
        /^baseUrl must be an http\(s\) URL such as .*, got "ftp:\/\/host" \(a string\)$/
      ],
      [
        {baseUrl: server.baseUrl, timeoutMs: 0},
        /^timeoutMs must be a positive number of milliseconds, got 0$/
      ],
      [{baseUrl: server.baseUrl, healthIntervalMs: -1}, /^healthIntervalMs must be a positive/],
      // Each of these was accepted, and failed later (an outage, a first outcome) or not at all:
      [{baseUrl: server.baseUrl, trainerUrl: 'localhost:8001'}, /^trainerUrl must be an http\(s\) URL/],
      [{baseUrl: server.baseUrl, timeoutMs: '500'}, /^timeoutMs must be .*, got "500" \(a string\)$/],
      [
        {baseUrl: server.baseUrl, timeout: 500},
        /^unknown option timeout \(the options are baseUrl, timeoutMs, /
      ],
      [
        {baseUrl: server.baseUrl, logger: {}},
        /^logger must be console, or an object with warn and info methods; got an object \(Object\) without warn, info$/
      ],
      [
        {baseUrl: server.baseUrl, local: 'models/x'},
        /^local must be a model from loadModel, weightedModel or followModel; got "models\/x" \(a string\) without predict, predictBatch$/
      ],
      [{baseUrl: server.baseUrl, spoolFile: 42}, /^spoolFile must be a file's path, got 42$/],
      [undefined, /^createClient needs an options object with at least baseUrl, got undefined$/]
    ])) {
      assert.throws(
        () => createClient(/** @type {any} */ (options)),
        (error) => {
          assert.ok(error instanceof SettingsError)
          assert.equal(error.code, 'invalid_settings')
          assert.match(error.message, message)
          return true
        }
      )
    }
  })

  test('downloadVersion fetches a version, checks every file, and keeps it whole', async (t) => {
    const dir = await tempDir('download', t)
    const client = createClient({baseUrl: server.baseUrl})
    const folder = await client.downloadVersion(RF, dir)
    assert.equal(folder, path.join(dir, RF))
    const pinned = Object.keys((await sidecarOf(RF)).files ?? {})
    assert.ok(pinned.includes('explain.onnx') && pinned.includes('card.html'))
    for (const name of ['model.json', 'model.onnx', ...pinned]) {
      assert.deepEqual(
        await readFile(path.join(folder, name)),
        await readFile(path.join(versionDir(RF), name))
      )
    }
    const model = await client.fetchModel({version: RF, dir})
    assert.deepEqual(await model.predict(row), await local.predict(row))
    await model.close()
    assert.equal(
      server.requests.filter((r) => r.includes('/files/')).length,
      2 + pinned.length,
      'a version on disk is not fetched again'
    )

    server.mode = 'tampered'
    await assert.rejects(client.downloadVersion(GB, dir), (error) => {
      assert.ok(error instanceof ArtifactCorruptError)
      assert.equal(error.check, 'sha256')
      assert.match(
        error.message,
        /^sha256: model\.onnx of 20260102_000000 downloaded from http:\S+ has sha256 [0-9a-f]{64}, expected/
      )
      return true
    })
    assert.deepEqual((await readdir(dir)).sort(), [RF], 'nothing of the refused version is left')
  })

  test('downloadVersion without a version takes the one the runtime serves', async (t) => {
    const dir = await tempDir('download', t)
    const client = createClient({baseUrl: server.baseUrl})
    assert.equal(await client.downloadVersion(undefined, dir), path.join(dir, GB))
    assert.deepEqual(server.requests.slice(0, 2), ['GET /health/ready', `GET /models/${GB}/files/model.json`])
    const model = await client.fetchModel({dir})
    assert.deepEqual(await model.predict(row), await served.predict(row))
    await model.close()
    // A version it does not have is the runtime's 404, passed on.
    await assert.rejects(client.downloadVersion('20991231_235959', dir), {
      name: 'RequestRejectedError',
      status: 404,
      code: 'version_not_found'
    })
    assert.deepEqual(await readdir(dir), [GB])
  })

  test('a class instance (a NestJS DTO) is a row locally as it is remotely', async () => {
    // JSON.stringify sends its own fields, and the runtime scored it; the local scorer refused it
    // ("expected an object of features, got an object (Dto)"), so only a degraded client failed.
    class Dto {}
    const plain = uniformRow(local.features, 0.5)
    const dto = Object.assign(new Dto(), plain)
    assert.equal((await local.predict(dto)).score, (await local.predict(plain)).score)
    assert.equal(
      (await local.predictBatch([dto, plain])).predictions[0].score,
      (await local.predict(plain)).score
    )
  })

  test('a row JSON cannot carry is the caller’s error, not a service failure', async () => {
    const client = createClient({baseUrl: server.baseUrl, local})
    // In the local scorer's words: NaN reached the runtime as null ("got null"), a bigint was a
    // TypeError, undefined went missing.
    const row = uniformRow(local.features, 0.5)
    for (const [value, reason, words] of /** @type {const} */ ([
      [1n, 'type', 'feature `brandFit`: expected a number, got a bigint'],
      [NaN, 'non-finite', 'feature `brandFit`: value NaN is not a finite number'],
      [-Infinity, 'non-finite', 'feature `brandFit`: value -Infinity is not a finite number'],
      [undefined, 'type', 'feature `brandFit`: expected a number, got undefined']
    ])) {
      const bad = {...row, brandFit: /** @type {any} */ (value)}
      await assert.rejects(client.predict(bad), {name: 'InvalidInputError', reason, message: words})
      await assert.rejects(local.predict(bad), {name: 'InvalidInputError', reason, message: words})
      await assert.rejects(client.predictBatch([row, bad]), {message: `row 1: ${words}`})
    }
    assert.equal(client.degraded, false)
    assert.deepEqual(server.requests, [])
  })
})
