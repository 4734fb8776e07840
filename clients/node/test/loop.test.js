/**
 * The client's side of the learning loop against a server on 127.0.0.1 that answers as the trainer
 * does (trainer.test.js checks the same against the real one): outcomes queued and spooled while
 * the trainer is down, resent with their ids, never stored twice; status(); a model that follows
 * the runtime.
 */

import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {after, afterEach, before, beforeEach, describe, test} from 'node:test'
import {
  OutcomeQueueFullError,
  RequestRejectedError,
  SettingsError,
  createClient,
  loadModel
} from '../index.js'
import {GB, LocalServer, RF, uniformRow, versionDir} from './helpers.js'

const TOKEN = 'loop-token'

/** A server that answers as the trainer (`/outcomes`, `/health`, `/train`) and, for following, the runtime. */
class FakeServices extends LocalServer {
  /** @type {Map<string, string>} id → stored content */
  stored = new Map()
  up = true
  /** @type {number} answers to drop (the outcome is stored, the connection cut) */
  loseAnswers = 0
  served = RF
  tamper = false
  /**
   * @param {http.IncomingMessage} request
   * @param {http.ServerResponse} response
   */
  async handle(request, response) {
    let text = ''
    for await (const chunk of request) text += chunk
    /** @param {number} status @param {unknown} body */
    const send = (status, body) => {
      response.writeHead(status, {'content-type': 'application/json'})
      response.end(JSON.stringify(body))
    }
    const route = `${request.method} ${request.url}`
    if (route === 'POST /outcomes') return this.#outcomes(JSON.parse(text), send, response)
    if (route === 'GET /health/ready') return send(200, {status: 'ready', modelVersion: this.served})
    if (route === 'GET /health') {
      return send(200, {
        status: 'healthy',
        service: 'ml-matching',
        modelLoaded: true,
        modelVersion: this.served,
        timestamp: new Date().toISOString(),
        activeVersion: this.served,
        outcomes: this.stored.size
      })
    }
    const file = /^GET \/models\/(\d{8}_\d{6})\/files\/([\w.-]+)$/.exec(route)
    if (file) {
      let bytes = await readFile(path.join(versionDir(file[1]), file[2]))
      const digest = createHash('sha256').update(bytes).digest('base64')
      if (this.tamper && file[2] === 'model.onnx') bytes = Buffer.concat([bytes, Buffer.from([1])])
      response.writeHead(200, {'repr-digest': `sha-256=:${digest}:`})
      return response.end(bytes)
    }
    send(404, {statusCode: 404, error: 'not_found', detail: `no route for ${route}`})
  }

  /**
   * As the trainer: every outcome valid or none stored; an id stored again with the same content
   * is a duplicate, with other content a conflict.
   *
   * @param {any} body
   * @param {(status: number, body: unknown) => void} send
   * @param {http.ServerResponse} response
   */
  #outcomes(body, send, response) {
    const items = Array.isArray(body.outcomes) ? body.outcomes : [body]
    for (const [i, item] of items.entries()) {
      if (item.features.brandFit > 1) {
        const where = Array.isArray(body.outcomes) ? `outcome ${i}: ` : ''
        const detail = `${where}features: feature \`brandFit\`: value ${item.features.brandFit} is outside [0, 1]`
        return send(400, {statusCode: 400, error: 'invalid_input', detail})
      }
      const known = this.stored.get(item.id)
      if (known !== undefined && known !== JSON.stringify([item.features, item.outcome])) {
        return send(409, {
          statusCode: 409,
          error: 'outcome_conflict',
          detail: `outcome \`${item.id}\` is already stored`
        })
      }
    }
    let stored = 0
    for (const item of items) {
      if (this.stored.has(item.id)) continue
      this.stored.set(item.id, JSON.stringify([item.features, item.outcome]))
      stored++
    }
    if (this.loseAnswers > 0) {
      this.loseAnswers--
      return response.destroy() // stored, but the client never hears so
    }
    const ids = items.map((/** @type {{id: string}} */ item) => item.id)
    send(200, {
      stored,
      duplicates: items.length - stored,
      total: this.stored.size,
      untrained: this.stored.size,
      ids
    })
  }
}

