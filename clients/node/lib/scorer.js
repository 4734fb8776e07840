/**
 * What every local scorer shares: validation, and turning probabilities into the runtime's
 * response (score, confidence, feature importance), computed exactly as the Python runtime does.
 */

import {DriftWindow} from './drift.js'
import {ExplanationUnavailableError} from './errors.js'
import {compileSchema, readRow, readRows} from './validate.js'

/**
 * @typedef {'local' | 'weighted'} LocalSource
 *   `local`: the ONNX model in-process; `weighted`: the sidecar's logistic baseline in pure JS.
 *
 * @typedef {Omit<import('./contract.js').Prediction, 'predictionId' | 'arm' | 'modelVersion'>} RowScore
 *   One row's score: `score` = `successProbability` = 100 · p; `confidence` = 100 · |2p − 1| · (1 − k/n),
 *   k of the n features lying outside the range seen in training.
 * @typedef {Omit<import('./contract.js').PredictResponse, 'predictionId' | 'experiment' | 'arm'>} Prediction
 *   The runtime's answer to `POST /predict`, but for what only a served prediction has (its
 *   `predictionId`, the experiment and arm): a model's answer.
 * @typedef {Omit<import('./contract.js').BatchResponse, 'predictions' | 'experiment'> & {predictions: Array<RowScore>}} BatchPrediction
 *   The runtime's answer to `POST /predict/batch`, as a model gives it.
 * @typedef Scored
 *   A batch scored for the prediction ledger: the answer, each row's probability (0 to 1) and the
 *   values the model saw (float32 for an ONNX model), row-major.
 * @property {BatchPrediction} answer
 * @property {ArrayLike<number>} p
 * @property {Values} x
 * @typedef ScoredOne
 * @property {Prediction} answer
 * @property {number} p
 * @property {Values} x
 * @typedef ScoreOptions
 * @property {boolean} [explain=false]
 *   Add each feature's contribution to the row's output (`contributions`, with `baseValue` and
 *   `explanationScale`), as the runtime's `?explain=true` does, from the version's explainer graph.
 */

/** @import {Sidecar} from './sidecar.js' */
/** @import {Schema, Values} from './validate.js' */
/** @import {DriftOptions, DriftReport} from './drift.js' */

/**
 * Base of the local scorers. Subclasses give the probabilities of a validated value matrix.
 *
 * @abstract
 */
export class Scorer {
  /** @type {Schema} */
  #schema
  /** @type {Float32Array} */
  #observedMin
  /** @type {Float32Array} */
  #observedMax
  /** @type {Readonly<Record<string, number>>} */
  #importance
  /** @type {new (length: number) => Values} */
  #ArrayType
  /** @type {DriftWindow} */
  #window

  /**
   * @param {Sidecar} sidecar
   * @param {LocalSource} source
   * @param {new (length: number) => Values} ArrayType
   *   Float32Array when the model reads float32 (ONNX), Float64Array when it reads the values as given.
   * @param {DriftOptions} [drift]
   */
  constructor(sidecar, source, ArrayType, drift = {}) {
    this.#schema = compileSchema(sidecar.features)
    const stats = sidecar.trainingData.features
    // Extrapolation is judged in float32, as the ONNX model sees the values.
    this.#observedMin = Float32Array.from(this.#schema.names, (name) => stats[name].min)
    this.#observedMax = Float32Array.from(this.#schema.names, (name) => stats[name].max)
    this.#importance = normalisedImportance(sidecar.featureImportance.impurity, this.#schema.names)
    this.#ArrayType = ArrayType
    this.#window = new DriftWindow(sidecar, drift)
    /**
     * The sidecar (`model.json`) the scorer was built from.
     * @readonly
     */
    this.sidecar = sidecar
    /**
     * Where results come from, as the client marks them.
     * @readonly
     */
    this.source = source
    /**
     * The model version, e.g. `20261126_143000`.
     * @readonly
     */
    this.version = sidecar.version
    /**
     * Feature names in model order.
     * @readonly
     */
    this.features = this.#schema.names
  }

  /** The normalised impurity importances every answer carries (`featureImportance`; frozen). */
  get importance() {
    return this.#importance
  }

  /**
   * Score one match.
   *
   * @param {Record<string, number>} row
   *   The model's features, each a finite number in its declared range.
   * @param {ScoreOptions} [options]
   * @returns {Promise<Prediction>}
   * @throws {import('./errors.js').InvalidInputError}
   *   (as a rejection) naming the feature and the reason.
   * @throws {ExplanationUnavailableError}
   *   (as a rejection) with `explain` when the version has no explainer.
   */
  async predict(row, options = {}) {
    return (await this.scoredOne(row, options)).answer
  }

