/**
 * Scoring against the runtime, with fallback to a local scorer and recovery.
 *
 * Scoring goes to the service while it answers. A timeout, a failed connection or a 5xx makes the
 * client *degraded*: it scores with `local` (results marked `source: "local"` or `"weighted"`) and
 * asks `GET /health/ready` at most once every `healthIntervalMs`; on a 200 it scores remotely
 * again. A 4xx is the caller's mistake and is thrown, never hidden by the fallback.
 */

import {ExplanationUnavailableError, ServiceUnavailableError, SettingsError} from './errors.js'

/** @import {BatchPrediction, LocalSource, Prediction, RowScore, ScoreOptions} from './scorer.js' */
/** @import {Health as HealthAnswer, LoadResult as LoadAnswer, ModelSummary as ModelEntry} from './contract.js' */
/** @import {Sidecar} from './sidecar.js' */
/** @import {Service} from './http.js' */
/** @import {Logger} from './options.js' */

/**
 * @typedef {'remote' | LocalSource} Source
 *   Where a result came from.
 *
 * @typedef {Prediction & {source: Source}} SourcedPrediction
 *
 * @typedef {BatchPrediction & {source: Source, predictions: Array<RowScore & {source: Source}>}} SourcedBatchPrediction
 *
 * @typedef LocalScorer
 *   What the client falls back to: a model from `loadModel` or `weightedModel`.
 * @property {LocalSource} source
 * @property {string} version
 * @property {(row: Record<string, number>, options?: ScoreOptions) => Promise<Prediction>} predict
 * @property {(rows: ReadonlyArray<Record<string, number>>, options?: ScoreOptions) => Promise<BatchPrediction>} predictBatch
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
   * @param {ScoreOptions} [options]
   * @returns {Promise<SourcedPrediction>}
   */
  async predict(row, options = {}) {
    const explain = Boolean(options.explain)
    const path = explain ? '/predict?explain=true' : '/predict'
    /** @type {[Prediction, Source]} */
    const [result, source] = await this.#score(path, row, isPrediction, (local) =>
      local.predict(row, {explain})
    )
    if (explain) this.#requireExplained(result, path)
    return {...result, source}
  }

  /**
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @param {ScoreOptions} [options]
   * @returns {Promise<SourcedBatchPrediction>}
   */
  async predictBatch(rows, options = {}) {
    const explain = Boolean(options.explain)
    const path = explain ? '/predict/batch?explain=true' : '/predict/batch'
    /** @type {[BatchPrediction, Source]} */
    const [result, source] = await this.#score(path, {instances: rows}, isBatch, (local) =>
      local.predictBatch(rows, {explain})
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
   * @template T
   * @param {string} path
   * @param {unknown} body
   * @param {(answer: any) => boolean} expected
   *   Whether a 2xx answer has the contract's shape (one that has not counts as a failure).
   * @param {(local: LocalScorer) => Promise<T>} scoreLocally
   * @returns {Promise<[T, Source]>}
   *   The answer, and where it came from.
   */
  async #score(path, body, expected, scoreLocally) {
    const local = this.#local
    // Degraded: score locally without waiting on the service, unless a probe says it is back.
    if (local && this.#degraded && !(await this.#probe())) {
      return [await scoreLocally(local), local.source]
    }
    const text = JSON.stringify(body) // outside the try: an unserialisable row is the caller's bug
    let result
    try {
      result = await this.#service.json('POST', path, {body: text})
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
