/**
 * The long-lived holdout, against the real Python runtime (`$ML_MATCHING_PYTHON -m
 * ml_matching.runtime`) on a copy of the fixture store whose `HOLDOUT` freezes GB on 20 % of the
 * units while RF is served: in-process scoring places each unit as the runtime does (the same
 * version, the same probability, held or live), records the runtime's ledger rows (both send theirs
 * to the fake trainer, which keeps them), under an experiment too; a frozen version that raises
 * falls back to the served one; a holdout that ends is dropped; another id is another holdout, let
 * go with the runtime when ACTIVE moves to a version of other features.
 *
 * Runs when ML_MATCHING_PYTHON is set; skipped, with the reason, when the runtime does not become
 * ready.
 */

import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {cp, rename, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe} from 'node:test'
import {armOf, createClient} from '../index.js'
import {BUCKETS, HASH_VERSION, unitDigest} from '../lib/assignment.js'
import {place} from '../lib/holdout.js'
import {
  FakeTrainer,
  GB,
  OTHER,
  PYTHON,
  PythonService,
  REPO,
  RF,
  STORE,
  assertSameAnswer,
  breakScoring,
  experimentOf,
  freePort,
  memoryLogger,
  rowsOf,
  tempDir,
  testWhen,
  waitFor,
  withoutIds
} from './support.js'

/** @import {FollowingModel, Holdout} from '../index.js' */

const TOLERANCE = 1e-6
const TOKEN = 'node-holdout-token'
/** As the trainer writes it to the store's `HOLDOUT` (and the runtime answers it at `GET /holdout`). */
const HOLDOUT = /** @type {Holdout} */ ({
  id: 'holdout-node',
  version: GB,
  weight: 2000,
  salt: 'holdout-salt',
  horizonDays: 30,
  createdAt: '2026-11-30T12:00:00.000Z',
  hash: HASH_VERSION
})
/** The golden keys (every script), and enough plain ones for both sides at 20 %. */
const KEYS = [
  ...JSON.parse(readFileSync(path.join(REPO, 'schemas/assignment-vectors.json'), 'utf8')).vectors.map(
    (/** @type {{key: string}} */ v) => v.key
  ),
  ...Array.from({length: 200}, (_, i) => `brand-${i}`)
]
const isHeld = (/** @type {string} */ key) => place(HOLDOUT, key).held
const HELD = KEYS.filter(isHeld)
const LIVE = KEYS.filter((key) => !isHeld(key))

/**
 * Write a store file as the trainer does: whole or not at all (a temporary file, then a rename).
 *
 * @param {string} file
 * @param {unknown} value
 */