  /**
   * Score many matches; the same numbers as calling `predict` on each row.
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   *   A non-empty list of rows.
   * @param {ScoreOptions} [options]
   * @returns {Promise<BatchPrediction>}
   * @throws {import('./errors.js').InvalidInputError}
   *   (as a rejection) naming the row, the feature and the reason.
   * @throws {ExplanationUnavailableError}
   *   (as a rejection) with `explain` when the version has no explainer.
   */
  async predictBatch(rows, options = {}) {
    const x = readRows(this.#schema, rows, this.#ArrayType)
    return (await this.#scoreBatch(x, rows.length, options)).answer
  }

  /**
   * Check rows as `predictBatch` does, without scoring them.
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @throws {import('./errors.js').InvalidInputError} naming the row, the feature and the reason.
   */
  checkRows(rows) {
    readRows(this.#schema, rows, this.#ArrayType)
  }

  /**
   * Score one row and keep what the prediction ledger records (see `Scored`): `predict`'s answer,
   * the probability and the values the model saw.
   *
   * @param {Record<string, number>} row
   * @param {ScoreOptions} [options]
   * @returns {Promise<ScoredOne>}
   */
  async scoredOne(row, options = {}) {
    const x = new this.#ArrayType(this.#schema.names.length)
    readRow(this.#schema, row, x, 0, undefined)
    if (options.explain) {
      const [[score], p] = await this.#explained(x, 1)
      this.#window.add(x, 1)
      const {score: s, confidence, successProbability, contributions} = score
      const answer = {
        score: s,
        confidence,
        successProbability,
        featureImportance: this.#importance,
        modelVersion: this.version,
        contributions,
        ...this.#explanationHeader()
      }
      return {answer, p: p[0], x}
    }
    this.#window.add(x, 1)
    const p = (await this.scoreMatrix(x, 1))[0]
    const score = 100 * p
    const answer = {
      score,
      confidence: this.#confidence(p, x, 0),
      successProbability: score,
      featureImportance: this.#importance,
      modelVersion: this.version
    }
    return {answer, p, x}
  }

  /**
   * Score many rows and keep what the prediction ledger records (see `Scored`).
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @param {ScoreOptions} [options]
   * @returns {Promise<Scored>}
   */
  async scored(rows, options = {}) {
    return this.#scoreBatch(readRows(this.#schema, rows, this.#ArrayType), rows.length, options)
  }

  /**
   * @param {Values} x
   * @param {number} rows
   * @param {ScoreOptions} options
   * @returns {Promise<Scored>}
   */
  async #scoreBatch(x, rows, options) {
    if (options.explain) {
      const [predictions, p] = await this.#explained(x, rows)
      this.#window.add(x, rows) // after: rows refused an explanation are not observed
      const answer = {
        predictions,
        featureImportance: this.#importance,
        modelVersion: this.version,
        ...this.#explanationHeader()
      }
      return {answer, p, x}
    }
    this.#window.add(x, rows)
    const p = await this.scoreMatrix(x, rows)
    const n = this.#schema.names.length
    const predictions = new Array(rows)
    for (let r = 0; r < rows; r++) predictions[r] = this.#rowScore(p[r], x, r * n)
    return {answer: {predictions, featureImportance: this.#importance, modelVersion: this.version}, p, x}
  }

  /**
   * The probability of success of each row, as the model gives it (no response wrapping).
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @returns {Promise<Float64Array>}
   */
  async probabilities(rows) {
    const x = readRows(this.#schema, rows, this.#ArrayType)
    return Float64Array.from(await this.scoreMatrix(x, rows.length))
  }

  /**
   * Scores with each row's contributions.
   *
   * @param {Values} x
   * @param {number} rows
   * @returns {Promise<[Array<RowScore & {contributions: Record<string, number>}>, ArrayLike<number>]>}
   *   The scores, and each row's probability.
   */
  async #explained(x, rows) {
    if (!this.sidecar.explanation) {
      throw new ExplanationUnavailableError(
        `version ${this.version} has no explainer (it was trained before explanations existed): ` +
          'retrain it, or score without explain'
      )
    }
    const [p, c] = await Promise.all([this.scoreMatrix(x, rows), this.contributionMatrix(x, rows)])
    const names = this.#schema.names
    const n = names.length
    const out = new Array(rows)
    for (let r = 0; r < rows; r++) {
      /** @type {Record<string, number>} */
      const contributions = {}
      for (let i = 0; i < n; i++) contributions[names[i]] = c[r * n + i]
      out[r] = {...this.#rowScore(p[r], x, r * n), contributions}
    }
    return [out, p]
  }

  #explanationHeader() {
    const {baseValue, scale} = /** @type {NonNullable<Sidecar['explanation']>} */ (this.sidecar.explanation)
    return {baseValue, explanationScale: scale}
  }

  /**
   * Each feature's contribution for a validated row-major `[rows, n]` matrix (row-major too).
   *
   * @protected
   * @param {Values} x
   * @param {number} rows
   * @returns {Promise<ArrayLike<number>>}
   */
  async contributionMatrix(x, rows) {
    throw new ExplanationUnavailableError(
      `a ${this.constructor.name} has no explainer graph: load version ${this.version} with loadModel ` +
        `to explain these ${rows} row(s) of ${x.length / rows} features`
    )
  }

  /**
   * Input drift of the rows this model scored lately (`predict`, `predictBatch`) against its
   * training data: what the runtime's `GET /monitoring/drift` answers, from the same sidecar.
   *
   * @returns {DriftReport}
   */
  drift() {
    return this.#window.report()
  }

  /**
   * Each row's contributions as the explainer graph gives them (row-major `[rows, features]`, no
   * response wrapping, not counted in `drift()`).
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @returns {Promise<Float64Array>}
   */
  async contributions(rows) {
    const x = readRows(this.#schema, rows, this.#ArrayType)
    return Float64Array.from(await this.contributionMatrix(x, rows.length))
  }

  /**
   * Probabilities of a validated row-major `[rows, n]` matrix.
   *
   * @abstract
   * @protected
   * @param {Values} x
   * @param {number} rows
   * @returns {Promise<ArrayLike<number>>}
   */
  async scoreMatrix(x, rows) {
    throw new Error(`${this.constructor.name} does not implement scoreMatrix (${x.length}/${rows})`)
  }

  /**
   * @param {number} p
   * @param {Values} x
   * @param {number} offset
   * @returns {RowScore}
   */
  #rowScore(p, x, offset) {
    const score = 100 * p
    return {score, confidence: this.#confidence(p, x, offset), successProbability: score}
  }

  /**
   * 100 · |2p − 1| · (1 − k/n), k counting the row's features outside the observed range.
   *
   * @param {number} p
   * @param {Values} x
   * @param {number} offset
   */
  #confidence(p, x, offset) {
    const n = this.#schema.names.length
    let outside = 0
    for (let i = 0; i < n; i++) {
      const value = Math.fround(x[offset + i])
      if (value < this.#observedMin[i] || value > this.#observedMax[i]) outside++
    }
    return 100 * Math.abs(2 * p - 1) * (1 - outside / n)
  }
}

/**
 * Impurity importances in feature order, clamped at 0 and scaled to sum to 1 (all zero stays all
 * zero). The sum is exact, like Python's `math.fsum`, so both runtimes give the same numbers.
 *
 * @param {Record<string, number>} raw
 * @param {ReadonlyArray<string>} names
 * @returns {Readonly<Record<string, number>>}
 */
export function normalisedImportance(raw, names) {
  const values = names.map((name) => {
    const value = Object.hasOwn(raw, name) ? raw[name] : 0
    return value > 0 ? value : 0 // also maps NaN to 0, as Python's max(0.0, nan) does
  })
  const total = fsum(values)
  /** @type {Record<string, number>} */
  const result = {}
  for (const [i, name] of names.entries()) result[name] = total > 0 ? values[i] / total : 0
  return Object.freeze(result)
}

/**
 * Correctly rounded sum of floats (Shewchuk's algorithm, as in CPython's `math.fsum`).
 *
 * @param {ReadonlyArray<number>} values
 * @returns {number}
 */
export function fsum(values) {
  /** @type {Array<number>} */
  const partials = []
  for (let x of values) {
    let i = 0
    for (let y of partials) {
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x]
      const hi = x + y
      const lo = y - (hi - x)
      if (lo !== 0) partials[i++] = lo
      x = hi
    }
    partials.length = i
    partials.push(x)
  }
  // Add the partials from the top, then round half-even as CPython does at the last step.
  let n = partials.length
  if (n === 0) return 0
  let hi = partials[--n]
  let lo = 0
  while (n > 0) {
    const x = hi
    const y = partials[--n]
    hi = x + y
    lo = y - (hi - x)
    if (lo !== 0) break
  }
  if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
    const y = lo * 2
    const x = hi + y
    if (y === x - hi) hi = x
  }
  return hi
}
