/**
 * Experiments in the client, against the fake runtime and trainer (test/support.js): unit keys
 * passed to the runtime; in-process scoring that follows the runtime's experiment (the same arms,
 * the same answers), records prediction-ledger rows durably and sends them to the trainer, scores
 * shadows off the answer's path; outcomes by prediction id. runtime.test.js holds the fake runtime
 * (and in-process assignment) to the real runtime; trainer.test.js the fake trainer to the real one.
 */

import assert from 'node:assert/strict'
import {readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import {afterEach, beforeEach, describe, test} from 'node:test'
import {
  ExplanationUnavailableError,
  InvalidInputError,
  RequestRejectedError,
  armOf,
  createClient,
  loadModel
} from '../index.js'
import {HASH_VERSION} from '../lib/assignment.js'
import {UUID7} from '../lib/ids.js'
import {unitHeader} from '../lib/runtime-client.js'
import {OnnxModel} from '../lib/model.js'
import {Scorer} from '../lib/scorer.js'
import {SHADOW_QUEUE} from '../lib/follow.js'
import {
  FakeRuntime,
  FakeTrainer,
  GB,
  OTHER,
  REPO,
  RF,
  around,
  breakScoring,
  experimentOf,
  memoryLogger,
  nextTurn,
  rowsOf,
  tempDir,
  uniformRow,
  versionDir,
  waitFor,
  withoutIds
} from './support.js'

/** @import {ClientOptions, FollowingModel} from '../index.js' */

const VECTORS = JSON.parse(await readFile(path.join(REPO, 'schemas/assignment-vectors.json'), 'utf8'))
/** Keys in every script the golden vectors have (ASCII, Latin-1, CJK, emoji, RTL, spaces, 1 KB). */
const GOLDEN_KEYS = VECTORS.vectors.map((/** @type {{key: string}} */ v) => v.key)
const LEDGER_KEYS = [
  'predictionId',
  'at',
  'version',
  'probability',
  'features',
  'experiment',
  'revision',
  'arm',
  'weight',
  'unit',
  'hash'
]

/**
 * A key of each arm of `experiment`.
 *
 * @param {import('../index.js').Experiment} experiment
 * @returns {Record<string, string>}
 */
function keyPerArm(experiment) {
  /** @type {Record<string, string>} */
  const found = {}
  for (let i = 0; Object.keys(found).length < experiment.candidates.length + 1; i++) {
    found[armOf(experiment, `brand-${i}`).arm] ??= `brand-${i}`
  }
  return found
}

/**
 * An answer without what differs between two answers of the same row: its ids and `source`.
 *
 * @param {any} answer
 */
function comparable(answer) {
  const {source, ...rest} = withoutIds(answer)
  return Array.isArray(rest.predictions)
    ? {...rest, predictions: rest.predictions.map((/** @type {any} */ {source, ...p}) => p)}
    : rest
}

describe('experiments', () => {
  /** @type {FakeRuntime} */
  let runtime
  /** @type {FakeTrainer} */
  let trainer
  let dir = ''
  /** @type {Array<FollowingModel>} */
  let following = []
  const experiment = experimentOf()
  const arms = keyPerArm(experiment)
  /** @type {ReadonlyArray<string>} */
  let names = []

  beforeEach(async () => {
    dir = await tempDir('experiments')
    runtime = new FakeRuntime()
    runtime.experiment = experiment
    trainer = new FakeTrainer()
    await runtime.start()
    await trainer.start()
    following = []
    names = (await loadModel(versionDir(RF)).then(async (m) => [m.features, await m.close()]))[0] ?? []
  })
  afterEach(async () => {
    for (const model of following) await model.close()
    await trainer.stop()
    await runtime.close()
    await rm(dir, {recursive: true, force: true})
  })

  /** @param {Partial<ClientOptions>} [options] */
  function client(options = {}) {
    return createClient({
      baseUrl: runtime.baseUrl,
      trainerUrl: trainer.baseUrl,
      spoolFile: path.join(dir, 'spool.jsonl'),
      timeoutMs: 1000,
      retryMs: 60_000, // the tests resend by hand
      logger: memoryLogger(),
      ...options
    })
  }

  /** @param {ReturnType<typeof createClient>} c */
  async function follow(c) {
    const model = await c.followModel({dir: path.join(dir, 'models'), followMs: 60_000})
    following.push(model)
    return model
  }

  /**
   * Wait until every ledger row waiting in `c` reached the trainer.
   *
   * @param {ReturnType<typeof createClient>} c
   */
  async function delivered(c) {
    await waitFor(
      async () => {
        await c.flushPredictions()
        return c.predictionsWaiting === 0
      },
      {what: 'every ledger row delivered'}
    )
  }

  test('remote: the key travels in ML-Unit-Key, percent-encoded beyond plain ASCII; the answer names the arm', async () => {
    const c = client()
    const row = uniformRow(names, 0.5)
    for (const key of [...GOLDEN_KEYS, ...Object.values(arms), '50%off']) {
      const answer = await c.predict(row, {unit: key})
      const sent = runtime.posts.at(-1)
      assert.equal(sent?.headers['ml-unit-key'], unitHeader(key))
      const {arm, version} = armOf(experiment, key)
      assert.deepEqual(
        [answer.experiment, answer.arm, answer.modelVersion, answer.source],
        [experiment.id, arm, version, 'remote']
      )
      assert.match(String(answer.predictionId), UUID7)
    }
    const plain = await c.predict(row)
    assert.equal(runtime.posts.at(-1)?.headers['ml-unit-key'], undefined)
    assert.deepEqual([plain.experiment, plain.arm, plain.modelVersion], [undefined, undefined, RF])

    const units = Object.values(arms)
    const rows = units.map(() => row)
    const batch = await c.predictBatch(rows, {units})
    assert.deepEqual(runtime.posts.at(-1)?.body, {instances: rows, units})
    assert.equal(batch.experiment, experiment.id)
    assert.deepEqual(
      batch.predictions.map((p) => [p.arm, p.modelVersion]),
      units.map((unit) => [armOf(experiment, unit).arm, armOf(experiment, unit).version])
    )

    const posts = runtime.posts.length
    await assert.rejects(c.predict(row, {unit: ''}), InvalidInputError)
    await assert.rejects(c.predict(row, {unit: 'x\ud800'}), {reason: 'unit'})
    await assert.rejects(c.predictBatch([row, row], {units: ['a']}), {
      message: '`units` has 1 keys for 2 instances: one per row, in order'
    })
    assert.equal(runtime.posts.length, posts, 'nothing the runtime would refuse is sent')
    assert.deepEqual(await c.experiment(), experiment)
    runtime.experiment = null
    assert.equal(await c.experiment(), null)
    assert.equal(await c.holdout(), null, 'a runtime that follows no holdout answers 404 holdout_not_found')
  })

  test('in-process: the same arms and the same answers as the runtime, one ledger row each, sent once', async () => {
    const c = client()
    const model = await follow(c)
    assert.deepEqual(model.experiment, experiment)
    const sample = rowsOf(names, GOLDEN_KEYS.length + 20, 99)
    const keys = [...GOLDEN_KEYS, ...Array.from({length: 20}, (_, i) => `pair-${i}:creator-${i * 31}`)]
    /** @type {Array<string>} */
    const ids = []
    for (const [i, key] of keys.entries()) {
      const remote = await c.predict(sample[i], {unit: key})
      const local = await model.predict(sample[i], {unit: key})
      assert.deepEqual(comparable(local), comparable(remote), key)
      ids.push(local.predictionId)
    }
    const units = keys.slice(0, 12)
    const remoteBatch = await c.predictBatch(sample.slice(0, 12), {units})
    const localBatch = await model.predictBatch(sample.slice(0, 12), {units})
    assert.deepEqual(comparable(localBatch), comparable(remoteBatch))
    ids.push(...localBatch.predictions.map((p) => /** @type {string} */ (p.predictionId)))
    const explained = await model.predictBatch(sample.slice(0, 6), {units: units.slice(0, 6), explain: true})
    assert.deepEqual(
      comparable(explained),
      comparable(await c.predictBatch(sample.slice(0, 6), {units: units.slice(0, 6), explain: true}))
    )
    ids.push(...explained.predictions.map((p) => /** @type {string} */ (p.predictionId)))

    await delivered(c)
    assert.deepEqual(
      [...trainer.predictions.keys()].sort(),
      [...ids].sort(),
      'a row per in-process prediction'
    )

    // One row, field by field: as the runtime records it (LedgerRow), marked `source: "node"`.
    const key = keys[3]
    const row = trainer.predictions.get(ids[3])
    const {arm, version, weight, unit} = armOf(experiment, key)
    const scorer = await loadModel(versionDir(version))
    const p = (await scorer.probabilities([sample[3]]))[0]
    const gb = await loadModel(versionDir(GB))
    const shadowed = (await gb.probabilities([sample[3]]))[0]
    await gb.close()
    assert.deepEqual(Object.keys(row), [...LEDGER_KEYS, 'ms', 'shadow', 'source'])
    assert.deepEqual(row, {
      predictionId: ids[3],
      at: row.at,
      version,
      probability: p,
      features: Object.fromEntries(scorer.features.map((name) => [name, Math.fround(sample[3][name])])),
      experiment: experiment.id,
      revision: 1,
      arm,
      weight,
      unit,
      hash: HASH_VERSION,
      ms: row.ms,
      shadow: [{version: GB, probability: shadowed}],
      source: 'node'
    })
    await scorer.close()
    assert.match(row.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    assert.ok(row.ms > 0 && row.ms < 1000, `ms ${row.ms}`)
    assert.deepEqual(model.shadowCounts, {[GB]: {scored: ids.length, failed: 0, skipped: 0}})
    await delivered(c) // again: nothing more is sent
    assert.equal(trainer.predictions.size, ids.length)
  })

  test('a new revision is applied whole: its weights, its shadows; an experiment that ends is let go', async () => {
    const c = client()
    const model = await follow(c)
    const revised = experimentOf({
      revision: 2,
      candidates: [{arm: 'gb', version: GB, weight: 10_000}],
      shadow: [OTHER]
    })
    runtime.experiment = revised
    assert.equal(await model.check(), true)
    assert.equal(await model.check(), false, 'the same revision: nothing to do')
    assert.deepEqual(model.refused, {[OTHER]: `it scores other features than control ${RF}`})
    const row = uniformRow(names, 0.25)
    const answer = await model.predict(row, {unit: arms.control})
    assert.deepEqual([answer.arm, answer.modelVersion], ['gb', GB], 'at 100 % the candidate serves everyone')
    assert.deepEqual(comparable(answer), comparable(await c.predict(row, {unit: arms.control})))
    await delivered(c)
    const stored = trainer.predictions.get(answer.predictionId)
    assert.deepEqual(Object.keys(stored), [...LEDGER_KEYS, 'ms', 'source'], 'OTHER does not shadow: refused')
    assert.deepEqual([stored.revision, stored.weight], [2, 10_000])

    runtime.experiment = null
    assert.equal(await model.check(), true)
    assert.equal(model.experiment, null)
    const after = await model.predict(row, {unit: arms.control})
    assert.deepEqual([after.experiment, after.arm, after.modelVersion], [undefined, undefined, RF])
  })

  test('an experiment assigned by a hash this client does not implement is not followed', async () => {
    const logger = memoryLogger()
    const c = client({logger})
    const model = await follow(c)
    runtime.experiment = experimentOf({revision: 2, hash: 'sha256-v2'})
    assert.equal(await model.check(), true, 'the experiment followed until now is let go')
    assert.equal(model.experiment, null)
    const answer = await model.predict(uniformRow(names, 0.25), {unit: arms.control})
    assert.deepEqual([answer.experiment, answer.arm, answer.modelVersion], [undefined, undefined, RF])
    assert.ok(
      logger.lines.some(([level, line]) => level === 'warn' && line.includes('by hash `sha256-v2`')),
      'the warning names the hash'
    )
  })

  test('ledger rows spooled by a client with a trainer wait, without a hang, in one without', async () => {
    await trainer.stop()
    const first = client()
    const model = await follow(first)
    await model.predict(uniformRow(names, 0.5), {unit: arms.control})
    const second = createClient({baseUrl: runtime.baseUrl, spoolFile: path.join(dir, 'spool.jsonl')})
    assert.equal(second.predictionsWaiting, 1)
    await second.flushPredictions() // returned at once: nothing can be sent from here
    assert.equal(second.predictionsWaiting, 1)
  })

  test('no key, a paused experiment: control or the served version, outside the experiment; LEDGER decides what is kept', async () => {
    const row = uniformRow(names, 0.5)
    const c = client()
    const model = await follow(c)
    const plain = await model.predict(row)
    assert.deepEqual(Object.keys(plain), [
      'score',
      'confidence',
      'successProbability',
      'featureImportance',
      'modelVersion',
      'predictionId'
    ])
    const batch = await model.predictBatch([row, row])
    assert.deepEqual(Object.keys(batch.predictions[0]), [
      'score',
      'confidence',
      'successProbability',
      'predictionId'
    ])
    assert.equal(batch.experiment, undefined)
    await delivered(c)
    assert.equal(trainer.predictions.size, 0, 'LEDGER=experiments: rows outside it are not recorded')

    const all = client({ledger: 'all', spoolFile: path.join(dir, 'all.jsonl')})
    const everything = await follow(all)
    const one = await everything.predict(row)
    await delivered(all)
    assert.deepEqual(Object.keys(trainer.predictions.get(one.predictionId)), [
      'predictionId',
      'at',
      'version',
      'probability',
      'features',
      'ms',
      'source'
    ])

    const off = client({ledger: 'off', spoolFile: path.join(dir, 'off.jsonl')})
    const nothing = await follow(off)
    await nothing.predict(row, {unit: arms.gb})
    assert.equal(off.predictionsWaiting, 0)

    runtime.experiment = {...experiment, state: 'paused', revision: 2}
    runtime.served = GB // control is RF: a paused experiment is served by the runtime's version
    assert.equal(await model.check(), true)
    const paused = await model.predict(row, {unit: arms.gb})
    assert.deepEqual([paused.experiment, paused.arm, paused.modelVersion], [undefined, undefined, GB])
    assert.deepEqual(comparable(paused), comparable(await c.predict(row, {unit: arms.gb})))
  })

  test('a candidate that fails verification here: control serves its units, and the row says so', async () => {
    runtime.tampered.add(GB)
    const c = client()
    const model = await follow(c)
    assert.deepEqual(Object.keys(model.refused), [GB])
    assert.match(model.refused[GB], /^sha256: model\.onnx of 20260102_000000 downloaded from/)
    const row = uniformRow(names, 0.5)
    const answer = await model.predict(row, {unit: arms.gb})
    assert.deepEqual([answer.experiment, answer.arm, answer.modelVersion], [experiment.id, 'gb', RF])
    await delivered(c)
    const stored = trainer.predictions.get(answer.predictionId)
    assert.deepEqual(Object.keys(stored), [...LEDGER_KEYS, 'fallback', 'error', 'ms', 'source'])
    assert.deepEqual([stored.version, stored.arm, stored.weight, stored.fallback], [RF, 'gb', 5000, true])
    assert.equal(stored.error, `version ${GB} refused: ${model.refused[GB]}`.slice(0, 200))
  })

  test('a candidate that raises: control serves its rows, the rows say fallback and why', async (t) => {
    const c = client()
    const model = await follow(c)
    breakScoring(t, GB, (rows) => rows.length === 1)
    const row = uniformRow(names, 0.5)
    const answer = await model.predict(row, {unit: arms.gb})
    assert.deepEqual([answer.experiment, answer.arm, answer.modelVersion], [experiment.id, 'gb', RF])
    const batch = await model.predictBatch([row, row], {units: [arms.gb, arms.control]})
    assert.deepEqual(
      batch.predictions.map((p) => [p.arm, p.modelVersion]),
      [
        ['gb', RF],
        ['control', RF]
      ]
    )
    await assert.rejects(model.predict({...row, brandFit: 2}, {unit: arms.gb}), InvalidInputError)
    await delivered(c)
    const [first, second] = batch.predictions.map((p) => String(p.predictionId))
    for (const id of [answer.predictionId, first]) {
      const stored = trainer.predictions.get(id)
      assert.deepEqual([stored.version, stored.arm, stored.fallback], [RF, 'gb', true])
      assert.equal(stored.error, `${GB} raised RangeError: the session is gone`)
    }
    assert.equal(trainer.predictions.get(second).fallback, undefined)
  })

  test('an explanation the arm cannot give is refused, not answered by control in its name', async (t) => {
    const c = client()
    const model = await follow(c)
    // GB as if trained before explainers existed: what its scorer throws for {explain: true}.
    const unexplained = () => new ExplanationUnavailableError(`version ${GB} has no explainer`)
    around(t, Scorer.prototype, 'scoredOne', function (one, row, options) {
      if (this.version === GB && options?.explain) throw unexplained()
      return one(row, options)
    })
    around(t, Scorer.prototype, 'scored', function (many, rows, options) {
      if (this.version === GB && options?.explain) return Promise.reject(unexplained())
      return many(rows, options)
    })
    const row = uniformRow(names, 0.5)
    await assert.rejects(model.predict(row, {unit: arms.gb, explain: true}), ExplanationUnavailableError)
    await assert.rejects(
      model.predictBatch([row], {units: [arms.gb], explain: true}),
      ExplanationUnavailableError
    )
    const answer = await model.predict(row, {unit: arms.gb})
    assert.deepEqual([answer.arm, answer.modelVersion], ['gb', GB])
    await delivered(c)
    assert.deepEqual(
      [...trainer.predictions.keys()],
      [answer.predictionId],
      'only the answered row is recorded'
    )
    assert.equal(trainer.predictions.get(answer.predictionId).fallback, undefined)
  })

  test('an experiment let go while a keyed request scores: its shadow still scores the row, each version closes once', async (t) => {
    const c = client()
    const model = await follow(c)
    /** @type {Array<string>} */
    const closed = []
    around(t, OnnxModel.prototype, 'close', function (close) {
      closed.push(this.version)
      return close()
    })
    /** @type {() => void} */
    let go = () => {}
    const gate = new Promise((resolve) => (go = () => resolve(undefined)))
    around(t, Scorer.prototype, 'scoredOne', function (one, row, options) {
      return this.version === RF ? gate.then(() => one(row, options)) : one(row, options)
    })
    const row = uniformRow(names, 0.5)
    const inFlight = model.predict(row, {unit: arms.control}) // control scores; GB only shadows it
    runtime.experiment = null
    assert.equal(await model.check(), true, 'the experiment is let go, GB with it')
    go()
    const answer = await inFlight
    assert.deepEqual([answer.experiment, answer.arm, answer.modelVersion], [experiment.id, 'control', RF])
    await delivered(c)
    const [shadow] = trainer.predictions.get(answer.predictionId).shadow
    assert.equal(shadow.version, GB)
    assert.equal(typeof shadow.probability, 'number', `the shadow scored the row: ${JSON.stringify(shadow)}`)
    assert.deepEqual(closed, [GB], 'GB closed once, after its shadow work; RF still served')
  })

  test('a shadow scores the row as it was answered, whatever the caller does with its object after', async (t) => {
    const c = client()
    const model = await follow(c)
    /** @type {Array<number>} */
    const seen = []
    around(t, Scorer.prototype, 'probabilities', function (original, rows) {
      if (this.version === GB) seen.push(...rows.map((/** @type {any} */ r) => r[names[0]]))
      return original(rows)
    })
    const row = uniformRow(names, 0.25)
    const answer = await model.predict(row, {unit: arms.control})
    row[names[0]] = 0.75 // the caller reuses its object once answered, before the shadow scores
    await delivered(c)
    assert.deepEqual(seen, [0.25])
    assert.equal(trainer.predictions.get(answer.predictionId).features[names[0]], 0.25)
  })

  test('flushPredictions waits for the shadow scores of the rows waiting then, not of rows that come after', async (t) => {
    const c = client()
    const model = await follow(c)
    /** @type {Array<(p: Array<number>) => void>} */
    const scoring = [] // each shadow call of GB, answered when the test says
    around(t, Scorer.prototype, 'probabilities', function (original, rows) {
      if (this.version !== GB) return original(rows)
      return new Promise((resolve) => scoring.push((p) => resolve(Float64Array.from(p))))
    })
    const row = uniformRow(names, 0.5)
    const first = await model.predict(row, {unit: arms.control})
    await waitFor(() => scoring.length === 1, {what: 'the first row at its shadow'})
    const flushed = c.flushPredictions()
    const second = await model.predict(row, {unit: arms.control}) // after the flush began
    scoring[0]([0.25])
    await flushed // under steady traffic a later row always waits: the flush must not wait for it
    assert.deepEqual(trainer.predictions.get(first.predictionId).shadow, [{version: GB, probability: 0.25}])
    assert.equal(trainer.predictions.has(second.predictionId), false)
    await waitFor(() => scoring.length === 2, {what: 'the second row at its shadow'})
    scoring[1]([0.5])
    await delivered(c)
  })

  test('the runtime down: scored in-process, each unit by the arm the runtime gave it', async () => {
    const c = client()
    await follow(c) // the client's fallback
    const row = uniformRow(names, 0.5)
    const keys = [...Object.values(arms), ...GOLDEN_KEYS]
    const remote = await Promise.all(keys.map((unit) => c.predict(row, {unit})))
    await runtime.stop()
    for (const [i, unit] of keys.entries()) {
      const local = await c.predict(row, {unit})
      assert.equal(local.source, 'local')
      assert.deepEqual(comparable(local), comparable(remote[i]), unit)
    }
    const batch = await c.predictBatch(
      keys.map(() => row),
      {units: keys}
    )
    assert.equal(batch.source, 'local')
    assert.deepEqual(
      batch.predictions.map((p) => p.arm),
      remote.map((r) => r.arm)
    )
    await delivered(c)
    assert.equal(trainer.predictions.size, keys.length * 2, 'the in-process ones are recorded here')
  })

  test('ledger rows survive a trainer outage and a restart, and a resend is stored once', async () => {
    await trainer.stop()
    const spoolFile = path.join(dir, 'spool.jsonl')
    const first = client()
    const model = await follow(first)
    const row = uniformRow(names, 0.5)
    const ids = []
    for (const unit of GOLDEN_KEYS.slice(0, 5)) ids.push((await model.predict(row, {unit})).predictionId)
    assert.equal(first.predictionsWaiting, 5)
    assert.equal((await first.status()).predictionsWaiting, 5)
    await waitFor(() => model.shadowCounts[GB]?.scored === 5, {what: 'the shadow scored'})
    const lines = (await readFile(spoolFile, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    assert.ok(lines.every((line) => Object.keys(line).join() === 'prediction'))
    assert.equal(lines.length, 10, 'each row, then each row with its shadow scores')

    const second = client() // the process restarted: the spool file is all that is left
    assert.equal(second.predictionsWaiting, 5)
    await trainer.start()
    trainer.loseLedgerAnswers = 1 // stored, but the answer is lost: sent again, stored once
    await second.flushPredictions()
    assert.equal(second.predictionsWaiting, 5)
    await second.flushPredictions()
    assert.equal(second.predictionsWaiting, 0)
    assert.deepEqual([...trainer.predictions.keys()], ids)
    assert.ok([...trainer.predictions.values()].every((r) => r.shadow[0].version === GB))
    assert.equal(await readFile(spoolFile, 'utf8'), '', 'nothing waits: the spool is empty')
  })

  test('a row the trainer refuses is dropped with a warning; a trainer without the ledger keeps them waiting', async () => {
    trainer.ledger = false // a trainer older than the ledger: POST /predictions answers 404
    const logger = memoryLogger()
    const c = client({logger})
    const model = await follow(c)
    const row = uniformRow(names, 0.5)
    /** @type {Array<string>} */
    const ids = []
    for (const unit of Object.values(arms)) ids.push((await model.predict(row, {unit})).predictionId)
    await waitFor(() => model.shadowCounts[GB]?.scored === ids.length)
    await c.flushPredictions()
    assert.equal(c.predictionsWaiting, ids.length)
    assert.equal(c.predictionsDropped, 0)
    assert.ok(
      logger.lines.some(([level, line]) => level === 'warn' && /prediction-ledger row\(s\) wait$/.test(line))
    )

    trainer.ledger = true
    trainer.predictions.set(ids[0], {predictionId: ids[0], other: 'content'})
    await c.flushPredictions()
    assert.equal(c.predictionsWaiting, 0)
    assert.equal(c.predictionsDropped, 1)
    assert.deepEqual(trainer.predictions.get(ids[0]), {predictionId: ids[0], other: 'content'})
    assert.equal(trainer.predictions.get(ids[1]).predictionId, ids[1])
    assert.ok(
      logger.lines.some(
        ([level, line]) =>
          level === 'warn' &&
          line.startsWith(`ml-matching trainer refused prediction-ledger row ${ids[0]}: prediction \``)
      )
    )
  })

  test('past ledgerLimit rows are dropped and counted; the answers stand', async () => {
    await trainer.stop()
    const logger = memoryLogger()
    const c = client({ledgerLimit: 2, logger})
    const model = await follow(c)
    const row = uniformRow(names, 0.5)
    for (const unit of GOLDEN_KEYS.slice(0, 4))
      assert.equal(typeof (await model.predict(row, {unit})).score, 'number')
    assert.deepEqual([c.predictionsWaiting, c.predictionsDropped], [2, 2])
    assert.deepEqual(
      logger.lines.filter(([, line]) => line.includes('dropped')),
      [['warn', 'ml-matching: 1 prediction-ledger row(s) dropped: 2 rows already wait (ledgerLimit)']]
    )
  })

  test('shadows score after the answer: one that hangs or raises never delays or fails it', async (t) => {
    const c = client()
    const model = await follow(c)
    const row = uniformRow(names, 0.5)
    /** @type {((p: Array<number>) => void) | undefined} */
    let finish
    let raise = false
    const original = Scorer.prototype.probabilities
    t.mock.method(
      Scorer.prototype,
      'probabilities',
      /** @this {Scorer} */ function (/** @type {any} */ rows) {
        if (/** @type {Scorer} */ (this).version !== GB) return original.call(this, rows)
        if (raise) throw new RangeError('boom')
        return new Promise((resolve) => (finish = (p) => resolve(Float64Array.from(p))))
      }
    )
    const answer = await model.predict(row, {unit: arms.gb})
    assert.equal(finish, undefined, 'answered before the shadow was asked')
    assert.equal(answer.modelVersion, GB)
    const answered = await waitFor(() => finish, {what: 'the shadow asked'})
    await nextTurn()
    assert.deepEqual([c.predictionsWaiting, trainer.predictions.size], [1, 0], 'the row waits for its shadow')
    const flushed = c.flushPredictions() // waits for the shadow, then sends
    answered([0.25])
    await flushed
    assert.equal(c.predictionsWaiting, 0)
    assert.deepEqual(trainer.predictions.get(answer.predictionId).shadow, [{version: GB, probability: 0.25}])

    raise = true
    const second = await model.predict(row, {unit: arms.control})
    assert.equal(second.modelVersion, RF)
    await delivered(c)
    assert.deepEqual(trainer.predictions.get(second.predictionId).shadow, [
      {version: GB, error: 'RangeError: boom'}
    ])
  })

  test('past SHADOW_QUEUE waiting requests, rows are recorded without the shadows, skipped and counted', async (t) => {
    const c = client()
    const model = await follow(c)
    const row = uniformRow(names, 0.5)
    /** @type {Array<() => void>} */
    const hung = []
    let hang = true
    const original = Scorer.prototype.probabilities
    t.mock.method(
      Scorer.prototype,
      'probabilities',
      /** @this {Scorer} */ function (/** @type {any} */ rows) {
        if (/** @type {Scorer} */ (this).version !== GB || !hang) return original.call(this, rows)
        return new Promise((resolve) => hung.push(() => resolve(original.call(this, rows))))
      }
    )
    await model.predict(row, {unit: arms.control}) // its rows are the shadow's, which hangs on them
    await waitFor(() => hung.length === 1, {what: 'the shadow asked'})
    for (let i = 0; i < SHADOW_QUEUE; i++) await model.predict(row, {unit: arms.control}) // they wait
    assert.equal(model.shadowCounts[GB]?.skipped ?? 0, 0)
    const skipped = await model.predict(row, {unit: arms.control})
    assert.deepEqual(model.shadowCounts[GB], {scored: 0, failed: 0, skipped: 1})
    hang = false
    for (const go of hung) go()
    await delivered(c)
    assert.deepEqual(trainer.predictions.get(skipped.predictionId).shadow, [
      {version: GB, error: 'skipped: the shadow queue was full'}
    ])
    assert.deepEqual(model.shadowCounts[GB], {scored: SHADOW_QUEUE + 1, failed: 0, skipped: 1})
    assert.equal(trainer.predictions.size, SHADOW_QUEUE + 2)
  })

  test('recordOutcome({predictionId, outcome}): joined to its row, pending before it arrives, queued while the trainer is down', async () => {
    const c = client()
    const model = await follow(c)
    const row = uniformRow(names, 0.5)
    trainer.ledger = false // the rows wait in the client
    const first = await model.predict(row, {unit: arms.gb})
    assert.deepEqual(await c.recordOutcome({predictionId: first.predictionId, outcome: true}), {
      predictionId: first.predictionId,
      state: 'pending'
    })
    trainer.ledger = true
    await delivered(c)
    assert.deepEqual(trainer.stored.get(first.predictionId), {
      features: trainer.predictions.get(first.predictionId).features,
      outcome: true
    })
    assert.deepEqual(await c.recordOutcome({predictionId: first.predictionId, outcome: true}), {
      predictionId: first.predictionId,
      state: 'duplicate'
    })
    await assert.rejects(c.recordOutcome({predictionId: first.predictionId, outcome: false}), (error) => {
      assert.ok(error instanceof RequestRejectedError)
      assert.deepEqual([error.status, error.code], [409, 'outcome_conflict'])
      return true
    })

    const second = await model.predict(row, {unit: arms.control})
    await delivered(c)
    assert.deepEqual(await c.recordOutcome({predictionId: second.predictionId, outcome: false}), {
      predictionId: second.predictionId,
      state: 'stored'
    })

    await trainer.stop()
    const remote = /** @type {{predictionId: string}} */ (await c.predict(row, {unit: arms.gb})) // the runtime records its own rows
    assert.deepEqual(await c.recordOutcome({predictionId: remote.predictionId, outcome: true}), {
      predictionId: remote.predictionId,
      state: 'queued'
    })
    const spooled = (await readFile(path.join(dir, 'spool.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.deepEqual(spooled.at(-1), {predictionId: remote.predictionId, outcome: true})
    await trainer.start()
    await c.flushOutcomes()
    assert.equal(c.outcomesWaiting, 0)
    assert.equal(trainer.pending.get(remote.predictionId), true, 'it joins once the runtime sends its row')

    await assert.rejects(c.recordOutcome({predictionId: 'collab-42', outcome: true}), {
      name: 'InvalidInputError',
      code: 'invalid_input',
      message: /^recordOutcome: predictionId must be the UUIDv7 an answer carried/
    })
    await assert.rejects(
      c.recordOutcome({predictionId: first.predictionId, outcome: /** @type {any} */ (1)}),
      {name: 'InvalidInputError', message: 'recordOutcome: outcome must be true or false, got a number'}
    )
    assert.deepEqual(await c.recordOutcome(row, true, {id: 'with-features'}), {
      id: 'with-features',
      state: 'stored'
    })
  })
})