function quietLogger() {
  /** @type {Array<string>} */
  const lines = []
  return {
    lines,
    warn: (/** @type {string} */ m) => void lines.push(m),
    info: (/** @type {string} */ m) => void lines.push(m)
  }
}

describe('outcomes and the trainer', () => {
  const services = new FakeServices()
  /** @type {string} */
  let dir
  /** @type {ReadonlyArray<string>} */
  let names

  before(async () => {
    const model = await loadModel(versionDir(RF))
    names = model.features
    await model.close()
  })
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ml-matching-loop-'))
    services.stored.clear()
    services.port = 0
    await services.start()
  })
  afterEach(async () => {
    await services.stop()
    await rm(dir, {recursive: true, force: true})
  })

  /** @param {Partial<import('../index.js').ClientOptions>} [options] */
  function client(options = {}) {
    return createClient({
      baseUrl: services.baseUrl,
      trainerUrl: services.baseUrl,
      spoolFile: path.join(dir, 'outcomes.jsonl'),
      timeoutMs: 500,
      retryMs: 60_000, // the tests resend by hand
      logger: quietLogger(),
      ...options
    })
  }

  test('a reachable trainer stores each outcome once; a retry with the same id is a duplicate', async () => {
    const c = client()
    const row = uniformRow(names, 0.5)
    assert.deepEqual(await c.recordOutcome(row, true, {id: 'a-1'}), {id: 'a-1', state: 'stored'})
    assert.deepEqual(await c.recordOutcome(row, true, {id: 'a-1'}), {id: 'a-1', state: 'duplicate'})
    const fresh = await c.recordOutcome(row, false)
    assert.match(fresh.id, /^[0-9a-f-]{36}$/)
    assert.equal(services.stored.size, 2)
  })

  test('while the trainer is down outcomes queue and spool; when it is back they are sent once', async () => {
    const c = client()
    const rows = Array.from({length: 6}, (_, i) => uniformRow(names, i / 10))
    await c.recordOutcome(rows[0], true, {id: 'b-0'})
    await services.stop()
    for (let i = 1; i < 6; i++)
      assert.equal((await c.recordOutcome(rows[i], i % 2 === 0, {id: `b-${i}`})).state, 'queued')
    assert.equal(c.outcomesWaiting, 5)
    const spooled = (await readFile(path.join(dir, 'outcomes.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id)
    assert.deepEqual(spooled, ['b-1', 'b-2', 'b-3', 'b-4', 'b-5'])
    assert.equal((await c.status()).trainer?.reachable, false)

    await services.start()
    services.loseAnswers = 1 // the first resend is stored but its answer is lost: sent again, stored once
    await c.flushOutcomes()
    assert.equal(c.outcomesWaiting, 5)
    await c.flushOutcomes()
    assert.equal(c.outcomesWaiting, 0)
    assert.deepEqual([...services.stored.keys()].sort(), ['b-0', 'b-1', 'b-2', 'b-3', 'b-4', 'b-5'])
    assert.equal(await readFile(path.join(dir, 'outcomes.jsonl'), 'utf8'), '')
  })

  test('a restarted client finds the spooled outcomes and sends them', async () => {
    await services.stop()
    const first = client()
    for (let i = 0; i < 3; i++) await first.recordOutcome(uniformRow(names, 0.3), true, {id: `c-${i}`})
    const second = client() // the process restarted: the spool file is all that is left
    assert.equal(second.outcomesWaiting, 3)
    await services.start()
    await second.flushOutcomes()
    assert.deepEqual([...services.stored.keys()], ['c-0', 'c-1', 'c-2'])
  })

  test('a bad outcome is thrown, never queued; a full queue says so', async () => {
    const c = client({queueLimit: 2})
    await assert.rejects(c.recordOutcome(uniformRow(names, 0.5, {brandFit: 2}), true), (error) => {
      assert.ok(error instanceof RequestRejectedError)
      assert.equal(error.detail, 'features: feature `brandFit`: value 2 is outside [0, 1]')
      return true
    })
    await services.stop()
    await c.recordOutcome(uniformRow(names, 0.5), true)
    await c.recordOutcome(uniformRow(names, 0.5), true)
    await assert.rejects(c.recordOutcome(uniformRow(names, 0.5), true, {id: 'd-9'}), (error) => {
      assert.ok(error instanceof OutcomeQueueFullError)
      assert.equal(error.code, 'outcome_queue_full')
      assert.match(
        error.message,
        /^2 outcomes already wait for the trainer \(queueLimit 2\); outcome d-9 was not queued$/
      )
      return true
    })
    assert.equal(c.outcomesWaiting, 2)
  })

  test('a queued outcome the trainer refuses on resend is dropped with a warning, the others sent', async () => {
    const logger = quietLogger()
    const c = client({logger})
    await services.stop()
    await c.recordOutcome(uniformRow(names, 0.5), true, {id: 'e-0'})
    await c.recordOutcome(uniformRow(names, 0.5, {brandFit: 3}), true, {id: 'e-1'})
    await c.recordOutcome(uniformRow(names, 0.5), false, {id: 'e-2'})
    await services.start()
    await c.flushOutcomes()
    assert.deepEqual([...services.stored.keys()].sort(), ['e-0', 'e-2'])
    assert.ok(logger.lines.some((l) => l.startsWith('ml-matching trainer refused queued outcome e-1: ')))
  })

  test('status() says what answers, what serves and what waits', async () => {
    const c = client()
    const up = await c.status()
    assert.deepEqual(up, {
      runtime: {reachable: true, modelVersion: RF, activeVersion: RF},
      trainer: {reachable: true, outcomes: 0, runningJob: null},
      fallback: false,
      localVersion: null,
      outcomesWaiting: 0
    })
    await services.stop()
    await c.recordOutcome(uniformRow(names, 0.5), true)
    const down = await c.status()
    assert.equal(down.runtime.reachable, false)
    assert.equal(down.fallback, true)
    assert.equal(down.trainer?.reachable, false)
    assert.equal(down.outcomesWaiting, 1)
  })

  test('without trainerUrl the loop calls name the option', async () => {
    const c = createClient({baseUrl: services.baseUrl})
    await assert.rejects(c.recordOutcome({}, true), (error) => {
      assert.ok(error instanceof SettingsError)
      assert.match(error.message, /^recordOutcome needs the trainerUrl option/)
      return true
    })
    assert.equal((await c.status()).trainer, null)
  })
})

describe('a model that follows the runtime', () => {
  const services = new FakeServices()
  /** @type {string} */
  let dir

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ml-matching-follow-'))
    await services.start()
  })
  after(async () => {
    await services.stop()
    await rm(dir, {recursive: true, force: true})
  })

  test('swaps to the version the runtime serves, keeps its model when the new one fails to verify', async () => {
    const logger = quietLogger()
    const c = createClient({baseUrl: services.baseUrl, logger})
    services.served = RF
    const model = await c.followModel({dir, followMs: 60_000})
    try {
      assert.equal(model.version, RF)
      const row = uniformRow(model.model.features, 0.5)
      const before = await model.predict(row)
      services.served = GB
      services.tamper = true
      assert.equal(await model.check(), false)
      assert.equal(model.version, RF)
      assert.deepEqual(await model.predict(row), before)
      assert.match(
        logger.lines.at(-1) ?? '',
        /could not follow the runtime to 20260102_000000 \(sha256: model\.onnx/
      )
      services.tamper = false
      const pending = model.predict(row) // in flight across the swap: finishes on the old model
      assert.equal(await model.check(), true)
      assert.equal((await pending).modelVersion, RF)
      assert.equal(model.version, GB)
      assert.equal((await model.predict(row)).modelVersion, GB)
      assert.equal((await c.status()).localVersion, GB, 'it is the client fallback')
    } finally {
      await model.close()
    }
  })
})
