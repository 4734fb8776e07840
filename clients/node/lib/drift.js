/**
 * Input drift of an in-process model: are the rows it scores still like its training data?
 *
 * The same computation as the runtime's `GET /monitoring/drift` (src/ml_matching/runtime/drift.py), from the same
 * sidecar histograms: per feature, the population stability index
 * `Σ (a − e) · ln(a / e)` over the training histogram's bins (values beyond the edges counted in the
 * end bins, each share floored at {@link EPSILON}), and the share of values outside the training
 * min/max (compared in float32, as the model sees them). Nothing is read before `minRows` rows.
 * Below 0.1 reads `stable`, up to 0.25 `moderate`, above `shifted`.
 *
 * @module
 */

/** @typedef {import('./sidecar.js').Sidecar} Sidecar */
/**
 * @typedef {import('./contract.js').DriftView} DriftReport
 *   What the runtime's `GET /monitoring/drift` answers.
 * @typedef DriftOptions
 * @property {number} [size=10000]
 *   Rows kept (the runtime's DRIFT_WINDOW).
 * @property {number} [minRows=500]
 *   Rows needed before a reading (the runtime's DRIFT_MIN_ROWS).
 */

export const EPSILON = 1e-4
export const STABLE = 0.1
export const SHIFTED = 0.25
export const DEFAULT_WINDOW = 10_000
export const DEFAULT_MIN_ROWS = 500

/**
 * @param {number | null} psi
 * @returns {'stable' | 'moderate' | 'shifted' | 'insufficient'}
 */
export function reading(psi) {
  if (psi === null) return 'insufficient'
  return psi < STABLE ? 'stable' : psi <= SHIFTED ? 'moderate' : 'shifted'
}

/**
 * The population stability index of two histograms on the same bins.
 *
 * @param {ArrayLike<number>} expected
 * @param {ArrayLike<number>} actual
 */
export function psi(expected, actual) {
  const eTotal = Math.max(sum(expected), 1)
  const aTotal = Math.max(sum(actual), 1)
  let total = 0
  for (let i = 0; i < expected.length; i++) {
    const e = Math.max(expected[i] / eTotal, EPSILON)
    const a = Math.max(actual[i] / aTotal, EPSILON)
    total += (a - e) * Math.log(a / e)
  }
  return total
}

/** @param {ArrayLike<number>} values */
function sum(values) {
  let total = 0
  for (let i = 0; i < values.length; i++) total += values[i]
  return total
}

/**
 * The bin of `value` among `edges` (the last edge ≤ value), held to the first and last bins.
 *
 * @param {ReadonlyArray<number>} edges
 * @param {number} value
 */
function bin(edges, value) {
  let lo = 0
  let hi = edges.length // first index whose edge is > value
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (edges[mid] <= value) lo = mid + 1
    else hi = mid
  }
  return Math.min(Math.max(lo - 1, 0), edges.length - 2)
}

/**
 * The last `size` rows a model scored (a ring buffer of float32 values), and their drift.
 */
export class DriftWindow {
  /** @type {Float32Array} */
  #rows
  /** @type {number} */
  #next = 0
  /** @type {number} */
  #count = 0

  /**
   * @param {Sidecar} sidecar
   * @param {DriftOptions} [options]
   */
  constructor(sidecar, options = {}) {
    const {size = DEFAULT_WINDOW, minRows = DEFAULT_MIN_ROWS} = options
    for (const [name, value] of Object.entries({size, minRows})) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`drift ${name} must be a positive integer, got ${value}`)
      }
    }
    this.sidecar = sidecar
    this.size = size
    this.minRows = minRows
    this.width = sidecar.features.length
    this.#rows = new Float32Array(size * this.width)
  }

  /**
   * Remember scored rows (row-major, `rows × width` values), the oldest leaving first.
   *
   * @param {Float32Array | Float64Array} x
   * @param {number} rows
   */
  add(x, rows) {
    const n = this.width
    const first = Math.max(rows - this.size, 0)
    for (let r = first; r < rows; r++) {
      this.#rows.set(x.subarray(r * n, (r + 1) * n), this.#next * n) // float32, as the model sees them
      this.#next = (this.#next + 1) % this.size
    }
    this.#count = Math.min(this.#count + rows - first, this.size)
  }

  /**
   * The drift of the window, in the shape `GET /monitoring/drift` answers.
   *
   * @returns {DriftReport}
   */
  report() {
    const stats = this.sidecar.trainingData.features
    const rows = this.#count
    const enough = rows >= this.minRows
    const features = this.sidecar.features.map(({name}, j) => {
      const {min, max, histogram} = stats[name]
      const counts = new Array(histogram.counts.length).fill(0)
      const lo = Math.fround(min)
      const hi = Math.fround(max)
      let outside = 0
      for (let r = 0; r < rows; r++) {
        const value = this.#rows[r * this.width + j]
        counts[bin(histogram.edges, value)]++
        if (value < lo || value > hi) outside++
      }
      const value = enough ? psi(histogram.counts, counts) : null
      return {
        name,
        psi: value,
        reading: reading(value),
        outOfRange: enough ? outside / rows : null,
        rows,
        trainingMin: min,
        trainingMax: max,
        bins: {edges: [...histogram.edges], training: [...histogram.counts], window: counts}
      }
    })
    return {version: this.sidecar.version, rows, window: this.size, minRows: this.minRows, features}
  }
}
