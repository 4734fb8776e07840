#!/usr/bin/env node
/**
 * In-process latency of the Node client:
 * `node bench/node_bench.mjs VERSION_DIR [--threads=N] [--quick]`.
 *
 * Loads VERSION_DIR with `loadModel` (one onnxruntime thread unless --threads) and measures `predict` on one row and
 * `predictBatch` on 1,000 rows, validation and response building included: a warm-up, then
 * REPETITIONS rounds of many timed calls each; a round's figure is the median call, and the figure
 * reported is the median over rounds. Prints one JSON object on stdout.
 *
 * Needs `npm ci` in clients/node first (it imports the package from there).
 */

import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {loadModel, weightedModel} from '../clients/node/index.js'

const REPETITIONS = 5
const ONE_ROW_CALLS = process.argv.includes('--quick') ? 2_000 : 20_000
const BATCH_CALLS = process.argv.includes('--quick') ? 10 : 60
const BATCH_ROWS = 1_000
const POOL = 1_000
const THREADS = Number(process.argv.find((arg) => arg.startsWith('--threads='))?.slice(10) ?? 1)

/**
 * Deterministic in-range float32 rows (declared range, else the range seen in training).
 *
 * @param {any} sidecar
 * @param {number} count
 */
function makeRows(sidecar, count) {
  let state = 20260101
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return state / 2 ** 32
  }
  return Array.from({length: count}, () =>
    Object.fromEntries(
      sidecar.features.map((/** @type {any} */ f) => {
        const stats = sidecar.trainingData.features[f.name]
        const lo = f.min ?? stats.min
        const hi = f.max ?? stats.max
        return [f.name, Math.min(hi, Math.max(lo, Math.fround(lo + next() * (hi - lo))))]
      })
    )
  )
}

/** @param {Array<number>} values */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** @param {Array<number>} values @param {number} q */
function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

/**
 * Time `calls` sequential awaited calls of `fn(i)`, `REPETITIONS` times, after a warm-up.
 *
 * @param {(i: number) => Promise<unknown>} fn
 * @param {number} calls
 * @returns {Promise<{median: number, p99: number, rounds: Array<number>}>} nanoseconds
 */
async function measure(fn, calls) {
  for (let i = 0; i < Math.max(50, calls / 10); i++) await fn(i)
  const rounds = []
  /** @type {Array<number>} */
  let all = []
  for (let r = 0; r < REPETITIONS; r++) {
    const times = new Array(calls)
    for (let i = 0; i < calls; i++) {
      const start = process.hrtime.bigint()
      await fn(i)
      times[i] = Number(process.hrtime.bigint() - start)
    }
    rounds.push(median(times))
    all = all.concat(times)
  }
  return {median: median(rounds), p99: quantile(all, 0.99), rounds}
}

async function main() {
  const dir = process.argv[2]
  if (!dir || dir.startsWith('--')) {
    console.error('usage: node bench/node_bench.mjs VERSION_DIR [--threads=N] [--quick]')
    process.exit(2)
  }
  const sidecar = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'))
  const model = await loadModel(dir, {threads: THREADS})
  const weighted = weightedModel(sidecar)
  const rows = makeRows(sidecar, POOL)
  const batch = makeRows(sidecar, BATCH_ROWS)

  const one = await measure((i) => model.predict(rows[i % POOL]), ONE_ROW_CALLS)
  const many = await measure(() => model.predictBatch(batch), BATCH_CALLS)
  const light = await measure((i) => weighted.predict(rows[i % POOL]), ONE_ROW_CALLS)
  await model.close()

  const us = (/** @type {number} */ ns) => Math.round(ns / 10) / 100
  const ms = (/** @type {number} */ ns) => Math.round(ns / 1e4) / 100
  const result = {
    node_one_row_us_median: us(one.median),
    node_one_row_us_p99: us(one.p99),
    node_1000_rows_ms_median: ms(many.median),
    node_1000_rows_ms_p99: ms(many.p99),
    weighted_one_row_us_median: us(light.median),
    one_row_us_round_medians: one.rounds.map(us),
    repetitions: REPETITIONS,
    one_row_calls_per_repetition: ONE_ROW_CALLS,
    batch_calls_per_repetition: BATCH_CALLS,
    onnxruntime_node: model.onnxruntimeVersion,
    node: process.version,
    model_version: model.version,
    algorithm: sidecar.algorithm,
    n_estimators: sidecar.hyperparameters?.n_estimators ?? null,
    max_depth: sidecar.hyperparameters?.max_depth ?? null,
    threads: model.threads
  }
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
}

await main()
