/**
 * Scoring against the runtime, with fallback to a local scorer and recovery.
 *
 * Scoring goes to the service while it answers. A timeout, a failed connection or a 5xx makes the
 * client *degraded*: it scores with `local` (results marked `source: "local"` or `"weighted"`) and
 * asks `GET /health/ready` at most once every `healthIntervalMs`; on a 200 it scores remotely
 * again. A 4xx is the caller's mistake and is thrown, never hidden by the fallback.
 */

import {checkUnit, checkUnits} from './assignment.js'
import {checkJsonRow} from './validate.js'
import {
  ExplanationUnavailableError,
  RequestRejectedError,
  ServiceUnavailableError,
  SettingsError
} from './errors.js'

/** @import {Experiment} from './assignment.js' */
/** @import {Holdout} from './holdout.js' */
/** @import {BatchPrediction, LocalSource, Prediction, RowScore} from './scorer.js' */
/** @import {Health as HealthAnswer, LoadResult as LoadAnswer, ModelSummary as ModelEntry} from './contract.js' */
/** @import {Sidecar} from './sidecar.js' */
/** @import {Service} from './http.js' */
/** @import {Logger} from './options.js' */

/**
 * @typedef {'remote' | LocalSource} Source
 *   Where a result came from.
 *
 * @typedef PredictOptions
 * @property {boolean} [explain=false]
 *   Each feature's contribution (see `ScoreOptions`).
 * @property {string} [unit]
 *   The unit the row is for (a brand id, a pair id: your choice): under an experiment it decides
 *   the arm, the same for every call with this key (`ML-Unit-Key`), and under the long-lived
 *   holdout whether its frozen version serves the unit. Without it, control serves and the
 *   prediction is in neither.
 *
 * @typedef BatchOptions
 * @property {boolean} [explain=false]
 * @property {ReadonlyArray<string>} [units]
 *   One unit key per row, in order (the runtime's `"units"` beside `"instances"`).
 *
 * @typedef Served
 *   What an answer of the runtime (or of `followModel`) adds to a model's.
 * @property {string} [predictionId]
 *   The prediction's id (a UUIDv7): `recordOutcome({predictionId, outcome})` names it later. A
 *   model of `loadModel` or `weightedModel` answers none.
 * @property {string | null} [experiment]
 *   The experiment the prediction is in (with a `unit`, while one runs).
 * @property {string | null} [arm]
 *   Its arm there; `modelVersion` is the version that served it.
 *
 * @typedef {Prediction & Served & {source: Source}} SourcedPrediction
 *
 * @typedef {RowScore & {predictionId?: string, arm?: string | null, modelVersion?: string | null}} ServedRowScore
 *   One row of a batch: with `units` under an experiment or the holdout, also the `modelVersion`
 *   that served it, and its `arm` when the row is in the experiment.
 *
 * @typedef {Omit<BatchPrediction, 'predictions'> & {experiment?: string | null, predictions: Array<ServedRowScore>}} ServedBatchPrediction
 *   A batch's answer: with `units` under an experiment, also the `experiment`.
 *
 * @typedef {Omit<ServedBatchPrediction, 'predictions'> & {source: Source, predictions: Array<ServedRowScore & {source: Source}>}} SourcedBatchPrediction
 *
 * @typedef LocalScorer
 *   What the client falls back to: a model from `loadModel` or `weightedModel` (which ignore
 *   `unit`), or `followModel`'s, which follows the runtime's experiment too.
 * @property {LocalSource} source
 * @property {string} version
 * @property {(row: Record<string, number>, options?: PredictOptions) => Promise<Prediction & Served>} predict
 * @property {(rows: ReadonlyArray<Record<string, number>>, options?: BatchOptions) => Promise<ServedBatchPrediction>} predictBatch
 *
 * @typedef {HealthAnswer} Health
 *   `GET /health` (its type is generated from the runtime's `schemas/health.response.schema.json`).
 * @typedef {ModelEntry} ModelSummary
 *   An entry of `GET /models`.
 * @typedef {LoadAnswer} LoadResult
 *   `POST /models/{version}/load`.
 */

