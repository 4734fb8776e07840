/**
 * HTTP client for the ml-matching runtime, with fallback to a local scorer and recovery.
 *
 * Scoring goes to the service while it answers. A timeout, a failed connection or a 5xx makes the
 * client *degraded*: it scores with `local` (results marked `source: "local"` or `"weighted"`) and
 * asks `GET /health/ready` at most once every `healthIntervalMs`; on a 200 it scores remotely
 * again. A 4xx is the caller's mistake and is thrown, never hidden by the fallback.
 */

import {RequestRejectedError, ServiceUnavailableError} from './errors.js'

/** @import {BatchPrediction, LocalSource, Prediction, RowScore} from './scorer.js' */

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
 * @property {(row: Record<string, number>) => Promise<Prediction>} predict
 * @property {(rows: ReadonlyArray<Record<string, number>>) => Promise<BatchPrediction>} predictBatch
 *
 * @typedef Logger
 *   Where state changes are reported (`console` fits; so does a wrapper around a framework's logger).
 * @property {(message: string) => void} warn
 *   Called when the client turns to the local scorer.
 * @property {(message: string) => void} info
 *   Called when the service is back.
 *
 * @typedef ClientOptions
 * @property {string | URL} baseUrl
 *   The runtime's address, e.g. `http://ml-matching:8000` (a path prefix is kept).
 * @property {number} [timeoutMs=2000]
 *   Time allowed for one request, answer body included.
 * @property {string} [adminToken]
 *   Bearer token for `loadVersion`.
 * @property {LocalScorer} [local]
 *   Scores while the service is unreachable; without it such a failure throws.
 * @property {number} [healthIntervalMs=5000]
 *   While degraded, the least time between two readiness probes.
 * @property {Logger} [logger=console]
 *
 * @typedef Health
 *   `GET /health`.
 * @property {string} status
 * @property {string} service
 * @property {boolean} modelLoaded
 * @property {string | null} modelVersion
 * @property {string} timestamp
 *
 * @typedef ModelSummary
 *   An entry of `GET /models`.
 * @property {string} version
 * @property {string} timestamp
 * @property {string} algorithm
 * @property {Record<string, unknown>} metrics
 * @property {boolean} active
 *
 * @typedef LoadResult
 *   `POST /models/{version}/load`.
 * @property {string} status
 * @property {string} version
 * @property {string | null} previousVersion
 * @property {boolean} [persisted]
 *   Whether the store's ACTIVE now names `version`.
 */

/**
 * Make a client for the runtime at `baseUrl`.
 *
 * @param {ClientOptions} options
 * @returns {Client}
 */
export function createClient(options) {
  return new Client(options)
}

/** A client of one runtime. Made by {@link createClient}. */
export class Client {
  /** @type {string} */
  #base
  /** @type {number} */
  #timeoutMs
  /** @type {string | undefined} */
  #adminToken
  /** @type {LocalScorer | undefined} */
  #local
  /** @type {number} */
  #healthIntervalMs
  /** @type {Logger} */
  #logger
  #degraded = false
  #nextProbe = 0

  /** @param {ClientOptions} options */
  constructor(options) {
    const url = new URL(String(options.baseUrl))
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`baseUrl must be an http(s) URL, got ${url.href}`)
    }
    this.#base = url.href.replace(/\/+$/, '')
    this.#timeoutMs = positive(options.timeoutMs ?? 2000, 'timeoutMs')
    this.#healthIntervalMs = positive(options.healthIntervalMs ?? 5000, 'healthIntervalMs')
    this.#adminToken = options.adminToken
    this.#local = options.local
    this.#logger = options.logger ?? console
  }

  /** True while the service is considered down and scoring is local. */
  get degraded() {
    return this.#degraded
  }

  /**
   * Score one match (`POST /predict`), locally if the service is unreachable.
   *
   * @param {Record<string, number>} row
   * @returns {Promise<SourcedPrediction>}
   * @throws {RequestRejectedError}
   *   The service answered 4xx (e.g. 400 for a bad row); `.detail` is its message.
   * @throws {ServiceUnavailableError}
   *   The service is unreachable and no `local` scorer is configured.
   */
  async predict(row) {
    /** @type {[Prediction, Source]} */
    const [result, source] = await this.#score('/predict', row, isPrediction, (local) => local.predict(row))
    return {...result, source}
  }

  /**
   * Score many matches (`POST /predict/batch`), locally if the service is unreachable.
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @returns {Promise<SourcedBatchPrediction>}
   * @throws {RequestRejectedError}
   * @throws {ServiceUnavailableError}
   */
  async predictBatch(rows) {
    /** @type {[BatchPrediction, Source]} */
    const [result, source] = await this.#score('/predict/batch', {instances: rows}, isBatch, (local) =>
      local.predictBatch(rows)
    )
    const predictions = result.predictions.map((item) => ({...item, source}))
    return {...result, predictions, source}
  }

  /**
   * The service's liveness answer (`GET /health`). Never falls back.
   *
   * @returns {Promise<Health>}
   */
  async health() {
    return this.#request('GET', '/health')
  }

  /**
   * The versions in the service's store (`GET /models`).
   *
   * @returns {Promise<Array<ModelSummary>>}
   */
  async models() {
    return this.#request('GET', '/models')
  }

  /**
   * One version's sidecar (`GET /models/{version}`).
   *
   * @param {string} version
   * @returns {Promise<import('./sidecar.js').Sidecar>}
   */
  async model(version) {
    return this.#request('GET', `/models/${encodeURIComponent(version)}`)
  }

  /**
   * Make the service verify and serve `version` (`POST /models/{version}/load`, admin token).
   *
   * @param {string} version
   * @returns {Promise<LoadResult>}
   */
  async loadVersion(version) {
    if (!this.#adminToken) throw new TypeError('loadVersion needs the adminToken option')
    return this.#request('POST', `/models/${encodeURIComponent(version)}/load`, undefined, {
      authorization: `Bearer ${this.#adminToken}`
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
    if (local && this.#degraded && !(await this.#probe())) {
      return [await scoreLocally(local), local.source]
    }
    const text = JSON.stringify(body) // outside the try: an unserialisable row is the caller's bug
    let result
    try {
      result = await this.#request('POST', path, text)
      if (!expected(result)) {
        throw new ServiceUnavailableError(
          `ml-matching service at ${this.#base} answered POST ${path} with a body outside the contract`
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

  /** Ask `/health/ready`, unless the last probe was under `healthIntervalMs` ago. */
  async #probe() {
    const now = performance.now()
    if (now < this.#nextProbe) return false
    this.#nextProbe = now + this.#healthIntervalMs
    try {
      await this.#request('GET', '/health/ready')
    } catch {
      return false
    }
    this.#up()
    return true
  }

  /** @param {ServiceUnavailableError} error */
  #down(error) {
    this.#nextProbe = performance.now() + this.#healthIntervalMs
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
    this.#logger.info(`ml-matching service at ${this.#base} is ready again; scoring remotely`)
  }

  /**
   * One request; the answer's JSON, or a typed error.
   *
   * @param {string} method
   * @param {string} path
   * @param {string} [body]
   * @param {Record<string, string>} [headers]
   * @returns {Promise<any>}
   */
  async #request(method, path, body, headers = {}) {
    const what = `${method} ${path}`
    let response
    let text
    try {
      response = await fetch(this.#base + path, {
        method,
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : {'content-type': 'application/json'}),
          ...headers
        },
        ...(body === undefined ? {} : {body}),
        signal: AbortSignal.timeout(this.#timeoutMs)
      })
      text = await response.text()
    } catch (error) {
      throw new ServiceUnavailableError(
        `ml-matching service at ${this.#base} is unreachable: ${what} ${failure(error, this.#timeoutMs)}`,
        {cause: error}
      )
    }
    const data = parse(text)
    if (response.status >= 400 && response.status < 500) {
      const answer = typeof data === 'object' && data !== null ? data : {}
      const code = typeof answer.error === 'string' ? answer.error : `http_${response.status}`
      const detail = typeof answer.detail === 'string' ? answer.detail : text.slice(0, 200)
      throw new RequestRejectedError(what, response.status, code, detail)
    }
    if (!response.ok || data === undefined) {
      const why = response.ok ? 'an answer that is not JSON' : `${response.status} ${text.slice(0, 200)}`
      throw new ServiceUnavailableError(
        `ml-matching service at ${this.#base} is unreachable: ${what} answered ${why}`,
        {status: response.status}
      )
    }
    return data
  }
}

/** @param {any} answer */
function isPrediction(answer) {
  return typeof answer === 'object' && answer !== null && typeof answer.score === 'number'
}

/** @param {any} answer */
function isBatch(answer) {
  return typeof answer === 'object' && answer !== null && Array.isArray(answer.predictions)
}

/**
 * @param {string} text
 * @returns {any}
 */
function parse(text) {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * @param {unknown} error
 * @param {number} timeoutMs
 */
function failure(error, timeoutMs) {
  if (error instanceof Error && error.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`
  const cause = error instanceof Error ? /** @type {{code?: string, message?: string}} */ (error.cause) : undefined
  const reason = [cause?.code, cause?.message].filter(Boolean).join(': ')
  return `failed (${reason || (error instanceof Error ? error.message : String(error))})`
}

/**
 * @param {number} value
 * @param {string} name
 */
function positive(value, name) {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`)
  }
  return value
}
