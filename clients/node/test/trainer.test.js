/**
 * The client against the real trainer (`$ML_MATCHING_PYTHON -m ml_matching.trainer`, which needs the
 * train extra): outcomes survive a trainer outage (kill -9) and a client restart, and are stored
 * exactly once; status() and train() as the trainer answers them.
 *
 * Runs when ML_MATCHING_PYTHON is set (nox's node session sets it); skipped with the reason when
 * the trainer does not become ready.
 */

import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, before, describe, test} from 'node:test'
import {createClient} from '../index.js'
import {STORE} from './helpers.js'

/** @import {ChildProcess} from 'node:child_process' */

const PYTHON = process.env.ML_MATCHING_PYTHON
const TOKEN = 'node-trainer-token'
const REPO = path.resolve(STORE, '../../..')
const NAMES = [
  'nicheAlignment', 'audienceMatch', 'engagementRate', 'brandFit', 'locationMatch', 'budgetAlignment',
  'contentQuality', 'responseRate', 'accountAge', 'activityScore', 'lastActiveScore', 'connectionAcceptance',
  'profileCompletion', 'portfolioQuality', 'networkStrength', 'mutualConnections', 'connectionDiversity',
  'postingConsistency', 'contentEngagement'
] // prettier-ignore

/** @returns {Promise<number>} */
async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const {port} = /** @type {net.AddressInfo} */ (server.address())
  server.close()
  await once(server, 'close')
  return port
}

/** @param {number} i */
function row(i) {
  return Object.fromEntries(NAMES.map((name, j) => [name, ((i * 7919 + j * 104729) % 1000) / 1000]))
}

describe('against the Python trainer', {skip: PYTHON ? false : 'ML_MATCHING_PYTHON is not set'}, () => {
  let work = ''
  let url = ''
  /** @type {Record<string, string>} */
  let env = {}
  /** @type {ChildProcess | undefined} */
  let child
  /** @type {string | undefined} */
  let unavailable

  /** Start the trainer; resolve once it answers /health. */
  async function start() {
    child = spawn(/** @type {string} */ (PYTHON), ['-m', 'ml_matching.trainer'], {
      cwd: REPO,
      env,
      stdio: 'ignore'
    })
    const deadline = performance.now() + 30_000
    while (performance.now() < deadline && child.exitCode === null) {
      try {
        if ((await fetch(`${url}/health`, {signal: AbortSignal.timeout(1000)})).ok) return
      } catch {}
      await sleep(100)
    }
    throw new Error(`the trainer did not answer within 30 s (exit ${child.exitCode})`)
  }

  async function kill() {
    if (child && child.exitCode === null) {
      const exit = once(child, 'exit')
      child.kill('SIGKILL')
      await exit
    }
  }

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ml-matching-trainer-'))
    const config = path.join(work, 'fast.json')
    await writeFile(
      config,
      JSON.stringify({folds: 3, random_forest: {n_estimators: 10, max_depth: 4, n_jobs: 1}})
    )
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    env = {
      ...process.env,
      MODELS_DIR: path.join(work, 'store'),
      ML_TRAINER_HOST: '127.0.0.1',
      ML_TRAINER_PORT: String(port),
      ML_SERVICE_ADMIN_TOKEN: TOKEN,
      RETRAIN_EVERY: '0',
      TRAIN_CONFIG: config,
      LOG_LEVEL: 'WARNING'
    }
    try {
      await start()
    } catch (error) {
      unavailable = String(error)
    }
  })
  after(async () => {
    await kill()
    if (work) await rm(work, {recursive: true, force: true})
  })

  test('outcomes survive a trainer outage and a client restart, stored exactly once', async (t) => {
    if (unavailable) return t.skip(unavailable)
    const spoolFile = path.join(work, 'outcomes.jsonl')
    const options = {
      baseUrl: url,
      trainerUrl: url,
      spoolFile,
      retryMs: 60_000,
      timeoutMs: 2000,
      logger: {warn() {}, info() {}}
    }
    const first = createClient(options)
    for (let i = 0; i < 20; i++)
      assert.equal((await first.recordOutcome(row(i), i % 3 === 0, {id: `n-${i}`})).state, 'stored')
    assert.equal((await first.recordOutcome(row(0), true, {id: 'n-0'})).state, 'duplicate')

    await kill()
    for (let i = 20; i < 30; i++)
      assert.equal((await first.recordOutcome(row(i), i % 2 === 0, {id: `n-${i}`})).state, 'queued')
    const down = await first.status()
    assert.deepEqual([down.trainer?.reachable, down.outcomesWaiting], [false, 10])

    const second = createClient(options) // the Node process restarted
    assert.equal(second.outcomesWaiting, 10)
    await start()
    await second.flushOutcomes()
    assert.equal(second.outcomesWaiting, 0)
    const stats = /** @type {{total: number}} */ (await (await fetch(`${url}/outcomes/stats`)).json())
    assert.equal(stats.total, 30)
    const up = await second.status()
    assert.deepEqual(up.trainer, {reachable: true, outcomes: 30, runningJob: null})
  })

  test('train() answers with the seed shape, or says why the job was rejected', async (t) => {
    if (unavailable) return t.skip(unavailable)
    const client = createClient({baseUrl: url, trainerUrl: url, adminToken: TOKEN})
    const rejected = await client.train()
    assert.equal(rejected.status, 'rejected')
    assert.match(rejected.reason, /rows; training needs at least 50$/)
    const job = await client.train({wait: false})
    assert.match(job.job, /^[0-9a-f]{16}$/)
    const view = await client.job(job.job)
    assert.equal(view.job, job.job)
  })
})