/** The runtime's scoring and management endpoints, and the fallback state. */
export class RuntimeClient {
  /** @type {Service} */
  #service
  /** @type {LocalScorer | undefined} */
  #local
  /** @type {number} */
  #healthIntervalMs
  /** @type {Logger} */
  #logger
  /** @type {() => number} */
  #now
  /** @type {string | undefined} */
  #adminToken
  #degraded = false
  #nextProbe = 0

  /**
   * @param {Service} service
   * @param {{local: LocalScorer | undefined, healthIntervalMs: number, logger: Logger, now: () => number, adminToken: string | undefined}} settings
   */
  constructor(service, settings) {
    this.#service = service
    this.#local = settings.local
    this.#healthIntervalMs = settings.healthIntervalMs
    this.#logger = settings.logger
    this.#now = settings.now
    this.#adminToken = settings.adminToken
  }

  /** True while the service is considered down and scoring is local. */
  get degraded() {
    return this.#degraded
  }

  /** The scorer used while degraded, if any. */
  get local() {
    return this.#local
  }

  /**
   * Fall back to `scorer` from now on, unless a fallback was configured already.
   *
   * @param {LocalScorer} scorer
   */
  fallBackTo(scorer) {
    this.#local ??= scorer
  }

  /**
   * @param {Record<string, number>} row
   * @param {PredictOptions} [options]
   * @returns {Promise<SourcedPrediction>}
   */
  async predict(row, options = {}) {
    const explain = Boolean(options.explain)
    const path = explain ? '/predict?explain=true' : '/predict'
    const unit = options.unit ?? undefined
    const headers = unit === undefined ? undefined : {'ml-unit-key': unitHeader(unit)}
    checkJsonRow(row)
    /** @type {[Prediction & Served, Source]} */
    const [result, source] = await this.#score(
      path,
      row,
      isPrediction,
      (local) => local.predict(row, unit === undefined ? {explain} : {explain, unit}),
      headers
    )
    if (explain) this.#requireExplained(result, path)
    return {...result, source}
  }

  /**
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @param {BatchOptions} [options]
   * @returns {Promise<SourcedBatchPrediction>}
   */
  async predictBatch(rows, options = {}) {
    const explain = Boolean(options.explain)
    const path = explain ? '/predict/batch?explain=true' : '/predict/batch'
    const units = options.units ?? undefined
    if (units !== undefined) checkUnits(units, rows)
    if (Array.isArray(rows)) rows.forEach((row, i) => checkJsonRow(row, i))
    const body = units === undefined ? {instances: rows} : {instances: rows, units}
    /** @type {[ServedBatchPrediction, Source]} */
    const [result, source] = await this.#score(path, body, isBatch, (local) =>
      local.predictBatch(rows, units === undefined ? {explain} : {explain, units})
    )
    if (explain) this.#requireExplained(result, path)
    const predictions = result.predictions.map((item) => ({...item, source}))
    return {...result, predictions, source}
  }

  /** @returns {Promise<Health>} */
  async health() {
    return this.#service.json('GET', '/health')
  }

  /** @returns {Promise<Array<ModelSummary>>} */
  async models() {
    return this.#service.json('GET', '/models')
  }

  /**
   * @param {string} version
   * @returns {Promise<Sidecar>}
   */
  async model(version) {
    return this.#service.json('GET', `/models/${encodeURIComponent(version)}`)
  }

  /**
   * @param {string} version
   * @returns {Promise<LoadResult>}
   * @throws {SettingsError} no `adminToken` option (checked before anything is sent).
   */
  async loadVersion(version) {
    if (!this.#adminToken) {
      throw new SettingsError(
        "loadVersion needs the adminToken option: createClient({adminToken}) with the runtime's ML_SERVICE_ADMIN_TOKEN"
      )
    }
    return this.#service.json('POST', `/models/${encodeURIComponent(version)}/load`, {
      headers: {authorization: `Bearer ${this.#adminToken}`}
    })
  }

  /**
   * The experiment the runtime follows (`GET /experiment`), or null when it follows none (404,
   * also from a runtime older than experiments).
   *
   * @returns {Promise<Experiment | null>}
   */
  async experiment() {
    return this.#followed('/experiment')
  }

  /**
   * The long-lived holdout the runtime follows (`GET /holdout`), or null when it follows none (404,
   * also from a runtime older than holdouts).
   *
   * @returns {Promise<Holdout | null>}
   */
  async holdout() {
    return this.#followed('/holdout')
  }

  /**
   * What the runtime follows at `path`, or null when it follows none (404, also from a runtime
   * older than that path).
   *
   * @param {string} path
   * @returns {Promise<any>}
   */
  async #followed(path) {
    try {
      return await this.#service.json('GET', path)
    } catch (error) {
      if (error instanceof RequestRejectedError && error.status === 404) return null
      throw error
    }
  }

  /**
   * @template T
   * @param {string} path
   * @param {unknown} body
   * @param {(answer: any) => boolean} expected
   *   Whether a 2xx answer has the contract's shape (one that has not counts as a failure).
   * @param {(local: LocalScorer) => Promise<T>} scoreLocally
   * @param {Record<string, string>} [headers]
   * @returns {Promise<[T, Source]>}
   *   The answer, and where it came from.
   */
  async #score(path, body, expected, scoreLocally, headers) {
    const local = this.#local
    // Degraded: score locally without waiting on the service, unless a probe says it is back.
    if (local && this.#degraded && !(await this.#probe())) {
      return [await scoreLocally(local), local.source]
    }
    const text = JSON.stringify(body) // outside the try: an unserialisable row is the caller's bug
    let result
    try {
      result = await this.#service.json('POST', path, headers ? {body: text, headers} : {body: text})
      if (!expected(result)) {
        throw new ServiceUnavailableError(
          `ml-matching service at ${this.#service.base} answered POST ${path} with a body outside the contract`
        )
      }
    } catch (error) {
      if (!(error instanceof ServiceUnavailableError)) throw error
      this.#down(error)
      if (!local) throw error
      return [await scoreLocally(local), local.source]
    }
    this.#up()
    return [result, 'remote']
  }

  /**
   * An answer to `explain` without contributions came from a runtime older than explanations: the
   * service is up (no fallback, no outage), it just cannot explain.
   *
   * @param {Prediction | BatchPrediction} result
   * @param {string} path
   */
  #requireExplained(result, path) {
    if (!isExplained(result)) {
      throw new ExplanationUnavailableError(
        `ml-matching service at ${this.#service.base} answered POST ${path} without contributions ` +
          '(a runtime older than explanations?): update it, or score without explain'
      )
    }
  }

  /** Ask `/health/ready`, unless the last probe was under `healthIntervalMs` ago. */
  async #probe() {
    const now = this.#now()
    if (now < this.#nextProbe) return false
    this.#nextProbe = now + this.#healthIntervalMs
    try {
      await this.#service.json('GET', '/health/ready')
    } catch {
      return false
    }
    this.#up()
    return true
  }

  /** @param {ServiceUnavailableError} error */
  #down(error) {
    // Also when already degraded (no local scorer, every call tried): the next probe waits a full interval.
    this.#nextProbe = this.#now() + this.#healthIntervalMs
    if (this.#degraded) return
    this.#degraded = true
    const fallback = this.#local
      ? `scoring with the ${this.#local.source} model ${this.#local.version} until it is ready again`
      : 'no local model to fall back to'
    this.#logger.warn(`${error.message}; ${fallback}`)
  }

  #up() {
    if (!this.#degraded) return
    this.#degraded = false
    this.#logger.info(`ml-matching service at ${this.#service.base} is ready again; scoring remotely`)
  }
}

/** @param {any} answer */
function isPrediction(answer) {
  return typeof answer === 'object' && answer !== null && typeof answer.score === 'number'
}

/** @param {any} answer */
function isExplained(answer) {
  return typeof answer.baseValue === 'number' && typeof answer.explanationScale === 'string'
}

/** @param {any} answer */
function isBatch(answer) {
  return typeof answer === 'object' && answer !== null && Array.isArray(answer.predictions)
}

/** A key sent as it is in the header: visible ASCII but `%` (HTTP strips a value's outer spaces). */
const PLAIN_KEY = /^[\x21-\x24\x26-\x7e]+$/

/**
 * The `ML-Unit-Key` header of a key: the key, or its UTF-8 percent-encoded (which the runtime
 * decodes) when it has anything but visible ASCII, or a `%`.
 *
 * @param {unknown} key
 * @throws {InvalidInputError} (`reason: 'unit'`) a key the runtime refuses.
 */
export function unitHeader(key) {
  const checked = checkUnit(key)
  return PLAIN_KEY.test(checked) ? checked : encodeURIComponent(checked)
}