async function publish(file, value) {
  await writeFile(`${file}.tmp`, JSON.stringify(value) + '\n')
  await rename(`${file}.tmp`, file)
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

describe(
  'the holdout, against the Python runtime',
  {skip: PYTHON ? false : 'ML_MATCHING_PYTHON is not set'},
  () => {
    /** @type {PythonService} */
    let runtime
    /** @type {string | undefined} */
    let unavailable
    /** The trainer both send their ledger rows to. */
    const trainer = new FakeTrainer()
    let work = ''
    let store = ''
    /** @type {ReturnType<typeof createClient>} */
    let client
    /** @type {FollowingModel} */
    let model
    const logger = memoryLogger()

    before(async () => {
      work = await tempDir('holdout')
      store = path.join(work, 'store')
      await cp(STORE, store, {recursive: true})
      await publish(path.join(store, 'HOLDOUT'), HOLDOUT)
      await trainer.start()
      const port = await freePort()
      runtime = new PythonService('runtime', {
        port,
        env: {
          MODELS_DIR: store,
          ML_SERVICE_HOST: '127.0.0.1',
          ML_SERVICE_PORT: String(port),
          ML_TRAINER_URL: trainer.baseUrl,
          ML_SERVICE_ADMIN_TOKEN: TOKEN,
          MODEL_WATCH_SECONDS: '0.5'
        },
        readyPath: '/holdout',
        readyTimeoutMs: 15_000
      })
      try {
        await runtime.start()
      } catch (error) {
        unavailable = /** @type {Error} */ (error).message
        return
      }
      client = createClient({
        baseUrl: runtime.url,
        trainerUrl: trainer.baseUrl,
        spoolFile: path.join(work, 'spool.jsonl'),
        retryMs: 60_000, // sent by hand here
        timeoutMs: 10_000,
        adminToken: TOKEN,
        logger
      })
      model = await client.followModel({dir: path.join(work, 'models'), followMs: 600_000})
    })

    after(async () => {
      await model?.close()
      await runtime?.stop()
      await trainer.stop()
      if (work) await rm(work, {recursive: true, force: true})
    })

    const live = testWhen(() => unavailable)

    /**
     * The rows the runtime and this process sent for one prediction each, once both have arrived.
     *
     * @param {string} remoteId
     * @param {string} localId
     */
    async function ledgerPair(remoteId, localId) {
      await client.flushPredictions()
      const fromRuntime = await waitFor(() => trainer.predictions.get(remoteId), {
        what: `the runtime's ledger row ${remoteId}`
      })
      return {fromRuntime, fromNode: trainer.predictions.get(localId)}
    }

    live(
      "held units in-process: the runtime's frozen version and probability, the same held/live split",
      async () => {
        assert.deepEqual(model.holdout, HOLDOUT)
        assert.equal(await client.holdout().then((h) => h?.id), HOLDOUT.id)
        assert.ok(HELD.length > 10 && LIVE.length > 10, `${HELD.length} held of ${KEYS.length}`)
        const rows = rowsOf(model.model.features, KEYS.length, 77)
        for (const [i, key] of KEYS.entries()) {
          const remote = await client.predict(rows[i], {unit: key})
          const local = await model.predict(rows[i], {unit: key})
          const version = isHeld(key) ? GB : RF
          assert.deepEqual([remote.modelVersion, local.modelVersion], [version, version], key)
          // A held unit is not told so: a plain answer, as outside any experiment.
          assertSameAnswer(comparable(local), comparable(remote), {tolerance: TOLERANCE, where: key})
        }
        for (const explain of [false, true]) {
          const units = KEYS.slice(0, 60)
          const remote = await client.predictBatch(rows.slice(0, 60), {units, explain})
          const local = await model.predictBatch(rows.slice(0, 60), {units, explain})
          assert.deepEqual(
            local.predictions.map((p) => p.modelVersion),
            units.map((key) => (isHeld(key) ? GB : RF))
          )
          assert.equal(local.experiment, undefined)
          assertSameAnswer(comparable(local), comparable(remote), {
            tolerance: TOLERANCE,
            where: `explain ${explain}`
          })
        }
        const plain = await model.predict(rows[0])
        assert.equal(plain.modelVersion, RF, 'no key: outside the holdout')
      }
    )

    live(
      "in-process ledger rows are the runtime's: arm holdout or live, the holdout's digest, every keyed row",
      async () => {
        trainer.predictions.clear()
        const row = rowsOf(model.model.features, 1, 4242)[0]
        for (const key of [HELD[0], LIVE[0], HELD[1]]) {
          const remote = await client.predict(row, {unit: key})
          const local = await model.predict(row, {unit: key})
          const {fromRuntime, fromNode} = await ledgerPair(String(remote.predictionId), local.predictionId)
          const {source, ...rest} = fromNode
          assert.equal(source, 'node')
          assertSameAnswer(rest, fromRuntime, {
            tolerance: TOLERANCE,
            loose: ['predictionId', 'at', 'ms'],
            where: key
          })
          const held = isHeld(key)
          assert.deepEqual(Object.keys(fromNode), [
            ...['predictionId', 'at', 'version', 'probability', 'features'],
            ...['arm', 'weight', 'unit', 'hash', 'ms', 'source', 'holdout']
          ])
          assert.deepEqual(
            [fromNode.version, fromNode.arm, fromNode.weight, fromNode.unit, fromNode.hash, fromNode.holdout],
            [
              held ? GB : RF,
              held ? 'holdout' : 'live',
              held ? HOLDOUT.weight : BUCKETS - HOLDOUT.weight,
              unitDigest(HOLDOUT.salt, key),
              HASH_VERSION,
              HOLDOUT.id
            ]
          )
        }
        const units = KEYS.slice(0, 40)
        const batch = await model.predictBatch(rowsOf(model.model.features, 40, 5), {units})
        await client.flushPredictions()
        assert.deepEqual(
          batch.predictions.map((p) => trainer.predictions.get(String(p.predictionId))?.arm),
          units.map((key) => (isHeld(key) ? 'holdout' : 'live')),
          'LEDGER=experiments: every keyed row under the holdout is recorded'
        )
        const unkeyed = await model.predict(row)
        await client.flushPredictions()
        assert.equal(trainer.predictions.get(unkeyed.predictionId), undefined, 'a row without a key is not')
      }
    )

    live(
      'under an experiment: held units stay out of it, live units get its arm, their rows name both',
      async () => {
        const experiment = experimentOf()
        const file = path.join(store, 'EXPERIMENT')
        await publish(file, experiment)
        try {
          await waitFor(async () => (await client.experiment())?.id === experiment.id, {
            what: 'the runtime following it'
          })
          assert.equal(await model.check(), true)
          assert.deepEqual([model.experiment?.id, model.holdout?.id], [experiment.id, HOLDOUT.id])
          const rows = rowsOf(model.model.features, KEYS.length, 91)
          for (const [i, key] of KEYS.entries()) {
            const remote = await client.predict(rows[i], {unit: key})
            const local = await model.predict(rows[i], {unit: key})
            const expected = isHeld(key)
              ? [undefined, undefined, GB]
              : [experiment.id, armOf(experiment, key).arm, armOf(experiment, key).version]
            assert.deepEqual([local.experiment, local.arm, local.modelVersion], expected, key)
            assertSameAnswer(comparable(local), comparable(remote), {tolerance: TOLERANCE, where: key})
          }
          const units = KEYS.slice(0, 60)
          const remote = await client.predictBatch(rows.slice(0, 60), {units})
          const local = await model.predictBatch(rows.slice(0, 60), {units})
          assertSameAnswer(comparable(local), comparable(remote), {tolerance: TOLERANCE, where: 'batch'})

          trainer.predictions.clear()
          const row = rows[0]
          for (const key of [HELD[0], LIVE[0]]) {
            const remoteOne = await client.predict(row, {unit: key})
            const localOne = await model.predict(row, {unit: key})
            const {fromRuntime, fromNode} = await ledgerPair(
              String(remoteOne.predictionId),
              localOne.predictionId
            )
            const {source, ...rest} = fromNode
            assertSameAnswer(rest, fromRuntime, {
              tolerance: TOLERANCE,
              loose: ['predictionId', 'at', 'ms'],
              where: key
            })
            assert.equal(fromNode.holdout, HOLDOUT.id)
            assert.equal(fromNode.experiment, isHeld(key) ? undefined : experiment.id)
          }
        } finally {
          await rm(file, {force: true})
          await waitFor(async () => (await client.experiment()) === null, {what: 'the experiment ended'})
          await model.check()
        }
        assert.deepEqual([model.experiment, model.holdout?.id], [null, HOLDOUT.id])
      }
    )

    live(
      'a frozen version that raises: the served version answers, the row says fallback and why',
      async (t) => {
        breakScoring(t, GB)
        trainer.predictions.clear()
        const row = rowsOf(model.model.features, 1, 8)[0]
        const answer = await model.predict(row, {unit: HELD[0]})
        // The served version's answer, as the runtime gives it for a row outside the holdout.
        assertSameAnswer(comparable(answer), comparable(await client.predict(row)), {tolerance: TOLERANCE})
        const units = [HELD[0], LIVE[0], HELD[1]]
        const batch = await model.predictBatch([row, row, row], {units})
        assert.deepEqual(
          batch.predictions.map((p) => p.modelVersion),
          [RF, RF, RF]
        )
        await client.flushPredictions()
        const why = `${GB} raised RangeError: the session is gone`
        const stored = [answer, ...batch.predictions].map((p) =>
          trainer.predictions.get(String(p.predictionId))
        )
        assert.deepEqual(
          stored.map((r) => [r.version, r.arm, r.fallback, r.error, r.holdout]),
          [
            [RF, 'holdout', true, why, HOLDOUT.id],
            [RF, 'holdout', true, why, HOLDOUT.id],
            [RF, 'live', undefined, undefined, HOLDOUT.id],
            [RF, 'holdout', true, why, HOLDOUT.id]
          ]
        )
        assert.deepEqual(Object.keys(stored[0]), [
          ...['predictionId', 'at', 'version', 'probability', 'features', 'arm', 'weight', 'unit', 'hash'],
          ...['fallback', 'error', 'ms', 'source', 'holdout']
        ])
        assert.ok(
          logger.lines.some(
            ([level, line]) =>
              level === 'warn' && line.startsWith(`ml-matching: holdout ${HOLDOUT.id}: ${why}`)
          )
        )
      }
    )

    live(
      'a holdout that ends (HOLDOUT removed) is dropped at the next follow: every unit is live again',
      async () => {
        await rm(path.join(store, 'HOLDOUT'))
        await waitFor(async () => (await client.holdout()) === null, {
          what: 'the runtime dropping the holdout'
        })
        assert.equal((await client.health()).holdout, undefined)
        assert.equal(await model.check(), true)
        assert.equal(model.holdout, null)
        assert.equal(await model.check(), false, 'nothing more to drop')
        assert.ok(
          logger.lines.some(
            ([, line]) => line === `ml-matching: holdout ${HOLDOUT.id} ended; its units are scored live`
          )
        )
        trainer.predictions.clear()
        const row = rowsOf(model.model.features, 1, 9)[0]
        for (const key of HELD.slice(0, 5)) {
          const local = await model.predict(row, {unit: key})
          assertSameAnswer(comparable(local), comparable(await client.predict(row, {unit: key})), {
            tolerance: TOLERANCE
          })
          assert.equal(local.modelVersion, RF)
        }
        await client.flushPredictions()
        assert.equal(
          trainer.predictions.size,
          0,
          'LEDGER=experiments: outside the holdout keyed rows are not recorded'
        )
      }
    )

    live(
      'a new holdout (another id) is followed; dropped while the served version scores other features',
      async () => {
        const next = {...HOLDOUT, id: 'holdout-node-2', salt: 'holdout-salt-2', weight: 1500}
        await publish(path.join(store, 'HOLDOUT'), next)
        await waitFor(async () => (await client.holdout())?.id === next.id, {
          what: 'the runtime following it'
        })
        assert.equal(await model.check(), true)
        assert.deepEqual(model.holdout, next)
        const row = rowsOf(model.model.features, 1, 10)[0]
        for (const key of KEYS.slice(0, 40)) {
          const local = await model.predict(row, {unit: key})
          assert.equal(local.modelVersion, place(next, key).held ? GB : RF, key)
        }

        // The runtime refuses the holdout once ACTIVE names a version of other features: so does this one.
        await client.loadVersion(OTHER)
        try {
          const health = await waitFor(
            async () => {
              const h = await client.health()
              return h.holdout === undefined && h.holdoutRefused ? h : undefined
            },
            {what: 'the runtime refusing the holdout'}
          )
          assert.match(String(health.holdoutRefused), /other features than the served/)
          assert.equal(await model.check(), true)
          assert.deepEqual([model.version, model.holdout], [OTHER, null])
          const other = rowsOf(model.model.features, 1, 11)[0]
          for (const key of KEYS.slice(0, 20)) {
            const local = await model.predict(other, {unit: key})
            const remote = await client.predict(other, {unit: key})
            assertSameAnswer(comparable(local), comparable(remote), {tolerance: TOLERANCE, where: key})
          }

          // Back to a version of the holdout's features: the runtime follows it again, and so does this one.
          await client.loadVersion(RF)
          await waitFor(async () => (await client.health()).holdout?.id === next.id, {
            what: 'the runtime following the holdout again'
          })
          assert.equal(await model.check(), true)
          assert.deepEqual([model.version, model.holdout], [RF, next])
        } finally {
          await client.loadVersion(RF)
          await rm(path.join(store, 'HOLDOUT'), {force: true})
        }
      }
    )
  }
)
