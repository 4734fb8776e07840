/**
 * The client against the real trainer (`$ML_MATCHING_PYTHON -m ml_matching.trainer`, which needs the
 * train extra): outcomes survive a trainer outage (kill -9) and a client restart, and are stored
 * exactly once; status() and train() as the trainer answers them; and the fake trainer of
 * test/support.js answers as it does.
 *
 * Runs when ML_MATCHING_PYTHON is set (nox's node session sets it); skipped with the reason when
 * the trainer does not become ready.
 */

import assert from 'node:assert/strict'
import {cp, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {createClient} from '../index.js'
import {newPredictionId} from '../lib/ids.js'
import {LedgerQueue, Outbox, SpoolFile} from '../lib/outbox.js'
import {
  EXAMPLE_ROW,
  FakeTrainer,
  PYTHON,
  PythonService,
  STORE,
  assertSameAnswer,
  exchange,
  freePort,
  tempDir
} from './support.js'

const TOKEN = 'node-trainer-token'
const NAMES = Object.keys(EXAMPLE_ROW)

/** @param {number} i */
function row(i) {
  return Object.fromEntries(NAMES.map((name, j) => [name, ((i * 7919 + j * 104729) % 1000) / 1000]))
}

describe('against the Python trainer', {skip: PYTHON ? false : 'ML_MATCHING_PYTHON is not set'}, () => {
  let work = ''
  /** @type {PythonService} */
  let trainer
  /** @type {string | undefined} */
  let unavailable

  before(async () => {
    work = await tempDir('trainer')
    // The versions ledger rows name, and no ACTIVE: the trainer starts as on an empty store.
    await cp(STORE, path.join(work, 'store'), {
      recursive: true,
      filter: (source) => !path.basename(source).startsWith('ACTIVE')
    })
    const config = path.join(work, 'fast.json')
    await writeFile(
      config,
      JSON.stringify({folds: 3, random_forest: {n_estimators: 10, max_depth: 4, n_jobs: 1}})
    )
    const port = await freePort()
    trainer = new PythonService('trainer', {
      port,
      env: {
        MODELS_DIR: path.join(work, 'store'),
        ML_TRAINER_HOST: '127.0.0.1',
        ML_TRAINER_PORT: String(port),
        ML_SERVICE_ADMIN_TOKEN: TOKEN,
        RETRAIN_EVERY: '0',
        TRAIN_CONFIG: config
      },
      readyPath: '/health'
    })
    try {
      await trainer.start()
    } catch (error) {
      unavailable = /** @type {Error} */ (error).message
    }
  })
  after(async () => {
    await trainer?.stop('SIGKILL')
    if (work) await rm(work, {recursive: true, force: true})
  })

  /**
   * Send the same requests to the trainer and to `fake`, in order; their answers must agree.
   *
   * @param {FakeTrainer} fake
   * @param {Array<[string, string, {body?: unknown, headers?: Record<string, string>}?]>} requests
   * @param {{loose?: ReadonlyArray<string>, values?: boolean}} [compare]
   */
  async function sameAnswers(fake, requests, compare = {}) {
    for (const [method, where, options] of requests) {
      const what = `${method} ${where}`
      const real = await exchange(trainer.url, method, where, options)
      const mine = await exchange(fake.baseUrl, method, where, options)
      assert.equal(mine.status, real.status, what)
      assert.deepEqual(mine.headers, real.headers, what)
      assert.equal(
        mine.location?.replace(/[0-9a-f]{16}$/, 'JOB'),
        real.location?.replace(/[0-9a-f]{16}$/, 'JOB')
      )
      assertSameAnswer(mine.body, real.body, {...compare, where: what})
    }
  }

  // First, while the trainer has stored nothing, as the fake starts.
  test('the fake trainer of test/support.js answers as the trainer does', async (t) => {
    if (unavailable) return t.skip(unavailable)
    const fake = new FakeTrainer({token: TOKEN})
    await fake.start()
    try {
      const one = {id: 'same-1', features: row(1), outcome: true}
      const bad = {...row(2), brandFit: 2}
      const admin = {authorization: `Bearer ${TOKEN}`}
      await sameAnswers(
        fake,
        [
          ['GET', '/health'],
          ['GET', '/health/ready'],
          ['POST', '/outcomes', {body: one}],
          ['POST', '/outcomes', {body: one}],
          ['POST', '/outcomes', {body: {...one, outcome: false}}],
          ['POST', '/outcomes', {body: {id: 'same-2', features: bad, outcome: false}}],
          [
            'POST',
            '/outcomes',
            {
              body: {
                outcomes: [
                  {id: 'same-3', features: row(3), outcome: false},
                  {id: 'same-4', features: bad, outcome: true}
                ]
              }
            }
          ],
          ['POST', '/outcomes', {body: {outcomes: [{id: 'same-3', features: row(3), outcome: false}, one]}}],
          ['POST', '/outcomes', {body: one, headers: {'content-type': 'text/plain'}}],
          ['GET', '/health'],
          ['POST', '/train'],
          ['POST', '/train', {headers: {authorization: 'Bearer wrong'}}],
          ['POST', '/train', {headers: admin}],
          ['GET', '/train/0123456789abcdef'],
          ['GET', '/nope']
        ],
        {loose: ['timestamp', 'job']}
      )
    } finally {
      await fake.stop()
    }
  })

  test('the fake trainer answers ledger rows and outcomes by prediction as the trainer does', async (t) => {
    if (unavailable) return t.skip(unavailable)
    const fake = new FakeTrainer({token: TOKEN})
    await fake.start()
    try {
      const [a, b, c, d] = Array.from({length: 4}, () => newPredictionId())
      /** @param {string} predictionId */
      const ledgerRow = (predictionId) => ({
        predictionId,
        at: '2026-11-30T11:05:25.543Z',
        version: '20260101_000000',
        probability: 0.8433451056480408,
        features: row(7),
        experiment: 'exp-gb-vs-rf',
        revision: 1,
        arm: 'control',
        weight: 5000,
        unit: 'c5f2f8ea841c8299013c6a6a11301eaed193a283b02e632e3a0d8e35093bbdb3',
        hash: 'sha256-v1',
        ms: 0.41,
        shadow: [{version: '20260102_000000', probability: 0.8370679020881653}],
        source: 'node'
      })
      const {at, ...noTime} = ledgerRow(a)
      await sameAnswers(
        fake,
        [
          ['POST', '/outcomes', {body: {predictionId: b, outcome: false}}],
          ['POST', '/predictions', {body: {rows: [ledgerRow(a)]}}],
          ['POST', '/predictions', {body: {rows: [ledgerRow(a)]}}],
          ['POST', '/predictions', {body: {rows: [ledgerRow(b), ledgerRow(a)]}}],
          ['POST', '/predictions', {body: {rows: [{...ledgerRow(a), probability: 0.5}]}}],
          ['POST', '/predictions', {body: {rows: []}}],
          ['POST', '/predictions', {body: {}}],
          ['POST', '/predictions', {body: {rows: [{...ledgerRow(c), predictionId: 'collab-42'}]}}],
          ['POST', '/predictions', {body: {rows: [noTime]}}],
          ['POST', '/predictions', {body: {rows: [{...ledgerRow(c), features: {a: 0.5}}]}}],
          ['POST', '/predictions', {body: {rows: [{...ledgerRow(c), version: '20990101_000000'}]}}],
          ['POST', '/predictions', {body: {rows: [ledgerRow(c)]}, headers: {'content-type': 'text/plain'}}],
          ['POST', '/outcomes', {body: {predictionId: a, outcome: true}}],
          ['POST', '/outcomes', {body: {predictionId: a, outcome: true}}],
          ['POST', '/outcomes', {body: {predictionId: a, outcome: false}}],
          ['POST', '/outcomes', {body: {predictionId: c, outcome: true}}],
          ['POST', '/outcomes', {body: {predictionId: c, outcome: false}}],
          ['POST', '/outcomes', {body: {predictionId: 'collab-42', outcome: true}}],
          ['POST', '/outcomes', {body: {predictionId: d, outcome: 'yes'}}],
          ['POST', '/outcomes', {body: {predictionId: newPredictionId(), outcome: 1}}],
          [
            'POST',
            '/outcomes',
            {
              body: {
                outcomes: [
                  {predictionId: d, outcome: false},
                  {id: 'ledger-1', features: row(9), outcome: true}
                ]
              }
            }
          ]
        ],
        {loose: ['total', 'untrained']}
      )
    } finally {
      await fake.stop()
    }
  })

  test('outcomes survive a trainer outage and a client restart, stored exactly once', async (t) => {
    if (unavailable) return t.skip(unavailable)
    const spoolFile = path.join(work, 'outcomes.jsonl')
    const options = {
      baseUrl: trainer.url,
      trainerUrl: trainer.url,
      spoolFile,
      retryMs: 60_000,
      timeoutMs: 2000,
      logger: {warn() {}, info() {}}
    }
    const first = createClient(options)
    const before = /** @type {number} */ ((await first.status()).trainer?.outcomes)
    for (let i = 0; i < 20; i++)
      assert.equal((await first.recordOutcome(row(i), i % 3 === 0, {id: `n-${i}`})).state, 'stored')
    assert.equal((await first.recordOutcome(row(0), true, {id: 'n-0'})).state, 'duplicate')

    await trainer.stop('SIGKILL')
    for (let i = 20; i < 30; i++)
      assert.equal((await first.recordOutcome(row(i), i % 2 === 0, {id: `n-${i}`})).state, 'queued')
    const down = await first.status()
    assert.deepEqual([down.trainer?.reachable, down.outcomesWaiting], [false, 10])

    const second = createClient(options) // the Node process restarted
    assert.equal(second.outcomesWaiting, 10)
    await trainer.start()
    await second.flushOutcomes()
    assert.equal(second.outcomesWaiting, 0)
    const stats = /** @type {{total: number}} */ (await (await fetch(`${trainer.url}/outcomes/stats`)).json())
    assert.equal(stats.total, before + 30)
    const up = await second.status()
    assert.deepEqual(up.trainer, {reachable: true, outcomes: before + 30, runningJob: null})
  })

  test('train() answers with the seed shape, or says why the job was rejected', async (t) => {
    if (unavailable) return t.skip(unavailable)
    const client = createClient({baseUrl: trainer.url, trainerUrl: trainer.url, adminToken: TOKEN})
    const rejected = await client.train()
    assert.equal(rejected.status, 'rejected')
    assert.match(rejected.reason, /rows; training needs at least 50$/)
    const job = await client.train({wait: false})
    assert.match(job.job, /^[0-9a-f]{16}$/)
    const view = await client.job(job.job)
    assert.equal(view.job, job.job)
  })

  // Last: it trains, and leaves a job running.
  test('a training that runs answers in the shape the fake trainer gives', async (t) => {
    if (unavailable) return t.skip(unavailable)
    const fake = new FakeTrainer({token: TOKEN})
    await fake.start()
    try {
      const outcomes = Array.from({length: 80}, (_, i) => ({
        id: `run-${i}`,
        features: row(100 + i),
        outcome: i % 3 !== 0
      }))
      const admin = {authorization: `Bearer ${TOKEN}`}
      await sameAnswers(fake, [['POST', '/outcomes', {body: {outcomes}}]], {loose: ['total', 'untrained']})
      // What a training found (its metrics, its decision's words) is the trainer's own: the shape is the contract.
      await sameAnswers(
        fake,
        [
          ['POST', '/train', {headers: admin}],
          ['POST', '/train', {headers: {...admin, prefer: 'respond-async'}}]
        ],
        {values: false}
      )
    } finally {
      await fake.stop()
    }
  })
})

describe('what the trainer would refuse is refused before it waits for the trainer', () => {
  const down = 'http://127.0.0.1:9' // nothing listens: every outcome would be queued
  const quiet = {warn() {}, info() {}}

  test('a spool file the client cannot append to is refused at construction', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ml-matching-spool-'))
    try {
      // It was accepted, and the first outcome of an outage was neither sent nor queued (ENOENT).
      assert.throws(
        () =>
          createClient({baseUrl: down, trainerUrl: down, spoolFile: path.join(dir, 'missing', 'x.jsonl')}),
        {name: 'SettingsError', message: /^spoolFile .*missing\/x\.jsonl: cannot append to it \(ENOENT/}
      )
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  test('a bad id, outcome or feature value throws at once instead of queuing, then being dropped', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ml-matching-spool-'))
    const spoolFile = path.join(dir, 'spool.jsonl')
    try {
      const client = createClient({baseUrl: down, trainerUrl: down, spoolFile, timeoutMs: 500, logger: quiet})
      const row = Object.fromEntries(NAMES.map((n) => [n, 0.5]))
      for (const [call, words] of /** @type {const} */ ([
        [
          () => client.recordOutcome(row, true, {id: 'down-😀'}),
          /^recordOutcome: field `id`: expected 1 to 128 letters/
        ],
        [
          () => client.recordOutcome({...row, brandFit: NaN}, true),
          /^recordOutcome: feature `brandFit`: value NaN is not/
        ],
        [
          () => client.recordOutcome({...row, brandFit: /** @type {any} */ ('0.5')}, true),
          /^recordOutcome: feature `brandFit`: expected a number, got a string/
        ],
        [
          () => client.recordOutcome(/** @type {any} */ ([0.5]), true),
          /^recordOutcome: expected an object of features, got an array$/
        ],
        [
          () => client.recordOutcome(row, /** @type {any} */ ('true')),
          /^recordOutcome: outcome must be true or false, got a string "true"$/
        ]
      ])) {
        await assert.rejects(call(), {name: 'InvalidInputError', code: 'invalid_input', message: words})
      }
      assert.equal(client.outcomesWaiting, 0)
      assert.equal(await readFile(spoolFile, 'utf8'), '', 'nothing spooled')
      assert.equal((await client.recordOutcome(row, true, {id: 'fine-1'})).state, 'queued')
      assert.equal(client.outcomesWaiting, 1)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  test('train refuses an option it does not know', async () => {
    const client = createClient({baseUrl: down, trainerUrl: down, adminToken: 't', logger: quiet})
    await assert.rejects(client.train(/** @type {any} */ ({wiat: false})), {
      name: 'SettingsError',
      message: 'train: unknown option wiat (the options are data, wait)'
    })
  })

  test('an outage is told once, not once per queued outcome', async () => {
    /** @type {string[]} */
    const warned = []
    const logger = {warn: (/** @type {string} */ m) => void warned.push(m), info() {}}
    const client = createClient({baseUrl: down, trainerUrl: down, timeoutMs: 500, retryMs: 60_000, logger})
    const row = Object.fromEntries(NAMES.map((n) => [n, 0.5]))
    for (let i = 0; i < 5; i++) assert.equal((await client.recordOutcome(row, true)).state, 'queued')
    assert.equal(warned.length, 1, warned.join('\n'))
    assert.match(warned[0], /queued, and the next ones until it answers$/)
  })
})

test("a spool file's lines go to their queues once, and are not kept beside them", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ml-matching-spool-'))
  try {
    const file = path.join(dir, 'spool.jsonl')
    const row = {predictionId: newPredictionId(), modelVersion: 'v', probability: 0.5, features: {}}
    await writeFile(
      file,
      `${JSON.stringify({id: 'o1', outcome: true})}\n${JSON.stringify({prediction: row})}\n`
    )
    const spool = new SpoolFile(file)
    const outbox = new Outbox(10, spool)
    const ledger = new LedgerQueue(10, spool)
    assert.deepEqual([outbox.size, ledger.size], [1, 1])
    // A long outage leaves up to ledgerLimit rows: held by the queue, not a second time as parsed lines.
    assert.deepEqual(
      spool.take(() => true),
      []
    )
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})
