/**
 * The HTTP client against a real server on 127.0.0.1 that mimics the runtime's contract.
 */

import assert from 'node:assert/strict'
import http from 'node:http'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, before, beforeEach, describe, test} from 'node:test'
import {
  RequestRejectedError,
  ServiceUnavailableError,
  createClient,
  loadModel,
  weightedModel
} from '../index.js'
import {RF, sidecarOf, uniformRow, versionDir} from './helpers.js'

/** @import {LocalScorer, OnnxModel} from '../index.js' */

const TOKEN = 'test-admin-token'
const REMOTE_VERSION = '20991231_235959'

/**
 * A stand-in for the Python runtime: answers the contract's routes with fixed numbers (so a remote
 * answer is told from a local one), and can be stopped, restarted on the same port, slowed down or
 * made to fail.
 */
class FakeRuntime {
  /** @type {'ok' | 'slow' | 'unavailable' | 'not-json' | 'off-contract'} */
  mode = 'ok'
  slowMs = 1000
  /** @type {Array<string>} requests seen, as `METHOD /path` */
  requests = []
  /** @type {Array<{path: string, headers: http.IncomingHttpHeaders, body: any}>} */
  posts = []
  port = 0
  /** @type {http.Server | undefined} */
  #server

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`
  }

  /** @returns {Promise<void>} */
  start() {
    const server = http.createServer((request, response) => void this.#handle(request, response))
    this.#server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => {
        this.port = /** @type {import('node:net').AddressInfo} */ (server.address()).port
        resolve()
      })
    })
  }

  /** @returns {Promise<void>} */
  stop() {
    const server = this.#server
    this.#server = undefined
    if (!server) return Promise.resolve()
    return new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }

  /**
   * @param {http.IncomingMessage} request
   * @param {http.ServerResponse} response
   */
  async #handle(request, response) {
    let text = ''
    for await (const chunk of request) text += chunk
    const route = `${request.method} ${request.url}`
    this.requests.push(route)
    /**
     * @param {number} status
     * @param {unknown} body
     */
    const send = (status, body) => {
      if (response.destroyed) return
      response.writeHead(status, {'content-type': 'application/json'})
      response.end(typeof body === 'string' ? body : JSON.stringify(body))
    }
    /**
     * @param {number} status
     * @param {string} error
     * @param {string} detail
     */
    const fail = (status, error, detail) => send(status, {statusCode: status, error, detail})

    if (this.mode === 'slow') await sleep(this.slowMs)
    if (this.mode === 'unavailable') return fail(503, 'model_not_ready', 'no model is loaded')
    if (route === 'GET /health/ready') return send(200, {status: 'ready', modelVersion: REMOTE_VERSION})
    if (route === 'GET /health') {
      return send(200, {
        status: 'healthy',
        service: 'ml-matching',
        modelLoaded: true,
        modelVersion: REMOTE_VERSION,
        timestamp: new Date().toISOString()
      })
    }
    if (route === 'GET /models') {
      return send(200, [{version: REMOTE_VERSION, timestamp: '', algorithm: 'random_forest', metrics: {}, active: true}])
    }
    if (route === `GET /models/${REMOTE_VERSION}`) return send(200, {version: REMOTE_VERSION})
    if (request.method === 'POST') {
      if (text && request.headers['content-type'] !== 'application/json') {
        return fail(415, 'unsupported_media_type', 'expected application/json')
      }
      const body = JSON.parse(text || 'null')
      this.posts.push({path: request.url ?? '', headers: request.headers, body})
      if (this.mode === 'not-json') return send(200, '<html>proxy</html>')
      if (this.mode === 'off-contract') return send(200, {hello: 'world'})
      if (request.url === `/models/${REMOTE_VERSION}/load`) {
        if (!request.headers.authorization) return fail(401, 'unauthorized', 'missing bearer token')
        if (request.headers.authorization !== `Bearer ${TOKEN}`) return fail(403, 'forbidden', 'wrong token')
        return send(200, {status: 'success', version: REMOTE_VERSION, previousVersion: RF})
      }
      const rows = request.url === '/predict' ? [body] : request.url === '/predict/batch' ? body?.instances : null
      if (!rows) return fail(404, 'not_found', `no route ${route}`)
      const bad = rows.findIndex((/** @type {any} */ row) => row.brandFit > 1)
      if (bad >= 0) {
        const where = request.url === '/predict' ? '' : `row ${bad}: `
        return fail(400, 'invalid_input', `${where}feature \`brandFit\`: value ${rows[bad].brandFit} is outside [0, 1]`)
      }
      const one = {score: 42, confidence: 10, successProbability: 42}
      const shared = {featureImportance: {brandFit: 1}, modelVersion: REMOTE_VERSION}
      if (request.url === '/predict') return send(200, {...one, ...shared})
      return send(200, {predictions: rows.map(() => one), ...shared})
    }
    return fail(404, 'not_found', `no route ${route}`)
  }
}

