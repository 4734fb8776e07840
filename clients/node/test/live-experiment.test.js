/**
 * End to end, live: the real trainer and the real runtime on one copy of the fixture store, and the
 * Node client. The trainer starts an experiment (`POST /experiments`), the runtime follows it, and
 * the client scores remotely and in-process by the same arms; the ledger rows of both reach the
 * trainer, also through a `kill -9` of the trainer and a client restart; outcomes sent by
 * `predictionId` alone (some before their prediction's row) all join, and the experiment's per-arm
 * counts (`GET /experiments/{id}`) are exact.
 *
 * Runs when ML_MATCHING_PYTHON is set (the trainer needs the train extra); skipped with the reason
 * when a service does not become ready.
 */

import assert from 'node:assert/strict'
import {cp, rm} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {armOf, createClient} from '../index.js'
import {
  GB,
  PYTHON,
  PythonService,
  RF,
  STORE,
  freePort,
  memoryLogger,
  rowsOf,
  tempDir,
  waitFor
} from './support.js'

/** @import {Experiment, FollowingModel} from '../index.js' */

const TOKEN = 'node-e2e-token'

describe(
  'end to end: a trainer, a runtime and the Node client',
  {skip: PYTHON ? false : 'ML_MATCHING_PYTHON is not set'},
  () => {
    let work = ''
    /** @type {PythonService} */
    let trainer
    /** @type {PythonService} */
    let runtime
    /** @type {string | undefined} */
    let unavailable

    before(async () => {
      work = await tempDir('e2e')
      const store = path.join(work, 'store')
      await cp(STORE, store, {recursive: true})
      const [trainerPort, runtimePort] = [await freePort(), await freePort()]
      trainer = new PythonService('trainer', {
        port: trainerPort,
        env: {
          MODELS_DIR: store,
          ML_TRAINER_HOST: '127.0.0.1',
          ML_TRAINER_PORT: String(trainerPort),
          ML_SERVICE_ADMIN_TOKEN: TOKEN,
          RETRAIN_EVERY: '0'
        },
        readyPath: '/health'
      })
      runtime = new PythonService('runtime', {
        port: runtimePort,
        env: {
          MODELS_DIR: store,
          ML_SERVICE_HOST: '127.0.0.1',
          ML_SERVICE_PORT: String(runtimePort),
          ML_TRAINER_URL: trainer.url,
          MODEL_WATCH_SECONDS: '0.5'
        },
        readyPath: '/health/ready',
        readyTimeoutMs: 15_000
      })
      try {
        await trainer.start()
        await runtime.start()
      } catch (error) {
        unavailable = /** @type {Error} */ (error).message
      }
    })

    after(async () => {
      await runtime?.stop()
      await trainer?.stop('SIGKILL')
      if (work) await rm(work, {recursive: true, force: true})
    })

    test('every prediction reaches the ledger once, every outcome by predictionId joins it, the counts are exact', async (t) => {
      if (unavailable) return t.skip(unavailable)
      const admin = {authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json'}
      const created = await fetch(`${trainer.url}/experiments`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({
          name: 'node-e2e',
          control: RF,
          candidates: [{version: GB, weight: 5000, arm: 'gb'}]
        })
      })
      assert.equal(created.status, 201, await created.clone().text())
      const id = /** @type {{id: string}} */ (await created.json()).id
      const experiment = /** @type {Experiment} */ (
        await waitFor(
          async () => {
            const answer = await fetch(`${runtime.url}/experiment`)
            const body = /** @type {any} */ (await answer.json())
            return answer.status === 200 && body.id === id ? body : undefined
          },
          {what: 'the runtime following the experiment'}
        )
      )

      const spoolFile = path.join(work, 'spool.jsonl')
      const options = {
        baseUrl: runtime.url,
        trainerUrl: trainer.url,
        spoolFile,
        retryMs: 60_000, // resent by hand here
        timeoutMs: 5000,
        logger: memoryLogger()
      }
      /** @type {Array<FollowingModel>} */
      const models = []
      const follow = async (/** @type {ReturnType<typeof createClient>} */ c) => {
        const model = await c.followModel({dir: path.join(work, 'models'), followMs: 600_000})
        models.push(model)
        return model
      }
      try {
        const first = createClient(options)
        const model = await follow(first)
        assert.deepEqual(model.experiment, experiment)
        const rows = rowsOf(model.model.features, 90, 31)
        /** @type {Map<string, string>} predictionId → arm */
        const made = new Map()
        /** @type {Map<string, boolean>} predictionId → outcome */
        const outcomes = new Map()

        // Remotely (the runtime sends the rows) and in-process (the client does), 30 units each.
        for (let i = 0; i < 30; i++) {
          const unit = `brand-${i}`
          const remote = await first.predict(rows[i], {unit})
          const local = await model.predict(rows[30 + i], {unit: `pair-${i}:creator-${i * 7}`})
          assert.equal(remote.arm, armOf(experiment, unit).arm)
          made.set(String(remote.predictionId), String(remote.arm))
          made.set(local.predictionId, String(local.arm))
        }
        await first.flushPredictions()
        assert.equal(first.predictionsWaiting, 0)

        // The trainer is killed: in-process rows and outcomes queue (and spool); some outcomes are
        // for predictions whose rows the trainer has not seen yet.
        await trainer.stop('SIGKILL')
        /** @type {Array<string>} */
        const waiting = []
        for (let i = 0; i < 30; i++) {
          const local = await model.predict(rows[60 + i], {unit: `late-${i}`})
          made.set(local.predictionId, String(local.arm))
          waiting.push(local.predictionId)
        }
        for (const predictionId of waiting.slice(0, 10)) {
          const outcome = predictionId.charCodeAt(35) % 2 === 0
          assert.equal((await first.recordOutcome({predictionId, outcome})).state, 'queued')
          outcomes.set(predictionId, outcome)
        }
        assert.equal(first.predictionsWaiting, 30)

        // The Node process restarts; the trainer comes back. Outcomes go first: they wait there
        // (pending) until their rows arrive, then join.
        const second = createClient(options)
        assert.deepEqual([second.predictionsWaiting, second.outcomesWaiting], [30, 10])
        await trainer.start()
        await second.flushOutcomes()
        await second.flushPredictions()
        assert.deepEqual([second.predictionsWaiting, second.outcomesWaiting], [0, 0])

        // Every other prediction's outcome, by predictionId alone.
        for (const predictionId of made.keys()) {
          if (outcomes.has(predictionId)) continue
          const outcome = predictionId.charCodeAt(35) % 2 === 0
          const {state} = await second.recordOutcome({predictionId, outcome})
          assert.ok(state === 'stored' || state === 'pending', `${predictionId}: ${state}`)
          outcomes.set(predictionId, outcome)
        }

        /** @type {Record<string, {rows: number, outcomes: number, successes: number}>} */
        const expected = {}
        for (const [predictionId, arm] of made) {
          const counts = (expected[arm] ??= {rows: 0, outcomes: 0, successes: 0})
          counts.rows++
          counts.outcomes++
          if (outcomes.get(predictionId)) counts.successes++
        }
        const view = await waitFor(
          async () => {
            const answer = /** @type {any} */ (await (await fetch(`${trainer.url}/experiments/${id}`)).json())
            return answer.pending === 0 &&
              answer.arms.reduce((/** @type {number} */ n, /** @type {any} */ a) => n + a.outcomes, 0) ===
                made.size
              ? answer
              : undefined
          },
          {what: 'every outcome joined', timeoutMs: 20_000}
        )
        /** @type {Record<string, {rows: number, outcomes: number, successes: number}>} */
        const got = {}
        for (const arm of view.arms)
          got[arm.arm] = {rows: arm.rows, outcomes: arm.outcomes, successes: arm.successes}
        assert.deepEqual(got, expected)
        assert.equal(view.joinRate, 1)
      } finally {
        for (const model of models) await model.close()
      }
    })
  }
)
