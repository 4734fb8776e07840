/**
 * The sidecar's logistic baseline, scored in pure JavaScript: the fallback for platforms where
 * onnxruntime-node cannot load.
 */

import {ArtifactCorruptError} from './errors.js'
import {Scorer} from './scorer.js'
import {checkSidecar, worstGoldenRow} from './sidecar.js'

/** @import {Sidecar} from './sidecar.js' */
/** @import {Values} from './validate.js' */

/** Largest |p_js − baselineProbability| a golden row may show before the sidecar is refused. */
export const BASELINE_TOLERANCE = 1e-9

/**
 * @typedef WeightedOptions
 * @property {boolean} [verify=true]
 *   Re-score the sidecar's golden rows and refuse the model when one is off by more than 1e-9.
 * @property {import('./drift.js').DriftOptions} [drift]
 *   The window `model.drift()` reads (default: the last 10,000 rows, a reading from 500).
 */

/**
 * Build the weighted (logistic baseline) scorer of a sidecar.
 *
 * p = 1 / (1 + exp(−(intercept + Σ coefficients[name] · x[name]))), the sum taken in feature
 * order over the values as given (float64). Validation, confidence and the response shape are
 * those of the ONNX model; results are marked `source: "weighted"` by the client.
 *
 * @param {unknown} sidecar
 *   The parsed `model.json` (see `readSidecar`).
 * @param {WeightedOptions} [options]
 * @returns {WeightedModel}
 * @throws {ArtifactCorruptError}
 *   When the sidecar is incomplete (`check: 'sidecar'`) or a golden row's baseline probability
 *   does not match (`check: 'golden-rows'`).
 */
export function weightedModel(sidecar, options = {}) {
  const model = new WeightedModel(checkSidecar(sidecar), options.drift)
  if (options.verify ?? true) checkBaselineRows(model)
  return model
}

/** The logistic baseline of one version. Made by {@link weightedModel}. */
export class WeightedModel extends Scorer {
  /** @type {number} */
  #intercept
  /** @type {Float64Array} */
  #coefficients

  /**
   * @param {Sidecar} sidecar
   * @param {import('./drift.js').DriftOptions} [drift]
   */
  constructor(sidecar, drift) {
    super(sidecar, 'weighted', Float64Array, drift)
    const {intercept, coefficients} = sidecar.baseline
    const lacking = this.features.find((name) => !Object.hasOwn(coefficients, name))
    if (lacking !== undefined) {
      throw new ArtifactCorruptError('sidecar', `baseline has no coefficient for feature \`${lacking}\``)
    }
    this.#intercept = intercept
    this.#coefficients = Float64Array.from(this.features, (name) => coefficients[name])
  }

  /**
   * The probabilities, synchronously.
   *
   * @param {Values} x
   * @param {number} rows
   * @returns {Float64Array}
   */
  scoreMatrixSync(x, rows) {
    const w = this.#coefficients
    const n = w.length
    const p = new Float64Array(rows)
    for (let r = 0; r < rows; r++) {
      let sum = 0
      for (let i = 0; i < n; i++) sum += w[i] * x[r * n + i]
      p[r] = 1 / (1 + Math.exp(-(this.#intercept + sum)))
    }
    return p
  }

  /**
   * @protected
   * @param {Values} x
   * @param {number} rows
   * @returns {Promise<Float64Array>}
   */
  async scoreMatrix(x, rows) {
    return this.scoreMatrixSync(x, rows)
  }
}

/**
 * Re-score the golden rows with the baseline; throw naming the worst row beyond 1e-9.
 *
 * @param {WeightedModel} model
 * @returns {number}
 *   The largest |difference|.
 */
export function checkBaselineRows(model) {
  const golden = model.sidecar.goldenRows
  const n = model.features.length
  const x = new Float64Array(golden.length * n)
  for (const [r, row] of golden.entries()) {
    for (const [i, name] of model.features.entries()) {
      const value = row.features[name]
      if (typeof value !== 'number') {
        throw new ArtifactCorruptError('golden-rows', `golden row ${r} lacks feature \`${name}\``)
      }
      x[r * n + i] = value
    }
  }
  const got = model.scoreMatrixSync(x, golden.length)
  const {row: worst, diff: worstDiff} = worstGoldenRow(
    got,
    golden.map((row) => row.baselineProbability)
  )
  if (!(worstDiff <= BASELINE_TOLERANCE)) {
    throw new ArtifactCorruptError(
      'golden-rows',
      `golden row ${worst}: expected baseline p=${golden[worst].baselineProbability}, ` +
        `the weighted model gives ${got[worst]} (|diff| ${worstDiff.toExponential(2)} > ${BASELINE_TOLERANCE})`
    )
  }
  return worstDiff
}