/** A logger that remembers what it was told. */
function memoryLogger() {
  /** @type {Array<[string, string]>} */
  const lines = []
  return {
    lines,
    /** @param {string} message */
    warn: (message) => void lines.push(['warn', message]),
    /** @param {string} message */
    info: (message) => void lines.push(['info', message])
  }
}

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
  /** @type {OnnxModel} */
  let local
  /** @type {Record<string, number>} */
  let row
  const server = new FakeRuntime()

  before(async () => {
    local = await loadModel(versionDir(RF))
    row = uniformRow(local.features, 0.5)
  })
  beforeEach(async () => {
    await server.stop()
    server.mode = 'ok'
    server.requests = []
    server.posts = []
    server.port = 0
    await server.start()
  })
  after(async () => {
    await server.stop()
    await local.close()
  })

  test('up → remote; stopped → local, marked; back → remote after healthIntervalMs', async () => {
    const logger = memoryLogger()
    const healthIntervalMs = 600 // roomy: the restart below must happen well within it
    const client = createClient({baseUrl: server.baseUrl, local, healthIntervalMs, timeoutMs: 1000, logger})

    const remote = await client.predict(row)
    assert.equal(remote.source, 'remote')
    assert.equal(remote.score, 42)
    assert.equal(remote.modelVersion, REMOTE_VERSION)
    assert.equal(client.degraded, false)
    assert.deepEqual(server.posts[0].body, row)

    await server.stop()
    const expected = await local.predict(row)
    const fallback = await client.predict(row)
    assert.deepEqual(fallback, {...expected, source: 'local'})
    assert.equal(client.degraded, true)
    assert.equal(logger.lines.length, 1)
    assert.equal(logger.lines[0][0], 'warn')
    assert.match(logger.lines[0][1], /^ml-matching service at http:\S+ is unreachable: POST \/predict failed \(.+\); scoring with the local model 20260101_000000 until/)

    // Back on the same port, but the last failure was under healthIntervalMs ago: still local,
    // and no probe is sent.
    await server.start()
    const seen = server.requests.length
    assert.equal((await client.predict(row)).source, 'local')
    assert.equal(server.requests.length, seen)

    await sleep(healthIntervalMs + 50)
    const back = await client.predict(row)
    assert.equal(back.source, 'remote')
    assert.deepEqual(server.requests.slice(seen), ['GET /health/ready', 'POST /predict'])
    assert.equal(client.degraded, false)
    assert.deepEqual(logger.lines[1], ['info', `ml-matching service at ${server.baseUrl} is ready again; scoring remotely`])
  })

  test('while degraded, /health/ready is asked at most once per healthIntervalMs', async () => {
    server.mode = 'unavailable'
    const healthIntervalMs = 200
    const client = createClient({baseUrl: server.baseUrl, local, healthIntervalMs, logger: memoryLogger()})
    assert.equal((await client.predict(row)).source, 'local')
    for (let i = 0; i < 20; i++) assert.equal((await client.predict(row)).source, 'local')
    assert.deepEqual(server.requests, ['POST /predict'])

    await sleep(healthIntervalMs + 50)
    await Promise.all(Array.from({length: 5}, () => client.predict(row)))
    assert.deepEqual(server.requests, ['POST /predict', 'GET /health/ready'])
    assert.equal(client.degraded, true)
  })

  test('a slow service times out → local', async () => {
    server.mode = 'slow'
    const logger = memoryLogger()
    const client = createClient({baseUrl: server.baseUrl, local, timeoutMs: 100, logger})
    const started = performance.now()
    const result = await client.predict(row)
    const elapsed = performance.now() - started
    assert.equal(result.source, 'local')
    assert.ok(elapsed >= 90 && elapsed < 800, `answered after ${elapsed} ms`)
    assert.match(logger.lines[0][1], /POST \/predict timed out after 100 ms/)
  })

  test('503 → local, for one row and for a batch', async () => {
    server.mode = 'unavailable'
    const logger = memoryLogger()
    const client = createClient({baseUrl: server.baseUrl, local, logger})
    assert.equal((await client.predict(row)).source, 'local')
    assert.match(logger.lines[0][1], /POST \/predict answered 503/)

    const rows = [row, uniformRow(local.features, 0.25)]
    const batch = await client.predictBatch(rows)
    const expected = await local.predictBatch(rows)
    assert.equal(batch.source, 'local')
    assert.deepEqual(batch.predictions, expected.predictions.map((p) => ({...p, source: 'local'})))
    assert.equal(batch.modelVersion, RF)
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
    assert.deepEqual(batch.predictions, [
      {score: 42, confidence: 10, successProbability: 42, source: 'remote'},
      {score: 42, confidence: 10, successProbability: 42, source: 'remote'}
    ])
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

  test('without a local model, an unreachable service throws ServiceUnavailableError', async () => {
    const logger = memoryLogger()
    const client = createClient({baseUrl: server.baseUrl, timeoutMs: 100, logger})
    await server.stop()
    await assert.rejects(client.predict(row), (error) => {
      assert.ok(error instanceof ServiceUnavailableError)
      assert.match(error.message, /^ml-matching service at http:\/\/127\.0\.0\.1:\d+ is unreachable: POST \/predict failed/)
      return true
    })
    assert.match(logger.lines[0][1], /no local model to fall back to/)

    // It keeps trying the service (there is nothing else to do): back up, answered at once.
    await server.start()
    assert.equal((await client.predict(row)).source, 'remote')
    assert.equal(logger.lines[1][0], 'info')

    server.mode = 'unavailable'
    await assert.rejects(client.predictBatch([row]), {name: 'ServiceUnavailableError', status: 503})
  })

  test('health, models, model and loadVersion talk to the service, never to local', async () => {
    const client = createClient({baseUrl: server.baseUrl + '/', local, adminToken: TOKEN})
    const health = await client.health()
    assert.equal(health.status, 'healthy')
    assert.equal(health.modelVersion, REMOTE_VERSION)
    assert.deepEqual((await client.models()).map((m) => m.version), [REMOTE_VERSION])
    assert.equal((await client.model(REMOTE_VERSION)).version, REMOTE_VERSION)
    await assert.rejects(client.model('nope'), {name: 'RequestRejectedError', status: 404, code: 'not_found'})
    assert.deepEqual(await client.loadVersion(REMOTE_VERSION), {
      status: 'success',
      version: REMOTE_VERSION,
      previousVersion: RF
    })
    assert.equal(server.posts.at(-1)?.headers.authorization, `Bearer ${TOKEN}`)

    const wrong = createClient({baseUrl: server.baseUrl, adminToken: 'nope'})
    await assert.rejects(wrong.loadVersion(REMOTE_VERSION), {name: 'RequestRejectedError', status: 403})
    const none = createClient({baseUrl: server.baseUrl})
    await assert.rejects(none.loadVersion(REMOTE_VERSION), /loadVersion needs the adminToken option/)

    await server.stop()
    await assert.rejects(client.health(), {name: 'ServiceUnavailableError'})
  })

  test('options are checked', () => {
    assert.throws(() => createClient({baseUrl: 'not a url'}), TypeError)
    assert.throws(() => createClient({baseUrl: 'ftp://host'}), /http\(s\) URL/)
    assert.throws(() => createClient({baseUrl: server.baseUrl, timeoutMs: 0}), /timeoutMs must be a positive/)
    assert.throws(() => createClient({baseUrl: server.baseUrl, healthIntervalMs: -1}), RangeError)
  })

  test('a row JSON cannot carry is the caller’s error, not a service failure', async () => {
    const client = createClient({baseUrl: server.baseUrl, local})
    await assert.rejects(client.predict(uniformRow(local.features, 0.5, {brandFit: 1n})), TypeError)
    assert.equal(client.degraded, false)
    assert.deepEqual(server.requests, [])
  })
})
