/**
 * The client's side of the learning loop against the fake trainer and runtime (test/support.js),
 * which answer as the real ones do (trainer.test.js checks the same against the real trainer):
 * outcomes queued and spooled while the trainer is down, resent with their ids, never stored
 * twice; status(); a model that follows the runtime.
 */

import assert from 'node:assert/strict'
import {appendFile, readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import {after, afterEach, before, beforeEach, describe, test} from 'node:test'
import {
  OutcomeQueueFullError,
  RequestRejectedError,
  ServiceUnavailableError,
  SettingsError,
  createClient
} from '../index.js'
import {
  ADMIN_TOKEN,
  FakeRuntime,
  FakeTrainer,
  GB,
  RF,
  memoryLogger,
  sidecarOf,
  tempDir,
  uniformRow,
  waitFor
} from './support.js'

/** @param {string} text */
const parse = (text) => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

describe('outcomes and the trainer', () => {
  /** @type {FakeRuntime} */
  let runtime
  /** @type {FakeTrainer} */
  let trainer
  /** @type {string} */
  let dir
  /** @type {ReadonlyArray<string>} */
  let names

  before(async () => {
    names = (await sidecarOf(RF)).features.map((f) => f.name)
  })
  beforeEach(async () => {
    dir = await tempDir('loop')
    runtime = new FakeRuntime()
    trainer = new FakeTrainer()
    await runtime.start()
    await trainer.start()
  })
  afterEach(async () => {
    await trainer.stop()
    await runtime.close()
    await rm(dir, {recursive: true, force: true})
  })

  /** @param {Partial<import('../index.js').ClientOptions>} [options] */
  function client(options = {}) {
    return createClient({
      baseUrl: runtime.baseUrl,
      trainerUrl: trainer.baseUrl,
      spoolFile: path.join(dir, 'outcomes.jsonl'),
      timeoutMs: 500,
      retryMs: 60_000, // the tests resend by hand
      logger: memoryLogger(),
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
    assert.equal(trainer.stored.size, 2)
  })

  test('while the trainer is down outcomes queue and spool; when it is back they are sent once', async () => {
    const c = client()
    const rows = Array.from({length: 6}, (_, i) => uniformRow(names, i / 10))
    await c.recordOutcome(rows[0], true, {id: 'b-0'})
    await trainer.stop()
    for (let i = 1; i < 6; i++)
      assert.equal((await c.recordOutcome(rows[i], i % 2 === 0, {id: `b-${i}`})).state, 'queued')
    assert.equal(c.outcomesWaiting, 5)
    const spooled = (await readFile(path.join(dir, 'outcomes.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id)
    assert.deepEqual(spooled, ['b-1', 'b-2', 'b-3', 'b-4', 'b-5'])
    assert.equal((await c.status()).trainer?.reachable, false)

    await trainer.start()
    trainer.loseAnswers = 1 // the first resend is stored but its answer is lost: sent again, stored once
    await c.flushOutcomes()
    assert.equal(c.outcomesWaiting, 5)
    await c.flushOutcomes()
    assert.equal(c.outcomesWaiting, 0)
    assert.deepEqual([...trainer.stored.keys()].sort(), ['b-0', 'b-1', 'b-2', 'b-3', 'b-4', 'b-5'])
    assert.equal(await readFile(path.join(dir, 'outcomes.jsonl'), 'utf8'), '')
  })

  test('a queued outcome is resent as it was recorded, though the caller reused its object', async () => {
    const c = client()
    await trainer.stop()
    const row = uniformRow(names, 0.5)
    assert.equal((await c.recordOutcome(row, true, {id: 'r-1'})).state, 'queued')
    row[names[0]] = 0.9 // a NestJS handler filling the same DTO for the next collaboration
    await trainer.start()
    await c.flushOutcomes()
    assert.equal(trainer.stored.get('r-1')?.features[names[0]], 0.5)
  })

  test('train() throws the trainer’s own 500 and 422, which are no training’s result', async () => {
    const c = client({adminToken: ADMIN_TOKEN})
    /** @type {[number, unknown]} */
    let answer = [
      500,
      {statusCode: 500, error: 'internal_error', detail: 'internal error (logged by the service)'}
    ]
    trainer.intercept = (route) => (route === 'POST /train' ? answer : undefined)
    await assert.rejects(c.train(), (error) => {
      assert.ok(error instanceof ServiceUnavailableError)
      assert.equal(/** @type {any} */ (error).code, 'internal_error')
      return true
    })
    answer = [500, '<html><body>502 Bad Gateway</body></html>'] // a proxy's page
    await assert.rejects(c.train(), ServiceUnavailableError)
    const detail = "artifact_corrupt: ACTIVE's model.onnx does not match its sidecar"
    answer = [422, {statusCode: 422, error: 'artifact_corrupt', detail}]
    await assert.rejects(c.train(), (error) => {
      assert.ok(error instanceof RequestRejectedError)
      assert.deepEqual([error.status, error.code], [422, 'artifact_corrupt'])
      return true
    })
    answer = [422, {status: 'rejected', job: 'j-1', reason: 'training needs at least 50 rows'}]
    assert.deepEqual(await c.train(), answer[1], 'a rejected training is an answer')
  })

  test('a restarted client finds the spooled outcomes and sends them', async () => {
    await trainer.stop()
    const first = client()
    for (let i = 0; i < 3; i++) await first.recordOutcome(uniformRow(names, 0.3), true, {id: `c-${i}`})
    const second = client() // the process restarted: the spool file is all that is left
    assert.equal(second.outcomesWaiting, 3)
    await trainer.start()
    await second.flushOutcomes()
    assert.deepEqual([...trainer.stored.keys()], ['c-0', 'c-1', 'c-2'])
  })

  test('a bad outcome is thrown, never queued; a full queue says so', async () => {
    const c = client({queueLimit: 2})
    await assert.rejects(c.recordOutcome(uniformRow(names, 0.5, {brandFit: 2}), true), (error) => {
      assert.ok(error instanceof RequestRejectedError)
      assert.equal(error.detail, 'features: feature `brandFit`: value 2 is outside [0, 1]')
      return true
    })
    await trainer.stop()
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
    const logger = memoryLogger()
    const c = client({logger})
    await trainer.stop()
    await c.recordOutcome(uniformRow(names, 0.5), true, {id: 'e-0'})
    await c.recordOutcome(uniformRow(names, 0.5, {brandFit: 3}), true, {id: 'e-1'})
    await c.recordOutcome(uniformRow(names, 0.5), false, {id: 'e-2'})
    await trainer.start()
    await c.flushOutcomes()
    assert.deepEqual([...trainer.stored.keys()].sort(), ['e-0', 'e-2'])
    assert.ok(
      logger.lines.some(
        ([level, line]) =>
          level === 'warn' && line.startsWith('ml-matching trainer refused queued outcome e-1: ')
      )
    )
  })

  test('a resend interrupted by an outage goes on at the next retry, the refused one dropped', async () => {
    const c = client({retryMs: 50})
    await trainer.stop()
    await c.recordOutcome(uniformRow(names, 0.5, {brandFit: 3}), true, {id: 'f-0'}) // refused: its batch too
    await c.recordOutcome(uniformRow(names, 0.5), true, {id: 'f-1'})
    await c.recordOutcome(uniformRow(names, 0.5), false, {id: 'f-2'})
    let blips = 0
    trainer.intercept = (route, body) => {
      if (route !== 'POST /outcomes' || parse(body).id !== 'f-1' || blips++ > 0) return undefined
      return [503, {statusCode: 503, error: 'service_unavailable', detail: 'restarting'}]
    }
    await trainer.start()
    await c.flushOutcomes() // the batch is refused; one by one, f-0 is dropped, then f-1 meets the 503
    assert.equal(c.outcomesWaiting, 2)
    await waitFor(() => c.outcomesWaiting === 0, {what: 'the retry sent the rest'})
    assert.deepEqual([...trainer.stored.keys()].sort(), ['f-1', 'f-2'])
  })

  test('a rate limit or a timeout on a resend keeps the outcomes', async () => {
    const c = client()
    await trainer.stop()
    for (let i = 0; i < 3; i++) await c.recordOutcome(uniformRow(names, 0.5), true, {id: `g-${i}`})
    trainer.intercept = () => [429, {statusCode: 429, error: 'too_many_requests', detail: 'slow down'}]
    await trainer.start()
    await c.flushOutcomes()
    assert.equal(c.outcomesWaiting, 3, 'a 429 is "not now", not a refusal')
    trainer.intercept = () => undefined
    await c.flushOutcomes()
    assert.deepEqual([...trainer.stored.keys()].sort(), ['g-0', 'g-1', 'g-2'])
  })

  test('while others wait, a new outcome the trainer refuses is thrown and a full queue empties first', async () => {
    const c = client({queueLimit: 2})
    await trainer.stop()
    await c.recordOutcome(uniformRow(names, 0.5), true, {id: 'h-0'})
    await c.recordOutcome(uniformRow(names, 0.5), true, {id: 'h-1'})
    await trainer.start() // the queue is full, but the trainer is back: the next call sends them first
    await assert.rejects(
      c.recordOutcome(uniformRow(names, 0.5, {brandFit: 3}), true, {id: 'h-2'}),
      (error) => {
        assert.ok(error instanceof RequestRejectedError)
        assert.match(error.detail, /brandFit/)
        return true
      }
    )
    assert.deepEqual(await c.recordOutcome(uniformRow(names, 0.5), true, {id: 'h-3'}), {
      id: 'h-3',
      state: 'stored'
    })
    assert.deepEqual([...trainer.stored.keys()].sort(), ['h-0', 'h-1', 'h-3'])
  })

  test('an outcome queued after a line a crash cut short survives the next restart', async () => {
    const spool = path.join(dir, 'outcomes.jsonl')
    await trainer.stop()
    await client().recordOutcome(uniformRow(names, 0.5), true, {id: 'i-0'})
    await appendFile(spool, '{"id":"i-1","feat') // the process died in the middle of an append
    await client().recordOutcome(uniformRow(names, 0.5), true, {id: 'i-2'})
    const restarted = client()
    assert.deepEqual(restarted.outcomesWaiting, 2, 'i-0 and i-2 (i-1 was never acknowledged as queued)')
    await trainer.start()
    await restarted.flushOutcomes()
    assert.deepEqual([...trainer.stored.keys()], ['i-0', 'i-2'])
  })

  test('status() says what answers, what serves and what waits', async () => {
    const c = client()
    const up = await c.status()
    assert.deepEqual(up, {
      runtime: {reachable: true, modelVersion: RF, activeVersion: RF},
      trainer: {reachable: true, outcomes: 0, runningJob: null},
      fallback: false,
      localVersion: null,
      outcomesWaiting: 0,
      predictionsWaiting: 0
    })
    await runtime.stop()
    await trainer.stop()
    await c.recordOutcome(uniformRow(names, 0.5), true)
    const down = await c.status()
    assert.equal(down.runtime.reachable, false)
    assert.equal(down.fallback, true)
    assert.equal(down.trainer?.reachable, false)
    assert.equal(down.outcomesWaiting, 1)
  })

  test('without trainerUrl the loop calls name the option', async () => {
    const c = createClient({baseUrl: runtime.baseUrl})
    await assert.rejects(c.recordOutcome({}, true), (error) => {
      assert.ok(error instanceof SettingsError)
      assert.match(error.message, /^recordOutcome needs the trainerUrl option/)
      return true
    })
    assert.equal((await c.status()).trainer, null)
  })
})

describe('a model that follows the runtime', () => {
  const runtime = new FakeRuntime({served: RF})
  /** @type {string} */
  let dir

  before(async () => {
    dir = await tempDir('follow')
    await runtime.start()
  })
  after(async () => {
    await runtime.close()
    await rm(dir, {recursive: true, force: true})
  })

  test('swaps to the version the runtime serves, keeps its model when the new one fails to verify', async () => {
    const logger = memoryLogger()
    const c = createClient({baseUrl: runtime.baseUrl, logger})
    const model = await c.followModel({dir, followMs: 60_000})
    try {
      assert.equal(model.version, RF)
      const row = uniformRow(model.model.features, 0.5)
      const {predictionId, ...before} = await model.predict(row)
      runtime.served = GB // as after a loadVersion elsewhere
      runtime.mode = 'tampered'
      assert.equal(await model.check(), false)
      assert.equal(model.version, RF)
      const {predictionId: next, ...after} = await model.predict(row)
      assert.deepEqual(after, before)
      assert.ok(next > predictionId, 'prediction ids grow')
      assert.match(
        logger.lines.at(-1)?.[1] ?? '',
        /could not follow the runtime to 20260102_000000 \(sha256: model\.onnx/
      )
      runtime.mode = 'ok'
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
